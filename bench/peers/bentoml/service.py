"""BentoML in front of the model server, with its adaptive batching (run inside the bentoml venv).

    PEER_GRPC_TARGET=127.0.0.1:8500 bentoml serve service:Digits --port 3000   # in bench/peers/bentoml

As BentoML documents adaptive batching: a front service (`Digits`, `PEER_FRONT_WORKERS` processes) decodes
and preprocesses each request with the gateway's own functions (imported from the repository), then calls
a batchable API of a dependency service (`Predictor`, one process) that BentoML batches across requests;
each batch is one gRPC Predict on the same model server the gateway uses, with the repository's TF-free
messages. Clients send `{"instances": [{"b64": "<PNG>"}, ...]}` to `/predict`; the answer has the gateway's
shape (digit, confidence, ten probabilities per image).
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import bentoml
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from serving import protos, tensors
from serving.gateway.images import decode_image, image_to_mnist
from serving.protos import tfs_lite_pb2

MAX_IMAGE_PIXELS = 16_000_000  # the gateway's default per-image limit
MAX_BATCH = 256  # the gateway's micro-batch cap
MAX_LATENCY_MS = 1000


@bentoml.service(workers=1)
class Predictor:
    def __init__(self) -> None:
        import grpc

        self.channel = grpc.insecure_channel(os.environ["PEER_GRPC_TARGET"])
        self.call = self.channel.unary_unary(
            protos.PREDICT,
            request_serializer=tfs_lite_pb2.PredictRequest.SerializeToString,
            response_deserializer=tfs_lite_pb2.PredictResponse.FromString,
        )

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=MAX_LATENCY_MS)
    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """uint8 [n, 28, 28] -> float32 [n, 10], one Predict per batch BentoML gathered."""
        request = tfs_lite_pb2.PredictRequest()
        request.model_spec.name = "mnist"
        tensors.to_tensor_proto(images[..., np.newaxis], out=request.inputs["image"])
        response = self.call(request, timeout=30)
        return tensors.from_tensor_proto(response.outputs["probabilities"])


@bentoml.service(workers=int(os.environ.get("PEER_FRONT_WORKERS", "2")))
class Digits:
    predictor = bentoml.depends(Predictor)

    @bentoml.api(route="/predict")
    def predict(self, instances: list[dict]) -> dict:
        images = np.stack(
            [
                image_to_mnist(decode_image(base64.b64decode(item["b64"]), max_pixels=MAX_IMAGE_PIXELS))
                for item in instances
            ]
        )
        probabilities = np.asarray(self.predictor.probabilities(images), dtype=np.float32)
        digits = probabilities.argmax(axis=1)
        confidence = probabilities[np.arange(len(digits)), digits]
        return {
            "predictions": [
                {"digit": int(digit), "confidence": round(float(conf), 6), "probabilities": np.round(probs, 6).tolist()}
                for digit, conf, probs in zip(digits, confidence, probabilities.astype(np.float64), strict=True)
            ]
        }

"""KServe's Python model server as a transformer in front of the model server (run inside the kserve venv).

    python bench/peers/kserve/transformer.py --http_port 8080 --predictor_host 127.0.0.1:8501 \
        --predictor_protocol v1 --model_name mnist [--predict-grpc 127.0.0.1:8500]

As KServe documents a transformer: a `kserve.Model` whose `preprocess` turns the client's request into
the predictor's, whose `predict` is KServe's own call to the predictor (TF Serving's REST v1 API, given by
`--predictor_host`), and whose `postprocess` shapes the answer. With `--predict-grpc HOST:PORT`, `predict`
calls TF Serving's gRPC Predict instead, so the comparison is not only REST against gRPC.

Preprocessing is the gateway's own (`decode_image`, `image_to_mnist`, imported from the repository), and
the answer has the gateway's shape, so the comparison is of the serving stack and not of the image code.
Clients send KServe's v1 body: `{"instances": [{"b64": "<PNG>"}, ...]}`.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
from kserve import Model, ModelServer, model_server
from kserve.predictor_config import PredictorConfig

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from serving.gateway.images import decode_image, image_to_mnist  # noqa: E402

MAX_IMAGE_PIXELS = 16_000_000  # the gateway's default per-image limit


def load_peer_protos() -> None:
    """The repository's TF-free messages, regenerated for this venv's protobuf (bench/peers/venvs.py), put
    where `serving.tensors` imports them from."""
    generated = Path(os.environ["PEER_PROTOS_DIR"]) / "serving" / "protos" / "tfs_lite_pb2.py"
    spec = importlib.util.spec_from_file_location("serving.protos.tfs_lite_pb2", generated)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


def answer(probabilities: np.ndarray, digits: np.ndarray) -> dict:
    """The gateway's answer shape: digit, confidence and ten probabilities per image."""
    confidence = probabilities[np.arange(len(digits)), digits]
    return {
        "predictions": [
            {"digit": int(digit), "confidence": round(float(conf), 6), "probabilities": np.round(probs, 6).tolist()}
            for digit, conf, probs in zip(digits, confidence, probabilities.astype(np.float64), strict=True)
        ]
    }


class DigitTransformer(Model):
    def __init__(self, name: str, predictor: PredictorConfig, grpc_target: str | None) -> None:
        super().__init__(name)
        self.predictor = predictor
        self.grpc_target = grpc_target
        self._predict_call = None
        self.ready = True

    @property
    def predictor_config(self) -> PredictorConfig:
        # KServe keeps it in a context variable set in the parent process; with --workers > 1 the worker
        # processes start without it (KServe then answers 501), so the model carries its own.
        return self.predictor

    def preprocess(self, payload: dict, headers: dict[str, str] | None = None) -> dict:
        images = [
            image_to_mnist(decode_image(base64.b64decode(item["b64"]), max_pixels=MAX_IMAGE_PIXELS))
            for item in payload["instances"]
        ]
        batch = np.stack(images)[..., np.newaxis]
        # REST v1 takes nested lists; the gRPC variant keeps the array for its tensor proto.
        return {"array": batch} if self.grpc_target else {"instances": batch.tolist()}

    async def predict(
        self, payload: dict, headers: dict[str, str] | None = None, response_headers: dict[str, str] | None = None
    ) -> dict:
        if not self.grpc_target:
            return await super().predict(payload, headers, response_headers)
        if "serving.protos.tfs_lite_pb2" not in sys.modules:  # first call in this worker process
            load_peer_protos()
        from serving import protos, tensors
        from serving.protos import tfs_lite_pb2

        if self._predict_call is None:
            import grpc

            channel = grpc.aio.insecure_channel(self.grpc_target)
            self._predict_call = channel.unary_unary(
                protos.PREDICT,
                request_serializer=tfs_lite_pb2.PredictRequest.SerializeToString,
                response_deserializer=tfs_lite_pb2.PredictResponse.FromString,
            )
        request = tfs_lite_pb2.PredictRequest()
        request.model_spec.name = self.name
        tensors.to_tensor_proto(payload["array"], out=request.inputs["image"])
        response = await self._predict_call(request, timeout=30)
        return {key: tensors.from_tensor_proto(value) for key, value in response.outputs.items()}

    def postprocess(
        self, result: dict, headers: dict[str, str] | None = None, response_headers: dict[str, str] | None = None
    ) -> dict:
        if "predictions" in result:  # TF Serving's REST v1 row format: one {output: value} per image
            rows = result["predictions"]
            probabilities = np.array([row["probabilities"] for row in rows], dtype=np.float32)
            digits = np.array([row["digit"] for row in rows], dtype=np.int64)
        else:
            probabilities, digits = result["probabilities"], result["digit"].astype(np.int64)
        return answer(probabilities, digits)


def main() -> None:
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--predict-grpc", default="", help="call TF Serving's gRPC Predict at HOST:PORT instead")
    args, _ = parser.parse_known_args()
    predictor = PredictorConfig(args.predictor_host, args.predictor_protocol)
    ModelServer().start([DigitTransformer(args.model_name, predictor, args.predict_grpc or None)])


if __name__ == "__main__":
    main()

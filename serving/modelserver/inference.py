"""What gRPC and REST share: resolve the version, run a signature, count the request, describe models."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import grpc
import numpy as np
from tensorflow_serving.apis import get_model_metadata_pb2, get_model_status_pb2

from serving.contract import SERVING_SIGNATURE
from serving.modelserver.batch_scheduler import Batcher
from serving.modelserver.errors import ServingError
from serving.modelserver.manager import ModelManager
from serving.modelserver.metrics import ServingMetrics
from serving.modelserver.servable import Servable


class Inference:
    """Runs a signature of a servable (through the server-side batcher when one is configured) and counts it."""

    def __init__(self, manager: ModelManager, metrics: ServingMetrics, batcher: Batcher | None = None) -> None:
        self.manager = manager
        self.metrics = metrics
        self.batcher = batcher

    def run(
        self,
        servable: Servable,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: Sequence[str] = (),
    ) -> dict[str, np.ndarray]:
        runner = servable.runner(signature_name or SERVING_SIGNATURE, list(inputs), output_filter)
        started = time.perf_counter()
        outputs = runner(inputs) if self.batcher is None else self.batcher.run(runner, inputs)
        micros = (time.perf_counter() - started) * 1e6
        self.metrics.runtime_latency.observe(micros, servable.name, "Predict", "TF1")
        return outputs

    @contextmanager
    def recorded(self, model_name: str, entrypoint: str, api: str = "Predict") -> Iterator[None]:
        """Count the request under its final status; time it when it succeeds."""
        started = time.perf_counter()
        try:
            yield
        except ServingError as error:
            self.metrics.record_request(model_name, error.status_name, api, entrypoint, 0)
            raise
        except Exception:
            self.metrics.record_request(model_name, "INTERNAL", api, entrypoint, 0)
            raise
        self.metrics.record_request(model_name, "OK", api, entrypoint, (time.perf_counter() - started) * 1e6)


def signature_def_map(servable: Servable) -> get_model_metadata_pb2.SignatureDefMap:
    """Every signature of the version, as TF Serving puts them in GetModelMetadata."""
    signatures = get_model_metadata_pb2.SignatureDefMap()
    for name, signature in servable.signatures.items():
        signatures.signature_def[name].CopyFrom(signature)
    return signatures


def model_status_response(states) -> get_model_status_pb2.GetModelStatusResponse:
    response = get_model_status_pb2.GetModelStatusResponse()
    for version, state in states:
        entry = response.model_version_status.add(version=version, state=state.state)
        entry.status.error_code = grpc.StatusCode[state.error_code].value[0]
        entry.status.error_message = state.error_message
    return response

"""pytest plugin: run `python -m serving.modelserver` as a real subprocess on free ports.

    handle = start_model_server(models_dir, file_system_poll_wait_seconds=0.5)
    handle.grpc_target   # "127.0.0.1:PORT" for grpc.insecure_channel
    handle.rest_url      # "http://127.0.0.1:PORT" (REST API and /monitoring/prometheus/metrics)
    handle.stop()

`model_server` is a session fixture serving `trained_models` (mnist/1 and anomaly/1) with the repo's
serving/config files. Tests that add versions must start their own server on their own copy.
`predict_request`, `mnist_images` and `metric_value` help tests that talk to a server.
"""

from __future__ import annotations

import re
import socket
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2

from serving import tensors
from tests.processes import REPO_ROOT, ManagedProcess, free_port, python_module

CONFIG_DIR = REPO_ROOT / "serving" / "config"
METRICS_PATH = "/monitoring/prometheus/metrics"


@dataclass
class ModelServerHandle:
    grpc_target: str
    rest_url: str
    process: ManagedProcess

    def stop(self) -> None:
        self.process.stop()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_model_server(
    models_dir: Path, log_path: Path | None = None, wrapper: Sequence[str] = (), **flags: object
) -> ModelServerHandle:
    """Serve models_dir (holding mnist/, anomaly/) with serving/config; flags override or add server flags.
    `wrapper` prefixes the command (e.g. setpriv to run it as another user).

    Returns once both ports accept connections, which the server does only after loading the
    versions present at startup.
    """
    grpc_port, rest_port = free_port(), free_port()
    settings: dict[str, object] = {
        "port": grpc_port,
        "rest_api_port": rest_port,
        "model_config_file": CONFIG_DIR / "models.config",
        "models_dir": models_dir,
        "monitoring_config_file": CONFIG_DIR / "monitoring.config",
        "file_system_poll_wait_seconds": 1,
        **flags,
    }
    grpc_port, rest_port = int(str(settings["port"])), int(str(settings["rest_api_port"]))
    args = [f"--{name}={value}" for name, value in settings.items()]
    if log_path is None:
        log_path = Path(tempfile.mkdtemp(prefix="modelserver-")) / "server.log"
    process = ManagedProcess(
        [*wrapper, *python_module("serving.modelserver", *args)],
        log_path,
        ready=lambda: _listening(grpc_port) and _listening(rest_port),
        env={"TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    return ModelServerHandle(f"127.0.0.1:{grpc_port}", f"http://127.0.0.1:{rest_port}", process)


@pytest.fixture(scope="session")
def model_server(trained_models: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServerHandle]:
    """A model server for the whole session over the trained models (do not add versions to it)."""
    handle = start_model_server(trained_models, tmp_path_factory.mktemp("modelserver") / "server.log")
    yield handle
    handle.stop()


# -- helpers for tests that talk to a model server ----------------------------------------------------


def predict_request(
    model: str, signature_name: str = "", output_filter: Sequence[str] = (), **inputs: np.ndarray
) -> predict_pb2.PredictRequest:
    """An official PredictRequest with the given inputs as tensor_content."""
    request = predict_pb2.PredictRequest(output_filter=list(output_filter))
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    for alias, array in inputs.items():
        tensors.to_tensor_proto(array, out=request.inputs[alias])
    return request


def mnist_images(count: int, seed: int = 0) -> np.ndarray:
    """`count` random uint8 images shaped like the mnist signature's input."""
    return np.random.default_rng(seed).integers(0, 256, size=(count, 28, 28, 1), dtype=np.uint8)


_SAMPLE = re.compile(r"^(?P<name>[^\s{]+)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_value(exposition: str, name: str, **labels: str) -> float:
    """Value of the sample `name` whose labels include `labels` in a Prometheus text page (0 if absent)."""
    for line in exposition.splitlines():
        match = _SAMPLE.match(line)
        if match and match["name"] == name:
            found = dict(_LABEL.findall(match["labels"] or ""))
            if all(found.get(key) == value for key, value in labels.items()):
                return float(match["value"])
    return 0.0

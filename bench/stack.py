"""Start the processes under test: the model server and gateways, each on free ports, logs under the results.

The model server is `python -m serving.modelserver` on the project's TF Serving config (as `make run`);
a gateway is `python -m serving.gateway` (gunicorn) with GATEWAY_* settings per comparison. Both are
stopped, and their process groups ended, when the context exits.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from serving.stack import CONFIG_DIR, MODELS, model_available


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


@dataclass
class Service:
    """A started process: its pid (the gunicorn master for a gateway) and where it listens."""

    name: str
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def worker_pids(self) -> list[int]:
        """Child processes (gunicorn workers); empty for a single-process server."""
        try:
            return sorted(child.pid for child in psutil.Process(self.pid).children())
        except psutil.NoSuchProcess:
            return []


def _start(
    name: str,
    args: list[str],
    log_dir: Path,
    env: dict[str, str],
    ready: Callable[[], bool],
    timeout: float,
    cwd: Path | None = None,
) -> Service:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True, cwd=cwd
        )
    service = Service(name, process, log_path)
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(service)
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{name} did not become ready (exit code {process.returncode}):\n{tail}")
        time.sleep(0.2)
    return service


def _stop(service: Service) -> None:
    if service.process.poll() is None:
        service.process.terminate()
        try:
            service.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(service.pid, 9)
            service.process.wait()


@dataclass
class ModelServer:
    service: Service
    grpc_target: str
    rest_url: str


@contextmanager
def model_server(
    models_dir: Path,
    log_dir: Path,
    timeout: float = 300.0,
    *,
    config: Path = CONFIG_DIR / "models.config",
    models: tuple[str, ...] = MODELS,
) -> Iterator[ModelServer]:
    """The local model server over `models_dir`, returned once each of `models` has an AVAILABLE version."""
    check_models_on_disk(config, models_dir, models)
    grpc_port, rest_port = free_port(), free_port()
    rest_url = f"http://127.0.0.1:{rest_port}"
    args = [
        sys.executable,
        "-m",
        "serving.modelserver",
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        f"--model_config_file={config}",
        f"--models_dir={models_dir.resolve()}",
        "--file_system_poll_wait_seconds=0",
    ]
    service = _start(
        "modelserver",
        args,
        log_dir,
        {"TF_CPP_MIN_LOG_LEVEL": "2"},
        lambda: all(model_available(rest_url, name) for name in models),
        timeout,
    )
    try:
        yield ModelServer(service, f"127.0.0.1:{grpc_port}", rest_url)
    finally:
        _stop(service)


def check_models_on_disk(config: Path, models_dir: Path, models: tuple[str, ...]) -> None:
    """Stop at once, saying what is missing, when `config` does not serve one of `models` or it has no version.

    The model server itself would wait for the version to appear (as TF Serving does), and the caller for
    `timeout`, before reporting a folder that can never become ready.
    """
    from serving.modelserver.config import models_from_config_file
    from serving.modelserver.disk import versions_on_disk

    served = {model.name: model.base_path for model in models_from_config_file(config, models_dir.resolve())}
    for name in models:
        if name not in served:
            raise SystemExit(f"error: {config} serves {', '.join(sorted(served))}, not {name!r}")
        try:
            versions = versions_on_disk(served[name])
        except OSError:
            versions = []
        if not versions:
            raise SystemExit(
                f"error: no exported version of {name!r} under {served[name]}: train one first (python -m training)"
            )


def model_server_over(models_dir: Path, log_dir: Path) -> AbstractContextManager[ModelServer]:
    """The model server over a trained folder, on that folder's own models.config when training wrote one."""
    config = models_dir / "models.config"
    return model_server(models_dir, log_dir, **({"config": config} if config.is_file() else {}))


@dataclass
class Gateway:
    service: Service
    url: str


@contextmanager
def gateway(
    upstream: str,
    log_dir: Path,
    name: str,
    workers: int,
    settings: dict[str, str],
    timeout: float = 60.0,
    ready_path: str = "/readyz",
    source: Path | None = None,
) -> Iterator[Gateway]:
    """A gateway in front of `upstream`, returned once `ready_path` answers 200 and every worker is up.

    `source`: another checkout of this repository to run the gateway's code from (`python -m` imports from the
    working directory first), for a baseline measured beside this one.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(log_dir / f"{name}-metrics"), "GATEWAY_LOG_LEVEL": "warning", **settings}
    args = [
        sys.executable,
        "-m",
        "serving.gateway",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--upstream={upstream}",
        f"--workers={workers}",
    ]
    service = _start(name, args, log_dir, env, lambda: http_status(f"{url}{ready_path}") == 200, timeout, source)
    deadline = time.monotonic() + timeout
    while len(service.worker_pids()) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        yield Gateway(service, url)
    finally:
        _stop(service)

"""Pytest plugin: start the real gateway (`python -m serving.gateway`, gunicorn) for tests.

`start_gateway(upstream, **env)` runs one with its own port and metrics directory; keyword
arguments become GATEWAY_* variables (`deadline_seconds=2` -> GATEWAY_DEADLINE_SECONDS=2). The
session fixture `gateway` runs one in front of the session's `model_server`.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.processes import ManagedProcess, free_port, http_ok, python_module


@dataclass
class GatewayHandle:
    """A running gateway: its base URL, gunicorn master process and log."""

    url: str
    process: ManagedProcess

    @property
    def pid(self) -> int:
        return self.process.proc.pid

    def worker_pids(self) -> set[int]:
        """The pids of the gunicorn workers (children of the master) right now."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        return {int(pid) for pid in children.read_text().split()} if children.exists() else set()

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Block until /readyz answers 200 (every model AVAILABLE upstream)."""
        deadline = time.monotonic() + timeout
        while not http_ok(f"{self.url}/readyz", timeout=5.0):
            if time.monotonic() > deadline:
                reason = requests.get(f"{self.url}/readyz", timeout=10).text
                raise RuntimeError(f"gateway {self.url} not ready after {timeout}s: {reason}\n{self.log()}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.process.log()

    def stop(self) -> None:
        self.process.stop()


def gateway_env(**settings: Any) -> dict[str, str]:
    """GATEWAY_* variables from keyword arguments (names as in GatewayConfig, or already GATEWAY_*)."""
    env = {}
    for key, value in settings.items():
        name = key if key.isupper() else "GATEWAY_" + key.upper()
        env[name] = str(value)
    return env


def start_gateway(
    upstream: str, *, log_dir: Path | None = None, timeout: float = 60.0, **settings: Any
) -> GatewayHandle:
    """Start a gateway in front of `upstream` (host:port) and wait until /healthz answers."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="gateway-test-", dir=log_dir))
    url = f"http://127.0.0.1:{port}"
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"),
        **gateway_env(
            **{
                "workers": 2,
                "threads": 4,
                "deadline_seconds": 5,
                "stream_store": f"sqlite:///{workdir}/streams.db",
                **settings,
            }
        ),
    }
    process = ManagedProcess(
        python_module("serving.gateway", "--host", "127.0.0.1", "--port", str(port), "--upstream", upstream),
        workdir / "gateway.log",
        ready=lambda: http_ok(f"{url}/healthz"),
        env=env,
        timeout=timeout,
    )
    return GatewayHandle(url=url, process=process)


@pytest.fixture(scope="session")
def gateway(model_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayHandle]:
    """A gateway (2 workers) in front of the session's model server with the trained models."""
    handle = start_gateway(model_server.grpc_target, log_dir=tmp_path_factory.mktemp("gateway"))
    try:
        handle.wait_ready()
        yield handle
    finally:
        handle.stop()

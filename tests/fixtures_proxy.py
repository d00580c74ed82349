"""Pytest helpers: the front proxy (Debian's nginx, serving/proxy/) in front of a test gateway."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from serving.proxy.local import nginx_binary, proxy_command
from tests.processes import ManagedProcess, free_port, http_ok, missing_tool


@dataclass
class ProxyHandle:
    port: int
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.stop()


def start_proxy(gateway_url: str, **limits: int) -> ProxyHandle:
    """nginx on a free port in front of `gateway_url` (http://host:port); skipped (failed in CI) without nginx."""
    binary = nginx_binary()
    if binary is None:
        missing_tool("nginx not installed (Debian package, listed in .ci/apt-packages.txt)")
    port = free_port()
    upstream = gateway_url.removeprefix("http://")
    command = proxy_command(binary, port, upstream, host="127.0.0.1", **limits)
    log = Path(tempfile.mkdtemp(prefix="proxy-test-")) / "nginx.log"
    process = ManagedProcess(command, log, ready=lambda: http_ok(f"http://127.0.0.1:{port}/healthz"), timeout=30)
    return ProxyHandle(port, process)

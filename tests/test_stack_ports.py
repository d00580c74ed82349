"""`make run` twice: the second `python -m serving.stack` checks its ports first and says what holds them."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from serving.ports import busy_ports_message, port_free
from tests.processes import REPO_ROOT, ManagedProcess, free_port, http_ok, python_module


def test_port_free_sees_a_listener() -> None:
    port = free_port()
    assert port_free(port)
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        assert not port_free(port)
        message = busy_ports_message({"gateway HTTP": port})
    assert message is not None and message.startswith(f"port {port} (gateway HTTP) is in use by pid ")
    assert "pytest" in message or "python" in message  # this very process holds it
    assert busy_ports_message({"gateway HTTP": port}) is None


def start_stack(models: Path, port: int) -> subprocess.CompletedProcess[str]:
    """`python -m serving.stack` on `port` with free model-server ports, run to its exit."""
    command = python_module(
        "serving.stack",
        "--models",
        str(models),
        "--port",
        str(port),
        "--grpc-port",
        str(free_port()),
        "--rest-port",
        str(free_port()),
    )
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)


def test_second_stack_names_the_process_on_its_port(tmp_path: Path) -> None:
    port = free_port()
    other = ManagedProcess(
        [sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0"],
        tmp_path / "other.log",
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/"),
        env={},
        timeout=30,
    )
    try:
        done = start_stack(tmp_path / "models", port)
    finally:
        other.stop()
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {port} (gateway HTTP) is in use by pid {other.proc.pid}: " in done.stderr
    assert "http.server" in done.stderr and "make run PORT=" in done.stderr
    assert "web page and API" not in done.stdout  # no "ready" banner for someone else's server


def test_free_ports_pass_the_check(tmp_path: Path) -> None:
    """With nothing on the ports, the stack goes on to its next check (here: no models yet)."""
    done = start_stack(tmp_path / "models", free_port())
    assert done.returncode == 2
    assert "in use" not in done.stderr and "run `make models` first" in done.stderr

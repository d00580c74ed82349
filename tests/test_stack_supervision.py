"""`python -m serving.stack` keeps its children running: a killed model server or gateway comes back, and the
stack itself stays up (it used to stop everything when one child died)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from client import GatewayClient, GatewayError
from serving.supervisor import Child
from tests.processes import ManagedProcess, free_port, http_ok, python_module

pytestmark = pytest.mark.slow


def test_restart_delay_doubles_while_a_child_keeps_failing_and_resets_after_a_stable_run() -> None:
    clock = [0.0]
    child = Child(
        "fails",
        [sys.executable, "-c", "raise SystemExit(3)"],
        first_delay=1,
        max_delay=4,
        stable_after=100,
        clock=lambda: clock[0],
    )
    child.start().wait()
    delays = []
    for _ in range(4):
        child.check()  # notices the exit, schedules the restart
        delays.append(child._restart_at - clock[0])
        clock[0] = child._restart_at
        child.check()  # restarts
        child.process.wait()
    assert delays == [1, 2, 4, 4]
    assert child.restarts == 4
    clock[0] += 100  # this run lasted past stable_after: back to the first delay
    child.check()
    assert child._restart_at - clock[0] == 1


def _children(pid: int) -> dict[str, int]:
    """Command line (joined) -> pid of each direct child of `pid`."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return {Path(f"/proc/{child}/cmdline").read_text().replace("\0", " "): int(child) for child in children}


def _pid_of(stack: ManagedProcess, module: str, timeout: float = 60) -> int:
    """The pid of the stack's child running `module`, waiting for one while it is being restarted."""
    deadline = time.monotonic() + timeout
    while True:
        pids = [pid for command, pid in _children(stack.proc.pid).items() if module in command]
        if pids or time.monotonic() > deadline:
            assert pids, f"no {module} child:\n{stack.log()}"
            return pids[0]
        time.sleep(0.1)


def _predict_until_ok(client: GatewayClient, timeout: float) -> int:
    """Seconds-bounded retry of one digit prediction; returns the number of failed attempts before success."""
    image = np.zeros((28, 28), dtype=np.uint8)
    image[8:20, 13:15] = 255
    failures = 0
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.predict_digit(image)
            return failures
        except GatewayError:
            failures += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_a_killed_model_server_or_gateway_is_restarted(trained_models: Path, tmp_path: Path) -> None:
    port, grpc_port, rest_port = free_port(), free_port(), free_port()
    stack = ManagedProcess(
        python_module(
            "serving.stack",
            "--models",
            str(trained_models),
            "--port",
            str(port),
            "--grpc-port",
            str(grpc_port),
            "--rest-port",
            str(rest_port),
            "--workers",
            "1",
        ),
        tmp_path / "stack.log",
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/readyz", timeout=5),
        timeout=240,
    )
    try:
        client = GatewayClient(f"http://127.0.0.1:{port}", timeout=10, retries=0)
        assert _predict_until_ok(client, timeout=30) == 0
        for module in ("serving.modelserver", "serving.gateway"):
            victim = _pid_of(stack, module)
            os.kill(victim, signal.SIGKILL)
            while Path(f"/proc/{victim}").exists():  # until the stack has reaped it
                time.sleep(0.1)
            _predict_until_ok(client, timeout=180)
            assert stack.proc.poll() is None, stack.log()
            assert _pid_of(stack, module) != victim
            assert f"exited with code {-signal.SIGKILL}; restarting" in stack.log()
    finally:
        stack.stop()

"""Start real project processes (model server, gateway, Prometheus...) for tests and wait until they answer."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when GET url answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class ManagedProcess:
    """A subprocess whose output goes to a log file, stopped (and reaped) by `stop()`.

    `ready` is polled until it returns True; if the process exits first, or the timeout passes, the
    log is included in the error so a failing start explains itself.
    """

    def __init__(
        self,
        args: Sequence[str],
        log_path: Path,
        ready: Callable[[], bool],
        env: dict[str, str] | None = None,
        timeout: float = 120.0,
        cwd: Path = REPO_ROOT,
    ) -> None:
        self.args = list(args)
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            self.args,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args} exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                output = self.log()
                self.stop()
                raise RuntimeError(f"{self.args} not ready after {timeout}s:\n{output}")
            time.sleep(0.1)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-20000:]

    def stop(self, sig_timeout: float = 15.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(sig_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def python_module(module: str, *args: str) -> list[str]:
    """Command line that runs `python -m module args` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def missing_tool(message: str) -> NoReturn:
    """Skip the calling test on a developer's machine, fail it in CI (CI=true), where `.ci/run` installs
    every tool: a green CI must never hide a missing install step."""
    if os.environ.get("CI"):
        raise FileNotFoundError(message)
    pytest.skip(message)


def tool(name: str) -> str:
    """Path of a command-line tool: the virtual environment's own first (pip-installed tools), then PATH."""
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        missing_tool(f"{name} not installed (see .ci/apt-packages.txt and the pyproject test extra)")
    return path

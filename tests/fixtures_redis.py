"""Pytest plugin: a real `redis-server` (Debian package) per test session, with append-only persistence.

`start_redis(directory)` runs one on a free port with its data in `directory` (so a test can stop it and
start it again on the same port and data: `RedisHandle.restart()`).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.processes import ManagedProcess, free_port, tool


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisHandle:
    """A running redis-server: its URL, data folder and process."""

    port: int
    directory: Path
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.stop()

    def restart(self) -> None:
        """Start it again on the same port with the same data (after `stop`)."""
        self.process = _run(self.port, self.directory)


def _run(port: int, directory: Path) -> ManagedProcess:
    args = [
        tool("redis-server"),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
        "--daemonize",
        "no",
    ]
    return ManagedProcess(args, directory / "redis.log", ready=lambda: _answers(port), timeout=30)


def start_redis(directory: Path) -> RedisHandle:
    port = free_port()
    return RedisHandle(port, directory, _run(port, directory))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisHandle]:
    handle = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield handle
    finally:
        handle.stop()

"""Each gunicorn worker listens on its own SO_REUSEPORT socket, and a busy port is still refused.

With one socket shared by the workers, keep-alive clients stay on whichever worker accepted them (often one
for every connection); a socket per worker lets the kernel spread connections. These tests read which
processes hold a listening socket on the gateway's port from /proc (serving/ports.py).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from bench import connection_spread
from serving.ports import _listening_inodes, holders
from tests.fixtures_gateway import GatewayHandle, start_gateway
from tests.processes import free_port, python_module

# Nothing listens there: /healthz does not call the model server, and these tests need no model.
UNUSED_UPSTREAM = f"127.0.0.1:{free_port()}"


def listener_pids(gateway: GatewayHandle) -> set[int]:
    port = urlsplit(gateway.url).port
    assert port is not None
    return {int(line.split(":", 1)[0].removeprefix("pid ")) for line in holders(port)}


def wait_for_workers(gateway: GatewayHandle, count: int, timeout: float = 30.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while len(gateway.worker_pids()) < count or len(listener_pids(gateway)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} workers not listening after {timeout}s:\n{gateway.log()}")
        time.sleep(0.1)
    return gateway.worker_pids()


@pytest.mark.parametrize("workers", [2, 3])
def test_every_worker_has_its_own_listening_socket(workers: int) -> None:
    gateway = start_gateway(UNUSED_UPSTREAM, workers=workers)
    try:
        worker_pids = wait_for_workers(gateway, workers)
        port = urlsplit(gateway.url).port
        assert port is not None
        assert listener_pids(gateway) == worker_pids  # the master holds no socket the workers share
        assert len(_listening_inodes(port)) == workers  # one socket each
        with requests.Session() as session:  # and the port answers through them
            assert all(session.get(f"{gateway.url}/healthz", timeout=10).ok for _ in range(10))
    finally:
        gateway.stop()


def test_shared_socket_when_reuse_port_is_off() -> None:
    gateway = start_gateway(UNUSED_UPSTREAM, reuse_port=0)
    try:
        worker_pids = wait_for_workers(gateway, 2)
        port = urlsplit(gateway.url).port
        assert port is not None
        assert listener_pids(gateway) == worker_pids | {gateway.pid}
        assert len(_listening_inodes(port)) == 1
    finally:
        gateway.stop()


def test_second_gateway_on_a_busy_port_exits_naming_the_holder() -> None:
    """SO_REUSEPORT would let it share the port silently; the gateway checks the port first instead."""
    first = start_gateway(UNUSED_UPSTREAM)
    try:
        port = str(urlsplit(first.url).port)
        done = subprocess.run(
            python_module("serving.gateway", "--host", "127.0.0.1", "--port", port, "--upstream", UNUSED_UPSTREAM),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode != 0
        assert f"port {port} is in use by pid " in done.stderr
        assert requests.get(f"{first.url}/healthz", timeout=10).ok
    finally:
        first.stop()


def test_connection_spread_benchmark_counts_every_connection(tmp_path: Path) -> None:
    """A tiny run of `python -m bench.connection_spread`: each trial's connections are all found on a worker."""
    assert connection_spread.main(["--trials", "2", "--connections", "6", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "connection_spread.json").read_text())
    assert [run["reuse_port"] for run in results["runs"]] == [1, 0]
    for run in results["runs"]:
        assert [sum(counts) for counts in run["connections_per_worker"]] == [6, 6]
        assert all(len(counts) == 2 for counts in run["connections_per_worker"])
        assert 0.5 <= run["busiest_worker_share_median"] <= 1.0

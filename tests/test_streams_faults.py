"""Faults with both stores: the store going away and coming back, a gateway worker killed mid-append.

Nothing acknowledged is lost (Redis with its append-only file, SQLite committed in WAL mode), the gateway
answers 503 with Retry-After while the store is unusable, and a retried append leaves every stream consistent.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fixtures_gateway import GatewayHandle, start_gateway
from tests.fixtures_modelserver import start_model_server
from tests.fixtures_redis import RedisHandle, start_redis
from tests.test_modelserver_versions import publish
from tests.test_streams_api import append, put, read_series

pytestmark = pytest.mark.slow  # each starts its own gateway (and Redis) and kills or stops it


def append_until_answered(
    url: str, stream: str, after: str | None, stamps: list[str], values: list[float], seen: list[int]
) -> dict[str, Any]:
    """Send one append again and again (a client's retry loop) until it gets an answer; record the statuses."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            answer = append(url, stream, after, stamps, values)
        except requests.ConnectionError:
            seen.append(0)
            time.sleep(0.1)
            continue
        seen.append(answer.status_code)
        if answer.status_code == 200:
            return answer.json()
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "store_unavailable" and int(answer.headers["Retry-After"]) >= 1
        time.sleep(0.1)
    raise AssertionError(f"no answer in 60 s; statuses {seen[-5:]}")


@pytest.fixture
def redis_gateway(model_server: Any, tmp_path: Path) -> Iterator[tuple[GatewayHandle, RedisHandle]]:
    server = start_redis(tmp_path)
    gateway = start_gateway(
        model_server.grpc_target, log_dir=tmp_path, stream_store=server.url, stream_store_timeout_seconds=0.5
    )
    try:
        gateway.wait_ready()
        yield gateway, server
    finally:
        gateway.stop()
        server.stop()


def test_redis_restarting_under_load_loses_no_acknowledged_append(
    redis_gateway: tuple[GatewayHandle, RedisHandle],
) -> None:
    gateway, server = redis_gateway
    stamps, values = read_series(120)
    streams = [f"load-{i}" for i in range(4)]
    for name in streams:
        assert put(gateway.url, name).status_code == 201
    statuses: dict[str, list[int]] = {name: [] for name in streams}
    acknowledged: dict[str, int] = {name: 0 for name in streams}

    def client(name: str) -> None:
        after = None
        for i in range(len(stamps)):
            after = append_until_answered(gateway.url, name, after, [stamps[i]], [values[i]], statuses[name])["end"]
            acknowledged[name] = i + 1

    threads = [threading.Thread(target=client, args=(name,)) for name in streams]
    for thread in threads:
        thread.start()
    while min(acknowledged.values()) < 30:
        time.sleep(0.05)
    server.stop()
    time.sleep(1.5)
    server.restart()
    for thread in threads:
        thread.join()
    for name in streams:
        assert 503 in statuses[name], "every client saw the store down"
        summary = requests.get(f"{gateway.url}/v1/streams/{name}", timeout=10).json()
        # every append was acknowledged exactly once and none got lost: the stream holds each reading once
        assert (summary["readings"], summary["end"], acknowledged[name]) == (len(stamps), stamps[-1], len(stamps))


def test_a_locked_sqlite_store_is_503_until_released(model_server: Any, tmp_path: Path) -> None:
    path = tmp_path / "streams.db"
    gateway = start_gateway(
        model_server.grpc_target, log_dir=tmp_path, stream_store=f"sqlite:///{path}", stream_store_timeout_seconds=0.3
    )
    try:
        gateway.wait_ready()
        stamps, values = read_series(40)
        assert put(gateway.url, "locked").status_code == 201
        assert append(gateway.url, "locked", None, stamps[:20], values[:20]).status_code == 200
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # another writer that never lets go
        refused = append(gateway.url, "locked", stamps[19], stamps[20:], values[20:])
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert refused.json()["error"]["code"] == "store_unavailable"
        holder.execute("ROLLBACK")
        holder.close()
        done = append(gateway.url, "locked", stamps[19], stamps[20:], values[20:])
        assert done.status_code == 200 and done.json()["end"] == stamps[-1]
        metrics = requests.get(f"{gateway.url}/metrics", timeout=10).text
        assert 'gateway_stream_store_errors_total{operation="replace"}' in metrics
    finally:
        gateway.stop()


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_workers_killed_mid_append_leave_the_stream_consistent(
    store: str, model_server: Any, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings: dict[str, Any] = {"stream_store": f"sqlite:///{tmp_path}/streams.db"}
    if store == "redis":
        settings["stream_store"] = request.getfixturevalue("redis_server").url
    gateway = start_gateway(model_server.grpc_target, log_dir=tmp_path, **settings)
    try:
        gateway.wait_ready()
        stamps, values = read_series(900)
        name = f"killed-{store}"
        assert put(gateway.url, name, sensitivity=0.8).status_code == 201
        statuses: list[int] = []
        after = None
        for round_, (a, b) in enumerate([(0, 300), (300, 600), (600, 900)]):
            sent = threading.Thread(
                target=lambda a=a, b=b, after=after: statuses.append(
                    _status(gateway.url, name, after, stamps[a:b], values[a:b])
                )
            )
            sent.start()
            time.sleep(0.02 * round_)  # before, during and after the scoring of the append
            for pid in gateway.worker_pids():
                os.kill(pid, signal.SIGKILL)
            sent.join()
            gateway.wait_ready()
            after = append_until_answered(gateway.url, name, after, stamps[a:b], values[a:b], statuses)["end"]
        summary = requests.get(f"{gateway.url}/v1/streams/{name}", timeout=10).json()
        assert (summary["readings"], summary["appends"], summary["end"]) == (900, 3, stamps[-1])
        whole = requests.post(
            f"{gateway.url}/v1/anomaly:score",
            json={"timestamps": stamps, "values": values, "sensitivity": 0.8},
            timeout=60,
        ).json()
        assert [e["start"] for e in summary["recent_events"]] == [e["start"] for e in whole["anomalies"]][-10:]
    finally:
        gateway.stop()


def _status(url: str, stream: str, after: str | None, stamps: list[str], values: list[float]) -> int:
    try:
        return append(url, stream, after, stamps, values).status_code
    except requests.ConnectionError:
        return 0


def test_a_stream_keeps_its_model_version_until_it_is_put_again(trained_models: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(trained_models, models)
    server = start_model_server(models, tmp_path / "server.log", file_system_poll_wait_seconds=0.5)
    gateway = start_gateway(server.grpc_target, log_dir=tmp_path, version_cache_seconds=0.5)

    def new_streams_get(version: int) -> None:
        deadline = time.monotonic() + 60
        while put(gateway.url, "probe").json()["model"]["version"] != version:
            assert time.monotonic() < deadline, f"version {version} was not picked up"
            time.sleep(0.5)

    try:
        gateway.wait_ready()
        stamps, values = read_series(100)
        assert put(gateway.url, "pinned").json()["model"]["version"] == 1
        answer = append(gateway.url, "pinned", None, stamps[:40], values[:40])
        assert answer.status_code == 200 and answer.json()["model"]["version"] == 1
        publish(models / "anomaly", 1, 2)  # the server keeps the two newest versions: 1 and 2
        new_streams_get(2)
        answer = append(gateway.url, "pinned", answer.json()["end"], stamps[40:50], values[40:50])
        assert answer.status_code == 200 and answer.json()["model"]["version"] == 1  # not silently moved to 2
        publish(models / "anomaly", 1, 3)  # now 2 and 3: version 1 is unloaded
        new_streams_get(3)
        step, deadline = 50, time.monotonic() + 30
        while (gone := append(gateway.url, "pinned", answer.json()["end"], [stamps[step]], [values[step]])).ok:
            assert gone.json()["model"]["version"] == 1 and time.monotonic() < deadline, "version 1 stayed loaded"
            answer, step = gone, step + 1  # still served for a moment after version 3 loads
            time.sleep(0.5)
        assert gone.status_code == 409 and gone.json()["error"]["code"] == "model_version_gone", gone.text
        assert put(gateway.url, "pinned").json()["model"]["version"] == 3  # started afresh on the new version
        again = append(gateway.url, "pinned", None, stamps[:40], values[:40])
        assert again.status_code == 200 and again.json()["model"]["version"] == 3
    finally:
        gateway.stop()
        server.stop()

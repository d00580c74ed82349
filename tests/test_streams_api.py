"""`/v1/streams`: a series appended in pieces scores as the same series posted whole; exactly-once appends.

Each test runs against a gateway on the SQLite store and one on a real redis-server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import requests

from tests.conftest import SHARED_DATA, require
from tests.fixtures_gateway import GatewayHandle, start_gateway

SERIES_CSV = SHARED_DATA / "nab/data/artificialWithAnomaly/art_daily_jumpsup.csv"


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def streams_gateway(request: pytest.FixtureRequest, model_server: Any,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayHandle]:
    settings = {"stream_max_per_key": 50, "anomaly_chunk_points": 64}
    if request.param == "redis":
        settings["stream_store"] = request.getfixturevalue("redis_server").url
    handle = start_gateway(model_server.grpc_target, log_dir=tmp_path_factory.mktemp("streams"), **settings)
    try:
        handle.wait_ready()
        yield handle
    finally:
        handle.stop()


def read_series(rows: int) -> tuple[list[str], list[float]]:
    lines = require(SERIES_CSV).read_text().splitlines()[1:rows + 1]
    stamps, values = zip(*(line.split(",") for line in lines), strict=True)
    return [s.replace(" ", "T") + "Z" for s in stamps], [float(v) for v in values]


def put(url: str, stream: str, **options: Any) -> requests.Response:
    return requests.put(f"{url}/v1/streams/{stream}", json=options, timeout=30)


def append(url: str, stream: str, after: str | None, stamps: list[str], values: list[float]) -> requests.Response:
    return requests.post(f"{url}/v1/streams/{stream}:append",
                         json={"after": after, "timestamps": stamps, "values": values}, timeout=30)


def pieces(count: int, seed: int) -> list[tuple[int, int]]:
    """Cut [0, count) into pieces of 1 to 150 points (many of one or two)."""
    rng = np.random.default_rng(seed)
    bounds, at = [], 0
    while at < count:
        size = int(rng.choice([1, 2, 3, 17, 64, 150]))
        bounds.append((at, min(count, at + size)))
        at += size
    return bounds


def test_a_series_appended_in_pieces_scores_as_the_whole(streams_gateway: GatewayHandle) -> None:
    url = streams_gateway.url
    stamps, values = read_series(1100)
    # an outage longer than max_gap_steps (a new part), a short one (interpolated), and the jump anomaly's onset
    keep = [i for i in range(len(stamps)) if not (400 <= i < 430 or 700 <= i < 705)]
    stamps, values = [stamps[i] for i in keep], [values[i] for i in keep]
    values[900:] = [v + 40.0 for v in values[900:]]
    whole = requests.post(f"{url}/v1/anomaly:score", json={"timestamps": stamps, "values": values, "sensitivity": 0.8},
                          timeout=60)
    assert whole.status_code == 200, whole.text
    assert put(url, "pump-7", sensitivity=0.8).status_code == 201
    streamed: list[dict[str, Any]] = []
    events: dict[str, dict[str, Any]] = {}
    after = None
    for a, b in pieces(len(stamps), seed=3):
        answer = append(url, "pump-7", after, stamps[a:b], values[a:b])
        assert answer.status_code == 200, answer.text
        body = answer.json()
        streamed.extend(body["points"])
        events.update({event["start"]: event for event in body["events"]})
        after = body["end"]
    expected = whole.json()
    assert [p["timestamp"] for p in streamed] == [p["timestamp"] for p in expected["points"]]
    want = np.array([np.nan if p["score"] is None else p["score"] for p in expected["points"]])
    got = np.array([np.nan if p["score"] is None else p["score"] for p in streamed])
    assert np.isnan(want).sum() == 2 * expected["history_length"]  # warming up at the start and after the outage
    assert (~np.isnan(want)).sum() > 1000
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[~np.isnan(got)], want[~np.isnan(want)], rtol=0, atol=1e-6)
    assert [p.get("unscored") for p in streamed] == [p.get("unscored") for p in expected["points"]]
    assert [p["is_anomaly"] for p in streamed] == [p["is_anomaly"] for p in expected["points"]]
    assert [p["alarm"] for p in streamed] == [p["alarm"] for p in expected["points"]]
    batch_events = [(e["start"], e["end"], e["points"], e["peak_at"]) for e in expected["anomalies"]]
    assert batch_events, "the jump must raise an alarm"
    assert [(e["start"], e["end"], e["points"], e["peak_at"]) for e in events.values()] == batch_events
    summary = requests.get(f"{url}/v1/streams/pump-7", timeout=10).json()
    assert (summary["readings"], summary["end"], summary["model"]) == (len(stamps), stamps[-1], expected["model"])
    assert requests.delete(f"{url}/v1/streams/pump-7", timeout=10).status_code == 204
    assert requests.get(f"{url}/v1/streams/pump-7", timeout=10).status_code == 404

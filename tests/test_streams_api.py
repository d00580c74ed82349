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

from serving.anomaly_scoring import RANGE_SCORE
from tests.conftest import SHARED_DATA, require
from tests.fixtures_gateway import GatewayHandle, start_gateway
from tests.test_gateway_integration import check_schema

SERIES_CSV = SHARED_DATA / "nab/data/artificialWithAnomaly/art_daily_jumpsup.csv"


@pytest.fixture(scope="module", params=["sqlite", "redis"])
def streams_gateway(
    request: pytest.FixtureRequest, model_server: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayHandle]:
    settings = {"stream_max_per_key": 5, "anomaly_chunk_points": 64}
    if request.param == "redis":
        settings["stream_store"] = request.getfixturevalue("redis_server").url
    handle = start_gateway(model_server.grpc_target, log_dir=tmp_path_factory.mktemp("streams"), **settings)
    try:
        handle.wait_ready()
        yield handle
    finally:
        handle.stop()


def read_series(rows: int) -> tuple[list[str], list[float]]:
    lines = require(SERIES_CSV).read_text().splitlines()[1 : rows + 1]
    stamps, values = zip(*(line.split(",") for line in lines), strict=True)
    return [s.replace(" ", "T") + "Z" for s in stamps], [float(v) for v in values]


def put(url: str, stream: str, **options: Any) -> requests.Response:
    return requests.put(f"{url}/v1/streams/{stream}", json=options, timeout=30)


def append(url: str, stream: str, after: str | None, stamps: list[str], values: list[float]) -> requests.Response:
    return requests.post(
        f"{url}/v1/streams/{stream}:append", json={"after": after, "timestamps": stamps, "values": values}, timeout=30
    )


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
    del stamps[899], values[899]  # the jump's first grid point is filled (and flagged: the reading after it is
    values[899] += 400.0  # far out of range): the alarm goes to that reading, in the stream as in the batch
    whole = requests.post(
        f"{url}/v1/anomaly:score", json={"timestamps": stamps, "values": values, "sensitivity": 0.8}, timeout=60
    )
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
    lifted = [p["score"] for p in expected["points"][900:] if p["score"] is not None]
    assert max(lifted) >= RANGE_SCORE  # the range rule fired, so its streamed state is compared too
    document = requests.get(f"{url}/openapi.json", timeout=10).json()
    check_schema(document, "AppendResponse", body)
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
    assert expected["filled_points"] == 5 + 1 and sum(p["alarm"] for p in streamed) == len(batch_events)
    assert [(e["start"], e["end"], e["points"], e["peak_at"]) for e in events.values()] == batch_events
    assert all(event["status"] == "closed" for event in list(events.values())[:-1])  # each reported closed once
    summary = requests.get(f"{url}/v1/streams/pump-7", timeout=10).json()
    check_schema(document, "StreamSummary", summary)
    assert (summary["readings"], summary["end"], summary["model"]) == (len(stamps), stamps[-1], expected["model"])
    assert requests.delete(f"{url}/v1/streams/pump-7", timeout=10).status_code == 204
    assert requests.get(f"{url}/v1/streams/pump-7", timeout=10).status_code == 404


def test_a_retried_append_gets_the_same_answer_and_changes_nothing(streams_gateway: GatewayHandle) -> None:
    url = streams_gateway.url
    stamps, values = read_series(60)
    assert put(url, "retry").status_code == 201
    first = append(url, "retry", None, stamps[:30], values[:30])
    assert first.status_code == 200
    again = append(url, "retry", None, stamps[:30], values[:30])
    assert again.status_code == 200 and again.content == first.content
    assert requests.get(f"{url}/v1/streams/retry", timeout=10).json()["readings"] == 30
    end = first.json()["end"]
    assert end == stamps[29]
    # extending anything but the end, overlapping it, going back in time, or changing a sent append: 409 + the end
    for after, body_stamps, body_values in (
        (stamps[10], stamps[30:40], values[30:40]),
        (None, stamps[30:40], values[30:40]),
        (end, stamps[25:35], values[25:35]),
        (end, stamps[5:6], values[5:6]),
        (None, stamps[:30], [v + 1 for v in values[:30]]),
    ):
        conflict = append(url, "retry", after, body_stamps, body_values)
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["error"]["code"] == "stream_conflict"
        assert end in conflict.json()["error"]["message"] and conflict.headers["X-Stream-End"] == end
    assert requests.get(f"{url}/v1/streams/retry", timeout=10).json()["readings"] == 30
    nxt = append(url, "retry", end, stamps[30:], values[30:])
    assert nxt.status_code == 200 and nxt.json()["end"] == stamps[-1] and nxt.json()["appends"] == 2
    assert requests.delete(f"{url}/v1/streams/retry", timeout=10).status_code == 204


def test_racing_appends_to_one_stream_apply_once_and_other_streams_go_on(streams_gateway: GatewayHandle) -> None:
    url = streams_gateway.url
    stamps, values = read_series(40)
    for name in ("race", "calm"):
        assert put(url, name).status_code == 201
        assert append(url, name, None, stamps[:20], values[:20]).status_code == 200
    results: dict[str, list[int]] = {"race": [], "calm": []}
    barrier = threading.Barrier(7)

    def racer(n: int) -> None:  # six appends extend the same end with different readings
        barrier.wait()
        results["race"].append(
            append(url, "race", stamps[19], stamps[20 : 20 + n + 1], values[20 : 20 + n + 1]).status_code
        )

    def calm() -> None:
        barrier.wait()
        after = stamps[19]
        for i in range(20, 40):
            answer = append(url, "calm", after, [stamps[i]], [values[i]])
            results["calm"].append(answer.status_code)
            after = answer.json()["end"]

    threads = [threading.Thread(target=racer, args=(n,)) for n in range(6)] + [threading.Thread(target=calm)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results["race"]) == [200] + [409] * 5
    assert results["calm"] == [200] * 20
    race = requests.get(f"{url}/v1/streams/race", timeout=10).json()
    assert race["appends"] == 2 and 21 <= race["readings"] <= 26
    for name in ("race", "calm"):
        assert requests.delete(f"{url}/v1/streams/{name}", timeout=10).status_code == 204


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("PUT", "/v1/streams/bad:id", {}, 400, "invalid_stream_id"),
        ("PUT", "/v1/streams/x", {"model": "no-such-model"}, 404, "unknown_model"),
        ("PUT", "/v1/streams/x", {"sensors": ["temperature"]}, 422, "sensor_mismatch"),
        ("PUT", "/v1/streams/x", {"interval_seconds": 7}, 422, "interval_mismatch"),
        ("PUT", "/v1/streams/x", {"sensitivity": 2}, 422, "parameter_out_of_range"),
        ("PUT", "/v1/streams/x", {"sensitivity": 0.5, "threshold": 0.9}, 400, "conflicting_parameters"),
        ("PUT", "/v1/streams/x", [1, 2], 400, "invalid_stream"),
        ("GET", "/v1/streams/never-made", None, 404, "unknown_stream"),
        ("DELETE", "/v1/streams/never-made", None, 404, "unknown_stream"),
        (
            "POST",
            "/v1/streams/never-made:append",
            {"after": None, "timestamps": [0], "values": [1]},
            404,
            "unknown_stream",
        ),
        ("POST", "/v1/streams/valid:append", {"timestamps": [0], "values": [1]}, 400, "invalid_series"),
        (
            "POST",
            "/v1/streams/valid:append",
            {"after": None, "timestamps": [0, 1], "values": [1]},
            422,
            "length_mismatch",
        ),
        (
            "POST",
            "/v1/streams/valid:append",
            {"after": None, "timestamps": [0, 300], "values": [1, None]},
            422,
            "missing_value",
        ),
        (
            "POST",
            "/v1/streams/valid:append",
            {"after": None, "timestamps": [0, 10], "values": [1, 2]},
            422,
            "readings_too_close",
        ),
        (
            "POST",
            "/v1/streams/valid:append",
            {"after": "yesterday", "timestamps": [0], "values": [1]},
            422,
            "invalid_timestamp",
        ),
    ],
)
def test_bad_requests_get_json_errors(
    streams_gateway: GatewayHandle, method: str, path: str, body: Any, status: int, code: str
) -> None:
    assert put(streams_gateway.url, "valid").status_code == 201
    answer = requests.request(method, streams_gateway.url + path, json=body, timeout=10)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), answer.text
    assert requests.get(f"{streams_gateway.url}/v1/streams/valid", timeout=10).json()["readings"] == 0


def test_an_append_must_be_json(streams_gateway: GatewayHandle) -> None:
    assert put(streams_gateway.url, "valid").status_code == 201
    answer = requests.post(
        f"{streams_gateway.url}/v1/streams/valid:append",
        data="timestamp,value\n",
        headers={"Content-Type": "text/csv"},
        timeout=10,
    )
    assert answer.status_code == 415 and answer.json()["error"]["code"] == "unsupported_media_type"


def test_streams_per_key_are_capped(streams_gateway: GatewayHandle) -> None:
    url = streams_gateway.url
    live = [f"cap-{i}" for i in range(5)]
    requests.delete(f"{url}/v1/streams/valid", timeout=10)
    for name in live:
        assert put(url, name).status_code == 201
    assert put(url, live[0], sensitivity=0.9).status_code == 201  # re-initialising is not one more
    refused = put(url, "cap-extra")
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_streams"
    for name in live:
        assert requests.delete(f"{url}/v1/streams/{name}", timeout=10).status_code == 204
    assert put(url, "cap-extra").status_code == 201
    assert requests.delete(f"{url}/v1/streams/cap-extra", timeout=10).status_code == 204

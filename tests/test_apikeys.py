"""API keys on a real gateway: 401/403/429 as JSON, Bearer and X-API-Key, per-key rate limits with Retry-After,
open health and page routes, /metrics on its own port, and the key file tool (hashes only, never keys)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from client import GatewayClient
from serving.gateway.apikeys import digest
from serving.gateway.ratelimit import SharedBuckets
from tests.fixtures_gateway import GatewayHandle, start_gateway
from tests.fixtures_modelserver import metric_value
from tests.processes import free_port, python_module
from tests.rawhttp import exchange

pytestmark = pytest.mark.slow
ALPHA, OPS = "alpha-key-for-tests-0123456789", "ops-key-for-tests-9876543210"
PLANT_A, PLANT_B = "plant-a-key-for-tests-0123456789", "plant-b-key-for-tests-0123456789"


@pytest.fixture(scope="module")
def keyed(model_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayHandle, str]]:
    folder = tmp_path_factory.mktemp("keys")
    key_file = folder / "keys.json"
    key_file.write_text(
        json.dumps(
            {
                "keys": [
                    {"name": "alpha", "sha256": digest(ALPHA), "rate_per_second": 0.2, "burst": 3},
                    {"name": "ops", "sha256": digest(OPS), "allow": ["/v1/models", "/metrics"]},
                    {"name": "plant-a", "sha256": digest(PLANT_A)},
                    {"name": "plant-b", "sha256": digest(PLANT_B)},
                ]
            }
        )
    )
    metrics_port = free_port()
    handle = start_gateway(
        model_server.grpc_target, log_dir=folder, workers=2, api_keys_file=key_file, metrics_port=metrics_port
    )
    handle.wait_ready()
    yield handle, f"http://127.0.0.1:{metrics_port}"
    handle.stop()


def error_code(response: requests.Response) -> str:
    assert response.headers["Content-Type"].startswith("application/json"), response.text
    return response.json()["error"]["code"]


def test_open_routes_need_no_key(keyed) -> None:
    gateway, _ = keyed
    for path in ("/healthz", "/readyz", "/", "/docs", "/openapi.json"):
        assert requests.get(gateway.url + path, timeout=10).status_code == 200, path


def test_missing_or_unknown_keys_are_401_json(keyed) -> None:
    gateway, _ = keyed
    for headers in (
        {},
        {"X-API-Key": "nope"},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic Zm9v"},
        {"Authorization": "Bearer "},
        {"X-API-Key": ALPHA[:-1]},
    ):
        response = requests.get(f"{gateway.url}/v1/models", headers=headers, timeout=10)
        assert response.status_code == 401, headers
        assert error_code(response) == "unauthenticated"
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_request_without_a_key_is_refused_before_its_body_is_read(keyed) -> None:
    gateway, _ = keyed
    port = int(gateway.url.rsplit(":", 1)[1])
    head = b"POST /v1/digits:predict HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 10000000\r\n\r\n"
    response = exchange(port, head, timeout=10)  # the 10 MB never come: an answer proves nothing waited for them
    assert response.status == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_both_headers_work_and_a_key_is_held_to_its_paths(keyed) -> None:
    gateway, _ = keyed
    assert requests.get(f"{gateway.url}/v1/models", headers={"X-API-Key": OPS}, timeout=10).status_code == 200
    assert (
        requests.get(f"{gateway.url}/v1/models", headers={"Authorization": f"bearer {OPS}"}, timeout=10).status_code
        == 200
    )
    response = requests.post(f"{gateway.url}/v1/digits:predict", headers={"X-API-Key": OPS}, json={}, timeout=10)
    assert response.status_code == 403
    assert error_code(response) == "forbidden"


def test_streams_belong_to_the_key_that_created_them(keyed) -> None:
    gateway, _ = keyed
    url = f"{gateway.url}/v1/streams/line-1"
    a, b = {"X-API-Key": PLANT_A}, {"X-API-Key": PLANT_B}
    assert requests.put(url, json={}, headers=a, timeout=10).status_code == 201
    assert requests.get(url, headers=b, timeout=10).status_code == 404  # another key's stream of the same name
    assert requests.put(url, json={}, headers=b, timeout=10).status_code == 201
    appended = requests.post(
        f"{url}:append", json={"after": None, "timestamps": [0], "values": [1.0]}, headers=a, timeout=10
    )
    assert appended.status_code == 200
    assert requests.get(url, headers=a, timeout=10).json()["readings"] == 1
    assert requests.get(url, headers=b, timeout=10).json()["readings"] == 0
    assert requests.get(url, timeout=10).status_code == 401


def test_over_the_rate_is_429_with_retry_after_and_counted_per_key(keyed) -> None:
    """Two workers, one bucket: each request on a new connection, wherever it lands, spends the same tokens."""
    gateway, metrics_url = keyed
    headers = {"Authorization": f"Bearer {ALPHA}", "Connection": "close"}
    statuses = [requests.get(f"{gateway.url}/v1/models", headers=headers, timeout=10) for _ in range(5)]
    assert [r.status_code for r in statuses[:3]] == [200, 200, 200]  # the burst
    limited = statuses[3]
    assert limited.status_code == 429
    assert error_code(limited) == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 5  # one token per 5 s
    exposition = requests.get(f"{metrics_url}/metrics", timeout=10).text
    assert metric_value(exposition, "gateway_api_key_requests_total", key="alpha", outcome="rate_limited") >= 1
    assert metric_value(exposition, "gateway_api_key_requests_total", key="none", outcome="unauthenticated") >= 1


def test_metrics_live_on_their_own_port_only(keyed) -> None:
    gateway, metrics_url = keyed
    assert requests.get(f"{metrics_url}/metrics", timeout=10).status_code == 200
    assert requests.get(f"{metrics_url}/v1/models", headers={"X-API-Key": OPS}, timeout=10).status_code == 404
    assert requests.get(f"{gateway.url}/metrics", headers={"X-API-Key": OPS}, timeout=10).status_code == 404


def test_the_client_sends_its_key(keyed) -> None:
    gateway, _ = keyed
    with GatewayClient(gateway.url, api_key=OPS, retries=0) as client:
        assert {model.name for model in client.models()} == {"mnist", "anomaly"}


def test_key_file_tool_stores_hashes_and_removes_by_name(tmp_path: Path) -> None:
    key_file = tmp_path / "keys.json"

    def tool(*args: str) -> str:
        return subprocess.run(
            python_module("serving.gateway.apikeys", "--file", str(key_file), *args),
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    first = tool("add", "web", "--rate-per-second", "5").strip()
    second = tool("add", "web").strip()  # rotation: a second key under the same name
    stored = key_file.read_text()
    assert first not in stored and second not in stored
    assert digest(first) in stored and digest(second) in stored
    assert key_file.stat().st_mode & 0o022 == 0  # nobody else may change it
    assert tool("list").count("web") == 2
    tool("remove", digest(first)[:12])
    assert digest(first) not in key_file.read_text() and digest(second) in key_file.read_text()
    tool("remove", "web")
    assert json.loads(key_file.read_text()) == {"keys": []}


def test_buckets_are_shared_by_every_process_that_opens_the_file(tmp_path: Path) -> None:
    """Two openers stand for two workers (separate descriptors, separate locks): the burst is spent once."""
    now = [0.0]
    first = SharedBuckets(tmp_path / "buckets", [(0.5, 3.0), (1.0, 1.0)], clock=lambda: now[0])
    second = SharedBuckets(tmp_path / "buckets", [(0.5, 3.0), (1.0, 1.0)], clock=lambda: now[0])
    waits = [bucket.take(0) for bucket in (first, second, first, second)]
    assert waits[:3] == [0.0, 0.0, 0.0] and waits[3] == pytest.approx(2.0)
    assert first.take(1) == 0.0 and second.take(1) == pytest.approx(1.0)  # buckets are independent
    now[0] += 2.0  # one token of bucket 0 back
    assert second.take(0) == 0.0 and first.take(0) > 0

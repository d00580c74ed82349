"""Gateway parts that need no model server: config, metrics helper, thresholds, micro-batcher, and a
real gunicorn gateway whose upstream is down (errors, limits, pages, readiness, metrics names)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import requests
from prometheus_client import CollectorRegistry, Histogram

from serving.gateway import config as gateway_config
from serving.gateway.config import GatewayConfig
from serving.gateway.metrics import observe_many
from serving.gateway.microbatch import MicroBatcher
from serving.gateway.upstream import Prediction
from tests.fixtures_gateway import GatewayHandle, start_gateway
from tests.processes import REPO_ROOT, free_port

DEADLINE_SECONDS = 1.0


def test_config_reads_env_and_overrides() -> None:
    env = {
        "GATEWAY_PORT": "9001",
        "GATEWAY_DEADLINE_SECONDS": "2.5",
        "GATEWAY_MNIST_MODEL": "digits",
        "GATEWAY_MODEL_LABEL": "stable",
        "GATEWAY_MICROBATCH_MS": "0",
    }
    config = GatewayConfig.from_env(env, port=9002, workers=None)
    assert (config.port, config.deadline_seconds, config.mnist_model) == (9002, 2.5, "digits")
    assert (config.model_label, config.microbatching, config.workers) == ("stable", False, 2)
    assert GatewayConfig.from_env({"GATEWAY_MICROBATCH_MS": ""}).microbatching  # empty = default (on)
    assert not GatewayConfig.from_env({"GATEWAY_WORKER_CLASS": "sync"}).microbatching
    with pytest.raises(ValueError, match="GATEWAY_WORKERS"):
        GatewayConfig.from_env({"GATEWAY_WORKERS": "0"})
    with pytest.raises(ValueError, match="not a valid int"):
        GatewayConfig.from_env({"GATEWAY_PORT": "eighty"})
    with pytest.raises(ValueError, match="GATEWAY_DUPLICATE_POLICY must be one of"):
        GatewayConfig.from_env({"GATEWAY_DUPLICATE_POLICY": "median"})


def test_config_parses_every_field_type() -> None:
    """Each field's type has a parser (a new field of another type fails here, not at a deployment's start)."""
    environ = {f"GATEWAY_{field.name.upper()}": str(field.default) for field in dataclasses.fields(GatewayConfig)}
    assert GatewayConfig.from_env(environ) == GatewayConfig()
    assert [gateway_config._boolean(raw) for raw in ("True", "no", "ON", "0")] == [True, False, True, False]
    with pytest.raises(ValueError):
        gateway_config._boolean("maybe")


@pytest.mark.parametrize(
    "values",
    [
        np.array([0.0, 0.05, 0.1, 0.1000001, 0.5, 0.99, 1.0, 7.0, np.nan]),  # the NumPy path
        np.array([0.1000001, np.nan, 7.0], dtype=np.float32),  # few values: observed one by one
    ],
)
def test_observe_many_matches_observe(values: np.ndarray) -> None:
    buckets = (0.1, 0.5, 1.0)
    one, many = CollectorRegistry(), CollectorRegistry()
    single = Histogram("h", "h", buckets=buckets, registry=one)
    batched = Histogram("h", "h", buckets=buckets, registry=many)
    for value in values[np.isfinite(values)]:
        single.observe(float(value))
    observe_many(batched, values)
    assert _samples(one) == _samples(many)


def _samples(registry: CollectorRegistry) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for metric in registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    ]


def test_micro_batcher_coalesces_and_slices() -> None:
    calls: list[int] = []

    def run_batch(items: np.ndarray, deadline: float) -> Prediction:
        calls.append(len(items))
        time.sleep(0.01)  # while this "Predict" runs, the next requests queue up
        return Prediction(outputs={"double": items * 2}, version=3)

    batcher = MicroBatcher(run_batch, window_seconds=0.005, max_items=64)
    results: dict[int, np.ndarray] = {}

    def client(index: int) -> None:
        items = np.full((index % 3 + 1, 2), index)
        results[index] = batcher.submit(items, time.monotonic() + 5).outputs["double"]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(24))  # every request got its answer (a failed thread leaves a gap)
    for index, doubled in results.items():
        assert doubled.shape == (index % 3 + 1, 2) and (doubled == 2 * index).all()
    assert sum(calls) == sum(i % 3 + 1 for i in range(24))
    assert len(calls) < 24  # some requests shared a call


def test_micro_batcher_hands_errors_to_every_request() -> None:
    """Requests queued behind a failing call (followers, not only the leader) all see its error."""

    def failing(items: np.ndarray, deadline: float) -> Prediction:
        time.sleep(0.02)  # long enough for the other requests to queue behind this call
        raise RuntimeError("upstream broke")

    batcher = MicroBatcher(failing, window_seconds=0.005, max_items=8)
    errors: dict[int, str] = {}

    def client(index: int) -> None:
        try:
            batcher.submit(np.zeros((1, 2)), time.monotonic() + 5)
        except RuntimeError as exc:
            errors[index] = str(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == {i: "upstream broke" for i in range(6)}


def test_micro_batcher_under_gevent_takes_in_the_requests_ready_to_run() -> None:
    """Requests of a gevent worker that became ready together (bytes that arrived while the last batch ran) share
    the leader's Predict: the leader lets them run up to `submit` before it gathers, instead of leaving alone."""
    script = textwrap.dedent("""
        from gevent import monkey
        monkey.patch_all()
        import json, time
        import gevent, numpy as np
        from serving.gateway.microbatch import MicroBatcher
        from serving.gateway.upstream import Prediction

        calls = []

        def run_batch(items, deadline):
            calls.append(len(items))
            gevent.sleep(0.01)
            return Prediction(outputs={"same": items}, version=1)

        batcher = MicroBatcher(run_batch, window_seconds=0.002, max_items=64)

        def request(index):
            sum(range(20_000))  # reading and decoding: CPU work, no switch to another greenlet
            answer = batcher.submit(np.full((1, 2), index), time.monotonic() + 5).outputs["same"]
            assert (answer == index).all()

        gevent.joinall([gevent.spawn(request, index) for index in range(8)], raise_error=True)
        print(json.dumps(calls))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=True, timeout=60
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [8]  # without the leader's yield: [1, 7]


def test_app_import_never_loads_tensorflow() -> None:
    """Import the app and serve requests in a fresh interpreter: `tensorflow` must stay unloaded."""
    script = textwrap.dedent(f"""
        import json, re, sys, time
        start = time.perf_counter()
        from serving.gateway.app import create_app
        from serving.gateway.config import GatewayConfig
        seconds = time.perf_counter() - start
        app = create_app(GatewayConfig(upstream="127.0.0.1:{free_port()}", deadline_seconds=1))
        client = app.test_client()
        statuses = [client.get("/healthz").status_code,
                    client.post("/v1/digits:predict", json={{"instances": [{{"pixels": [[0] * 28] * 28}}]}})
                    .status_code]
        # VmHWM, not ru_maxrss: the latter keeps the high-water mark of the forking pytest process.
        status = open("/proc/self/status").read()
        rss_mb = int(re.search(r"VmHWM:\\s+(\\d+) kB", status)[1]) / 1024
        tf_modules = [m for m in sys.modules if m.split(".")[0] == "tensorflow"]
        print(json.dumps({{"seconds": seconds, "rss_mb": rss_mb, "statuses": statuses, "tf": tf_modules}}))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT, check=True, timeout=120
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"gateway app import {report['seconds']:.2f} s, peak RSS {report['rss_mb']:.0f} MB")
    assert report["tf"] == []
    assert report["statuses"] == [200, 503]  # the digit request went through the gRPC client to no server
    assert report["seconds"] < 10 and report["rss_mb"] < 400


def test_every_view_and_hook_is_synchronous() -> None:
    """GatewayFlask hands views and hooks to WSGI unchecked: an `async def` among them would answer a coroutine."""
    from serving.gateway.app import create_app
    from serving.gateway.config import GatewayConfig

    app = create_app(GatewayConfig(upstream=f"127.0.0.1:{free_port()}", api_keys_file="", metrics_port=9))
    hooks = [
        *app.view_functions.values(),
        *(func for funcs in app.before_request_funcs.values() for func in funcs),
        *(func for funcs in app.after_request_funcs.values() for func in funcs),
        *(func for funcs in app.teardown_request_funcs.values() for func in funcs),
        *app.error_handler_spec[None][None].values(),
    ]
    assert len(hooks) > 20
    assert [func for func in hooks if inspect.iscoroutinefunction(func)] == []


@pytest.fixture(scope="module")
def orphan_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayHandle]:
    """A real gateway whose model server does not exist (nothing listens on its port)."""
    handle = start_gateway(
        f"127.0.0.1:{free_port()}",
        log_dir=tmp_path_factory.mktemp("orphan"),
        deadline_seconds=DEADLINE_SECONDS,
        max_request_bytes=100_000,
    )
    try:
        yield handle
    finally:
        handle.stop()


def error_of(response: requests.Response, status: int) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message"} and error["message"]
    return error


def test_errors_are_json(orphan_gateway: GatewayHandle) -> None:
    url = orphan_gateway.url
    assert error_of(requests.get(f"{url}/no/such/page", timeout=5), 404)["code"] == "not_found"
    error_of(requests.get(f"{url}/v1/digits:predict", timeout=5), 405)
    error_of(requests.post(f"{url}/healthz", timeout=5), 405)
    assert (
        error_of(
            requests.post(
                f"{url}/v1/digits:predict", data=b"x" * 200_000, headers={"Content-Type": "image/png"}, timeout=5
            ),
            413,
        )["code"]
        == "payload_too_large"
    )
    error_of(
        requests.post(f"{url}/v1/digits:predict", data="hello", headers={"Content-Type": "text/plain"}, timeout=5), 415
    )
    error_of(
        requests.post(f"{url}/v1/anomaly:score", data="{", headers={"Content-Type": "application/json"}, timeout=5), 400
    )


def test_upstream_down_answers_503_within_deadline(orphan_gateway: GatewayHandle) -> None:
    pixels = {"instances": [{"pixels": [[0] * 28] * 28}]}
    for path, body in (
        ("/v1/digits:predict", pixels),
        ("/v1/anomaly:score", {"timestamps": [0, 300], "values": [1, 2]}),
    ):
        start = time.monotonic()
        response = requests.post(orphan_gateway.url + path, json=body, timeout=30)
        assert time.monotonic() - start < DEADLINE_SECONDS + 1.0
        assert error_of(response, 503)["code"] == "upstream_unavailable"
        assert response.headers["Retry-After"] == "1"


def test_readyz_explains_why_not_ready(orphan_gateway: GatewayHandle) -> None:
    assert requests.get(f"{orphan_gateway.url}/healthz", timeout=5).json() == {"status": "ok"}
    response = requests.get(f"{orphan_gateway.url}/readyz", timeout=10)
    assert response.status_code == 503
    body = response.json()
    assert body["ready"] is False and body["error"]["code"] == "not_ready"
    assert set(body["models"]) == {"mnist", "anomaly"}
    assert all("unreachable" in entry["reason"] for entry in body["models"].values())


def test_pages_and_openapi(orphan_gateway: GatewayHandle) -> None:
    from openapi_spec_validator import validate

    url = orphan_gateway.url
    document = requests.get(f"{url}/openapi.json", timeout=5).json()
    validate(document)
    assert {"/v1/digits:predict", "/v1/anomaly:score", "/v1/models", "/healthz", "/readyz", "/metrics"} <= set(
        document["paths"]
    )
    for page in ("/docs", "/"):
        response = requests.get(url + page, timeout=5)
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "unsafe-inline" not in policy
        assert "<script>" not in response.text  # scripts only from files, never inline
    assert requests.get(f"{url}/docs/docs.js", timeout=5).status_code == 200


def test_metrics_without_traffic(orphan_gateway: GatewayHandle) -> None:
    requests.get(f"{orphan_gateway.url}/healthz", timeout=5)
    text = requests.get(f"{orphan_gateway.url}/metrics", timeout=10).text
    assert 'gateway_model_ready{model="mnist"} 0.0' in text
    assert 'gateway_upstream_errors_total{code="UNAVAILABLE",model="anomaly"}' in text
    assert re.search(r'gateway_requests_total\{endpoint="/healthz",method="GET",status="200"\} [1-9]', text)
    assert "gateway_inflight_requests 1.0" in text  # the /metrics request itself, summed over live workers


def test_pixel_budget_covers_the_whole_request(tmp_path) -> None:
    """Each 2000x2000 image is under the per-image cap, but three exceed the request's 10 M pixel budget."""
    import io

    from PIL import Image, ImageDraw

    buffer = io.BytesIO()
    page = Image.new("L", (2000, 2000), 255)
    ImageDraw.Draw(page).line([(1000, 300), (1000, 1700)], fill=0, width=120)  # a "1"
    page.save(buffer, format="PNG")
    png = buffer.getvalue()
    gateway = start_gateway(f"127.0.0.1:{free_port()}", log_dir=tmp_path, max_request_pixels=10_000_000)
    try:
        url = f"{gateway.url}/v1/digits:predict"
        over = requests.post(url, files=[("image", (f"{i}.png", png, "image/png")) for i in range(3)], timeout=30)
        assert over.status_code == 413
        assert over.json()["error"]["code"] == "request_too_many_pixels"
        assert "image[2]" in over.json()["error"]["message"]
        # Two of them fit: the request gets as far as the (absent) model server.
        within = requests.post(url, files=[("image", (f"{i}.png", png, "image/png")) for i in range(2)], timeout=30)
        assert within.status_code == 503
    finally:
        gateway.stop()


def test_unknown_methods_share_one_metric_series(orphan_gateway: GatewayHandle) -> None:
    """A client may send any token as a method; they must not each create a new series."""
    for method in ("BREW", "WHEN", "PROPFIND"):
        requests.request(method, f"{orphan_gateway.url}/healthz", timeout=5)
    page = requests.get(f"{orphan_gateway.url}/metrics", timeout=5).text
    assert 'method="OTHER"' in page
    assert not any(f'method="{m}"' in page for m in ("BREW", "WHEN", "PROPFIND"))

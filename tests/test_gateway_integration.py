"""The gateway (real gunicorn) in front of the local model server with really trained models."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from jsonschema import Draft202012Validator
from PIL import Image

from serving.anomaly_scoring import DEFAULT_SENSITIVITY, false_alarm_rate
from tests.badinput_corpus import BAD_INPUTS, BadInput
from tests.conftest import SHARED_DATA
from tests.fixtures_gateway import GatewayHandle, start_gateway
from tests.fixtures_modelserver import start_model_server
from tests.processes import REPO_ROOT

pytestmark = pytest.mark.slow

DIGITS = "/v1/digits:predict"
ANOMALY = "/v1/anomaly:score"
JUMPSUP = "artificialWithAnomaly/art_daily_jumpsup.csv"
NAB_LABELS = SHARED_DATA / "nab" / "labels" / "combined_windows.json"


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def openapi(gateway: GatewayHandle) -> dict[str, Any]:
    return requests.get(f"{gateway.url}/openapi.json", timeout=10).json()


def check_schema(document: dict[str, Any], name: str, body: Any) -> None:
    """Validate `body` against components/schemas/`name` of the served OpenAPI document."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    Draft202012Validator(schema).validate(body)


def test_ready_and_models(gateway: GatewayHandle, openapi: dict[str, Any]) -> None:
    ready = requests.get(f"{gateway.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    check_schema(openapi, "Readiness", ready.json())
    models = requests.get(f"{gateway.url}/v1/models", timeout=10).json()
    check_schema(openapi, "ModelsResponse", models)
    states = {m["name"]: {v["state"] for v in m["versions"]} for m in models["models"]}
    assert states == {"mnist": {"AVAILABLE"}, "anomaly": {"AVAILABLE"}}


def test_mnist_test_digits_as_png_uploads(gateway: GatewayHandle, mnist_npz: Path, openapi: dict[str, Any]) -> None:
    """1,024 official test digits, 64 PNG files per multipart request, classified >= 97% right."""
    with np.load(mnist_npz) as data:
        images, labels = data["x_test"][:1024], data["y_test"][:1024]
    predicted: list[int] = []
    session = requests.Session()
    for start in range(0, len(images), 64):
        files = [("image", (f"{i}.png", png_bytes(images[i]), "image/png")) for i in range(start, start + 64)]
        response = session.post(gateway.url + DIGITS, files=files, timeout=60)
        assert response.status_code == 200, response.text
        body = response.json()
        if start == 0:
            check_schema(openapi, "DigitsResponse", body)
            assert body["model"]["name"] == "mnist" and body["model"]["version"] >= 1
        predicted.extend(p["digit"] for p in body["predictions"])
    accuracy = float(np.mean(np.array(predicted) == labels))
    print(f"gateway MNIST accuracy on {len(labels)} PNG uploads: {accuracy:.4f}")
    assert accuracy >= 0.97


def test_every_digit_request_form_agrees(gateway: GatewayHandle, mnist_npz: Path) -> None:
    with np.load(mnist_npz) as data:
        images = data["x_test"][1024:1030]
    pngs = [png_bytes(image) for image in images]

    def digits(**kwargs: Any) -> list[int]:
        response = requests.post(gateway.url + DIGITS, timeout=30, **kwargs)
        assert response.status_code == 200, response.text
        return [p["digit"] for p in response.json()["predictions"]]

    multipart = digits(files=[("image", (f"{i}.png", blob, "image/png")) for i, blob in enumerate(pngs)])
    b64 = digits(json={"instances": [{"b64": base64.b64encode(blob).decode()} for blob in pngs]})
    pixels = digits(json={"instances": [{"pixels": image.tolist()} for image in images]})
    mixed = digits(json={"instances": [{"b64": base64.b64encode(pngs[0]).decode()}, {"pixels": images[1].tolist()}]})
    raw = [digits(data=blob, headers={"Content-Type": "image/png"})[0] for blob in pngs]
    assert multipart == b64 == pixels == raw and mixed == multipart[:2]


def test_concurrent_requests_get_their_own_answers(gateway: GatewayHandle, mnist_npz: Path) -> None:
    """Micro-batching merges concurrent requests; each must still get the digits of its own images."""
    with np.load(mnist_npz) as data:
        images = data["x_test"][2000:2064]
    blobs = [png_bytes(image) for image in images]

    def alone(index: int) -> list[int]:
        count = index % 3 + 1  # requests of 1, 2 or 3 images
        files = [("image", (f"{i}.png", blobs[(index + i) % 64], "image/png")) for i in range(count)]
        response = requests.post(gateway.url + DIGITS, files=files, timeout=60)
        assert response.status_code == 200, response.text
        return [p["digit"] for p in response.json()["predictions"]]

    expected = [alone(index) for index in range(64)]
    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(alone, range(64))) == expected


def nab_series(nab_dir: Path) -> tuple[list[str], list[float]]:
    lines = (nab_dir / JUMPSUP).read_text().splitlines()[1:]
    stamps, values = zip(*(line.split(",") for line in lines), strict=True)
    return list(stamps), [float(v) for v in values]


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_nab_jumpsup_window_is_flagged(gateway: GatewayHandle, nab_dir: Path, openapi: dict[str, Any]) -> None:
    csv_text = (nab_dir / JUMPSUP).read_text()
    stamps, values = nab_series(nab_dir)
    started = time.perf_counter()
    response = requests.post(gateway.url + ANOMALY, data=csv_text, headers={"Content-Type": "text/csv"}, timeout=60)
    print(f"scored {len(stamps)} points in {time.perf_counter() - started:.3f} s")
    assert response.status_code == 200, response.text
    body = response.json()
    check_schema(openapi, "AnomalyResponse", body)
    points = body["points"]
    assert len(points) == len(stamps)
    assert [p["timestamp"] for p in points[:2]] == ["2014-04-01T00:00:00Z", "2014-04-01T00:05:00Z"]
    history = body["history_length"]
    assert all(p["score"] is None for p in points[:history])
    assert all(p["score"] is not None for p in points[history:])

    (window,) = json.loads(NAB_LABELS.read_text())[JUMPSUP]
    low, high = epoch(window[0]), epoch(window[1])
    inside = [p for p, stamp in zip(points, stamps, strict=True) if low <= epoch(stamp) <= high]
    flagged_inside = sum(p["is_anomaly"] for p in inside)
    flagged = sum(p["is_anomaly"] for p in points)
    print(
        f"jumpsup: {flagged_inside} of {len(inside)} window points flagged, {flagged} overall, "
        f"{len(body['anomalies'])} segments, threshold {body['threshold']:.3f}"
    )
    assert flagged_inside >= 1
    assert body["anomalies"] and all(s["points"] >= 1 for s in body["anomalies"])
    alarms = [stamp for p, stamp in zip(points, stamps, strict=True) if p["alarm"]]
    assert [a["start"] for a in body["anomalies"]] == [p["timestamp"] for p in points if p["alarm"]]
    assert any(low <= epoch(stamp) <= high for stamp in alarms)
    assert body["gaps"] == [] and body["expected_false_alarms_per_1000"] == pytest.approx(
        1000 * false_alarm_rate(DEFAULT_SENSITIVITY)
    )

    # The same series as JSON with epoch seconds, and as a multipart upload, scores the same.
    as_json = requests.post(
        gateway.url + ANOMALY, timeout=60, json={"timestamps": [epoch(s) for s in stamps], "values": values}
    ).json()
    assert [p["score"] for p in as_json["points"]] == [p["score"] for p in points]
    uploaded = requests.post(
        gateway.url + ANOMALY, timeout=60, files={"file": ("series.csv", csv_text.encode(), "text/csv")}
    ).json()
    assert uploaded["points"] == points

    # sensitivity 1 promises one normal point in ten above the threshold; threshold 1 flags nothing.
    everything = requests.post(
        f"{gateway.url}{ANOMALY}?sensitivity=1", data=csv_text, timeout=60, headers={"Content-Type": "text/csv"}
    ).json()
    assert everything["threshold"] == pytest.approx(0.9)
    assert sum(p["is_anomaly"] for p in everything["points"]) >= flagged
    nothing = requests.post(
        gateway.url + ANOMALY, timeout=60, json={"timestamps": stamps, "values": values, "threshold": 1.0}
    ).json()
    assert not any(p["is_anomaly"] for p in nothing["points"]) and nothing["anomalies"] == []


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.name for case in BAD_INPUTS])
def test_bad_input_gets_json_4xx(gateway: GatewayHandle, case: BadInput) -> None:
    before = gateway.worker_pids()
    if case.files is not None:
        response = requests.post(gateway.url + case.path, files=case.files, timeout=60)
    else:
        headers = {"Content-Type": case.content_type} if case.content_type else {}
        response = requests.post(gateway.url + case.path, data=case.body, headers=headers, timeout=60)
    assert response.status_code in case.expected_status, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] and error["message"]
    assert requests.get(f"{gateway.url}/healthz", timeout=10).status_code == 200
    assert gateway.worker_pids() == before, "a worker died"


def test_metrics_after_traffic(gateway: GatewayHandle, mnist_npz: Path) -> None:
    with np.load(mnist_npz) as data:
        blob = png_bytes(data["x_test"][0])
    requests.post(gateway.url + DIGITS, data=blob, headers={"Content-Type": "image/png"}, timeout=30)
    requests.post(
        gateway.url + ANOMALY,
        timeout=30,
        json={"timestamps": [i * 300 for i in range(400)], "values": [float(i % 7) for i in range(400)]},
    )
    text = requests.get(f"{gateway.url}/metrics", timeout=10).text
    table = (REPO_ROOT / "docs" / "metrics.md").read_text().split("## Model server")[0]
    documented = set(re.findall(r"^\| `(gateway_[a-z_]+)`", table, flags=re.MULTILINE))
    assert len(documented) == 22
    documented.discard("gateway_api_key_requests_total")  # only with API keys on: tests/test_apikeys.py
    sample_names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line.startswith("gateway_")}
    missing = [
        name
        for name in documented
        if not any(sample == name or sample.startswith(name + "_") for sample in sample_names)
    ]
    assert missing == []
    assert 'gateway_model_ready{model="mnist"} 1.0' in text
    assert 'gateway_model_version_responses_total{model="mnist",version="1"}' in text
    assert re.search(r'gateway_stage_duration_seconds_count\{endpoint="/v1/anomaly:score",stage="upstream"\}', text)


def test_workers_never_load_tensorflow(gateway: GatewayHandle) -> None:
    requests.get(f"{gateway.url}/v1/models", timeout=10)
    for pid in gateway.worker_pids():
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "tensorflow" not in maps, f"worker {pid} mapped a TensorFlow library"
        rss_mb = int(re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())[1]) / 1024
        print(f"gateway worker {pid}: RSS {rss_mb:.0f} MB")
        assert rss_mb < 300


def test_schemathesis_finds_no_server_error(gateway: GatewayHandle) -> None:
    """Fuzz every operation in /openapi.json: no 5xx, and every response as documented."""
    checks = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "st"),
            "run",
            f"{gateway.url}/openapi.json",
            "--checks",
            checks,
            "--max-examples",
            "15",
            "--max-time",
            "45",
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--generation-deterministic",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO_ROOT,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_upstream_down_then_back(trained_models: Path, tmp_path: Path, mnist_npz: Path) -> None:
    """Stop the model server under traffic: 503/504 within the deadline, /readyz 503; restart it on the
    same port: the same gateway recovers by itself."""
    deadline = 2.0
    server = start_model_server(trained_models, tmp_path / "server-1.log")
    grpc_port, rest_port = server.grpc_target.rsplit(":", 1)[1], server.rest_url.rsplit(":", 1)[1]
    gateway = start_gateway(server.grpc_target, log_dir=tmp_path, deadline_seconds=deadline)
    with np.load(mnist_npz) as data:
        blob = png_bytes(data["x_test"][0])

    def predict() -> tuple[int, float]:
        started = time.monotonic()
        response = requests.post(gateway.url + DIGITS, data=blob, headers={"Content-Type": "image/png"}, timeout=30)
        return response.status_code, time.monotonic() - started

    try:
        gateway.wait_ready()
        assert predict()[0] == 200
        with ThreadPoolExecutor(4) as pool:  # traffic in flight while the server goes away
            during = [pool.submit(predict) for _ in range(40)]
            time.sleep(0.05)
            server.stop()
            outcomes = [future.result() for future in during]
        assert {status for status, _ in outcomes} <= {200, 503, 504}
        assert max(seconds for _, seconds in outcomes) < deadline + 1.5
        status, seconds = predict()
        assert status in (503, 504) and seconds < deadline + 1.5
        assert requests.get(f"{gateway.url}/readyz", timeout=10).status_code == 503
        assert requests.get(f"{gateway.url}/healthz", timeout=10).status_code == 200

        server = start_model_server(trained_models, tmp_path / "server-2.log", port=grpc_port, rest_api_port=rest_port)
        recovered_by = time.monotonic() + 30
        while predict()[0] != 200:
            assert time.monotonic() < recovered_by, "gateway did not recover after the server came back"
            time.sleep(0.2)
        # /readyz needs every model AVAILABLE again (the anomaly model can load after mnist answers)
        while requests.get(f"{gateway.url}/readyz", timeout=10).status_code != 200:
            assert time.monotonic() < recovered_by, "gateway not ready after the server came back"
            time.sleep(0.2)
    finally:
        gateway.stop()
        server.stop()

"""The Python client library against the real local stack (model server + gateway, quick-trained models)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from client import GatewayClient, GatewayError, GatewayUnavailable
from tests.processes import free_port

JUMPSUP = "artificialWithAnomaly/art_daily_jumpsup.csv"
SAMPLES = 100  # more than one 64-image request


@pytest.fixture(scope="module")
def client(gateway) -> Iterator[GatewayClient]:
    with GatewayClient(gateway.url, timeout=60.0) as c:
        yield c


@pytest.fixture(scope="module")
def mnist_samples(mnist_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(mnist_npz) as data:
        return data["x_test"][:SAMPLES], data["y_test"][:SAMPLES]


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_health_ready_and_models(client: GatewayClient) -> None:
    assert client.health() == {"status": "ok"}
    assert client.ready()
    models = {m.name: m for m in client.models()}
    assert {"mnist", "anomaly"} <= set(models)
    assert (models["mnist"].role, models["anomaly"].role) == ("digits", "anomaly")
    for name in ("mnist", "anomaly"):
        assert any(v.state == "AVAILABLE" and v.version >= 1 for v in models[name].versions), models[name]


def test_predict_many_arrays_in_chunks(client: GatewayClient, mnist_samples) -> None:
    images, labels = mnist_samples
    batches: list[int] = []
    predictions = client.predict_digits(list(images), progress=batches.append)
    assert batches == [64, SAMPLES - 64]
    assert len(predictions) == SAMPLES
    accuracy = np.mean([p.digit for p in predictions] == labels)
    assert accuracy >= 0.9, accuracy
    for p in predictions:
        assert len(p.probabilities) == 10
        assert p.probabilities[p.digit] == pytest.approx(max(p.probabilities))
        assert p.confidence == pytest.approx(p.probabilities[p.digit], abs=1e-5)  # rounding
        assert sum(p.probabilities) == pytest.approx(1.0, abs=1e-3)
        assert p.model.name == "mnist" and p.model.version is not None


def test_every_image_form_gives_the_same_answer(client: GatewayClient, mnist_samples, tmp_path: Path) -> None:
    """A path, PNG bytes, a PIL image, a uint8 array (sent as pixels) and a float array (sent as PNG)."""
    image = mnist_samples[0][0]
    path = tmp_path / "digit.png"
    path.write_bytes(png_bytes(image))
    forms = [path, str(path), png_bytes(image), Image.fromarray(image), image, image / 255.0, image[..., None]]
    predictions = client.predict_digits(forms)
    assert len({p.digit for p in predictions}) == 1
    assert predictions[0].digit == mnist_samples[1][0]
    # A single image (not in a list) is one prediction too.
    assert client.predict_digit(image).digit == predictions[0].digit
    assert len(client.predict_digits(image)) == 1


def test_bad_image_raises_gateway_error(client: GatewayClient) -> None:
    with pytest.raises(GatewayError) as caught:
        client.predict_digits(b"this is not a picture")
    error = caught.value
    assert not isinstance(error, GatewayUnavailable)
    assert error.status is not None and 400 <= error.status < 500
    assert error.code and error.message


def test_score_csv_finds_the_labelled_anomaly(client: GatewayClient, nab_dir: Path) -> None:
    result = client.score_series(nab_dir / JUMPSUP)
    rows = pd.read_csv(nab_dir / JUMPSUP)
    assert len(result.points) == len(rows)
    assert result.sensors == ["value"] and result.interval_seconds == 300
    assert result.history_length is not None and result.history_length > 0
    assert all(p.score is None for p in result.points[: result.history_length])  # no history yet
    scored = [p.score for p in result.points if p.score is not None]
    assert len(scored) > len(rows) / 2 and all(0.0 <= s <= 1.0 for s in scored)
    assert result.model.name == "anomaly"
    assert result.anomalies, "the jump in art_daily_jumpsup is not flagged"
    windows = json.loads((nab_dir.parent / "labels" / "combined_windows.json").read_text())[JUMPSUP]
    start, end = (pd.Timestamp(t, tz="UTC") for t in windows[0])
    assert any(a.start <= end and a.end >= start for a in result.anomalies), result.anomalies
    flagged = sum(p.is_anomaly for p in result.points)
    assert flagged == sum(a.points for a in result.anomalies)
    assert all(p.expected.keys() == {"value"} for p in result.points if p.score is not None)
    frame = result.to_frame()
    assert list(frame.columns) == ["score", "is_anomaly", "expected_value"]
    assert len(frame) == len(rows) and frame["score"].isna().sum() == len(rows) - len(scored)


def test_dataframe_series_and_lists_score_alike(client: GatewayClient, nab_dir: Path) -> None:
    frame = pd.read_csv(nab_dir / JUMPSUP, parse_dates=["timestamp"]).iloc[:1500]
    by_column = client.score_series(frame)
    by_index = client.score_series(frame.set_index("timestamp"))
    by_series = client.score_series(frame.set_index("timestamp")["value"])
    by_lists = client.score_series(list(frame["timestamp"]), frame["value"].tolist())
    epoch = (frame["timestamp"] - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1)
    by_epoch = client.score_series(epoch.tolist(), {"value": frame["value"].tolist()})
    reference = [p.score for p in by_column.points]
    for other in (by_index, by_series, by_lists, by_epoch):
        assert [p.score for p in other.points] == pytest.approx(reference, abs=1e-6)


def test_threshold_is_sent(client: GatewayClient, nab_dir: Path) -> None:
    strict = client.score_series(nab_dir / JUMPSUP, threshold=1.0)
    assert strict.threshold == 1.0 and strict.anomalies == []
    frame = pd.read_csv(nab_dir / JUMPSUP, parse_dates=["timestamp"]).set_index("timestamp")
    loose = client.score_series(frame, threshold=0.0)
    assert loose.threshold == 0.0
    assert sum(p.is_anomaly for p in loose.points) > len(frame) / 2


def test_series_errors_are_gateway_errors(client: GatewayClient) -> None:
    with pytest.raises(GatewayError) as too_short:
        client.score_series(["2024-01-01T00:00:00Z", "2024-01-01T00:05:00Z"], [1.0, 2.0])
    assert too_short.value.status == 422 or 400 <= too_short.value.status < 500
    frame = pd.DataFrame(
        {"a": np.arange(500.0), "b": np.arange(500.0)},
        index=pd.date_range("2024-01-01", periods=500, freq="5min"),
    )
    with pytest.raises(GatewayError) as wrong_sensors:
        client.score_series(frame)
    assert 400 <= wrong_sensors.value.status < 500


def test_closed_port_is_unavailable() -> None:
    client = GatewayClient(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01)
    with pytest.raises(GatewayUnavailable) as caught:
        client.health()
    assert caught.value.status is None and caught.value.code == "unavailable"


class ScriptedGateway(BaseHTTPRequestHandler):
    """Answers GET with the next status of `script` (then 200), counting requests: tests retry policy."""

    script: ClassVar[list[int]] = []
    calls: ClassVar[int] = 0

    def do_GET(self) -> None:
        cls = type(self)
        status = cls.script[cls.calls] if cls.calls < len(cls.script) else 200
        cls.calls += 1
        error = {"error": {"code": f"c{status}", "message": "m"}}
        body = json.dumps({"status": "ok"} if status == 200 else error)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status == 503:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[ScriptedGateway]]]:
    handler = type("Handler", (ScriptedGateway,), {"script": [], "calls": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_retries_503_then_succeeds(scripted) -> None:
    url, handler = scripted
    handler.script = [503, 503]
    assert GatewayClient(url, retries=3, backoff=0.01).health() == {"status": "ok"}
    assert handler.calls == 3


def test_gives_up_after_retries_on_503(scripted) -> None:
    url, handler = scripted
    handler.script = [503] * 10
    with pytest.raises(GatewayError) as caught:
        GatewayClient(url, retries=2, backoff=0.01).health()
    assert (caught.value.status, caught.value.code, handler.calls) == (503, "c503", 3)


@pytest.mark.parametrize("status", [400, 404, 500, 504])
def test_other_errors_are_not_retried(scripted, status: int) -> None:
    url, handler = scripted
    handler.script = [status]
    with pytest.raises(GatewayError) as caught:
        GatewayClient(url, retries=3, backoff=0.01).health()
    assert caught.value.status == status and handler.calls == 1


def test_ready_reports_not_ready_without_retrying(scripted) -> None:
    url, handler = scripted
    handler.script = [503]
    readiness = GatewayClient(url, retries=3, backoff=0.01).ready()
    assert not readiness and readiness.message == "m" and handler.calls == 1

"""The compose topology as local processes: model server -> gateway (gunicorn) <- client, Prometheus scraping both.

One long scenario, in order: traffic shows up in Prometheus with the right counts and every dashboard query
parses and has data; the model server dies under traffic (fast 503/504, /readyz 503, ModelNotReady fires) and
comes back (the gateway recovers by itself); a new model version is published under traffic (zero failures,
answers switch to the new version).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from client import GatewayClient, GatewayError
from tests.conftest import NAB_DIR, require
from tests.fixtures_gateway import start_gateway
from tests.fixtures_modelserver import start_model_server
from tests.processes import REPO_ROOT, http_ok, tool
from tests.prometheus_harness import (
    all_panel_queries,
    panels_without_data,
    start_prometheus,
    unparsable_panels,
)

pytestmark = pytest.mark.slow
DEADLINE_SECONDS = 2
DIGITS = 24
SERIES_CALLS = 3
# Panels that stay empty while nothing fails or nothing is anomalous.
MAY_BE_EMPTY = ("error", "Error", "anomal", "Anomal", "segment", "Segment", "upstream", "Upstream", "5xx", "Append")


class TrafficLoop(threading.Thread):
    """Posts single digits in a loop; records (status, seconds, model version) of every call."""

    def __init__(self, url: str, image: np.ndarray) -> None:
        super().__init__(daemon=True)
        self.client = GatewayClient(url, timeout=10, retries=0)
        self.image = image
        self.results: list[tuple[int, float, int | None]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            started = time.monotonic()
            try:
                version = self.client.predict_digit(self.image).model.version
                self.results.append((200, time.monotonic() - started, version))
            except GatewayError as exc:
                self.results.append((exc.status or 0, time.monotonic() - started, None))
            time.sleep(0.01)

    def stop(self) -> list[tuple[int, float, int | None]]:
        self.halt.set()
        self.join(30)
        return self.results


def fast_rules(workdir: Path) -> list[Path]:
    """The project's rule files, with ModelNotReady's `for:` shortened so the test need not wait a minute."""
    rules = []
    for path in sorted((REPO_ROOT / "monitoring" / "rules").glob("*.yml")):
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == "ModelNotReady":
                    rule["for"] = "2s"
        target = workdir / path.name
        target.write_text(yaml.safe_dump(document))
        rules.append(target)
    return rules


def value(prometheus, promql: str) -> float:
    result = prometheus.query(promql)
    return float(result[0]["value"][1]) if result else 0.0


def wait_value(prometheus, promql: str, expected: float, timeout: float = 30.0) -> float:
    """The query's value once it reaches `expected` (scrapes lag a little), or its last value at the timeout."""
    deadline = time.monotonic() + timeout
    while (found := value(prometheus, promql)) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def test_local_stack(trained_models: Path, mnist_npz: Path, tmp_path: Path) -> None:
    tool("prometheus")
    models = tmp_path / "models"
    shutil.copytree(trained_models, models)
    digits = np.load(mnist_npz)
    images, labels = digits["x_test"][:DIGITS], digits["y_test"][:DIGITS]
    csv = require(NAB_DIR / "artificialWithAnomaly" / "art_daily_jumpsup.csv")

    server = start_model_server(models, tmp_path / "modelserver.log", file_system_poll_wait_seconds=1)
    grpc_port, rest_port = server.grpc_target.rsplit(":", 1)[1], server.rest_url.rsplit(":", 1)[1]
    gateway = start_gateway(server.grpc_target, log_dir=tmp_path, deadline_seconds=DEADLINE_SECONDS)
    prometheus = start_prometheus(
        {"gateway": [gateway.url.removeprefix("http://")], "tfserving": [server.rest_url.removeprefix("http://")]},
        tmp_path / "prometheus",
        rule_files=fast_rules(tmp_path),
    )
    try:
        gateway.wait_ready()
        client = GatewayClient(gateway.url, timeout=30)

        # 1. Traffic, counted by Prometheus.
        predictions = [client.predict_digit(image) for image in images]
        assert np.mean([p.digit for p in predictions] == labels) >= 0.9
        scored = [client.score_series(csv) for _ in range(SERIES_CALLS)]
        assert all(result.anomalies for result in scored)
        assert (
            wait_value(prometheus, 'sum(gateway_requests_total{endpoint="/v1/digits:predict",status="200"})', DIGITS)
            == DIGITS
        )
        assert wait_value(prometheus, "sum(gateway_digit_predictions_total)", DIGITS) == DIGITS
        assert (
            wait_value(
                prometheus, 'sum(gateway_requests_total{endpoint="/v1/anomaly:score",status="200"})', SERIES_CALLS
            )
            == SERIES_CALLS
        )
        points = 4032 * SERIES_CALLS
        scored_points = value(prometheus, "sum(gateway_anomaly_points_scored_total)")
        assert 0.9 * points <= scored_points <= points
        assert value(prometheus, "sum(gateway_anomaly_points_flagged_total)") > 0
        tfs_requests = 'sum(:tensorflow:serving:request_count{model_name="mnist",status="OK"})'
        assert wait_value(prometheus, tfs_requests, DIGITS) >= DIGITS
        assert value(prometheus, "sum(gateway_model_ready)") == 2
        prometheus.wait_for("sum(rate(gateway_requests_total[1m])) > 0")
        queries = all_panel_queries()
        assert unparsable_panels(prometheus, queries) == {}
        empty = [q for q in panels_without_data(prometheus, queries) if not any(w in q.panel for w in MAY_BE_EMPTY)]
        assert empty == [], [f"{q.panel}: {q.expr}" for q in empty]

        # 2. The model server dies under traffic: quick 503/504, not ready, alert fires.
        loop = TrafficLoop(gateway.url, images[0])
        loop.start()
        time.sleep(1.0)
        server.stop()
        time.sleep(4.0)
        assert not http_ok(f"{gateway.url}/readyz", timeout=DEADLINE_SECONDS + 3)
        firing = prometheus.wait_for('ALERTS{alertname="ModelNotReady",alertstate="firing"}', timeout=60)
        assert {series["metric"]["model"] for series in firing} == {"mnist", "anomaly"}
        down = loop.stop()
        failures = [(status, seconds) for status, seconds, _ in down if status != 200]
        assert failures, "no request was sent while the model server was down"
        assert {status for status, _ in failures} <= {503, 504}
        assert max(seconds for _, seconds in failures) <= DEADLINE_SECONDS + 1.0

        # ... and comes back on the same ports: the gateway recovers without a restart.
        gateway_pid = gateway.pid
        server = start_model_server(
            models,
            tmp_path / "modelserver2.log",
            port=grpc_port,
            rest_api_port=rest_port,
            file_system_poll_wait_seconds=1,
        )
        gateway.wait_ready(timeout=60)
        assert client.predict_digit(images[0]).digit == labels[0]
        assert gateway.pid == gateway_pid

        # 3. A new version published under traffic: no failure, answers switch to it.
        loop = TrafficLoop(gateway.url, images[0])
        loop.start()
        time.sleep(1.0)
        staging = models / "mnist" / ".export-test"
        shutil.copytree(models / "mnist" / "1", staging)
        os.rename(staging, models / "mnist" / "2")
        deadline = time.monotonic() + 60
        while not any(v == 2 for _, _, v in loop.results) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        rollout = loop.stop()
        assert [r for r in rollout if r[0] != 200] == []
        versions = [v for _, _, v in rollout]
        assert versions[0] == 1 and versions[-1] == 2
        assert versions == sorted(versions)
    finally:
        prometheus.stop()
        gateway.stop()
        server.stop()

"""serving/gateway/endpoint.py against a real model server: the one retry when a pinned version vanishes, and the
stage timing the framework (not the endpoints) records."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from serving.gateway.app import create_app
from serving.gateway.config import GatewayConfig
from tests.fixtures_modelserver import start_model_server

pytestmark = pytest.mark.slow  # needs the trained models

ONE_VERSION_CONFIG = """
model_config_list {
  config {
    name: "anomaly"
    base_path: "/models/anomaly"
    model_platform: "tensorflow"
    model_version_policy { latest { num_versions: 1 } }
  }
}
"""
SERIES = {
    "timestamps": [1_700_000_000 + 300 * i for i in range(120)],
    "values": [40.0 + (i % 12) for i in range(120)],
}


def _stage_count(stage: str) -> float:
    value = REGISTRY.get_sample_value(
        "gateway_stage_duration_seconds_count", {"endpoint": "/v1/anomaly:score", "stage": stage}
    )
    return value or 0.0


def test_a_vanished_version_is_prepared_again_once(trained_models: Path, tmp_path: Path) -> None:
    """The gateway caches version 1 as current; the server swaps it for 2; the next request still succeeds on 2."""
    models = tmp_path / "models"
    shutil.copytree(trained_models / "anomaly", models / "anomaly")
    config_file = tmp_path / "models.config"
    config_file.write_text(ONE_VERSION_CONFIG)
    server = start_model_server(models, model_config_file=config_file)
    try:
        # A long version cache: only the retry on NOT_FOUND can notice the swap.
        app = create_app(GatewayConfig(upstream=server.grpc_target, version_cache_seconds=600.0))
        client = app.test_client()
        first = client.post("/v1/anomaly:score", json=SERIES)
        started = time.monotonic()
        while first.status_code == 503 and time.monotonic() - started < 60:  # a busy machine: still warming up
            time.sleep(0.5)
            first = client.post("/v1/anomaly:score", json=SERIES)
        assert first.status_code == 200, first.get_json()
        old = first.get_json()["model"]["version"]

        shutil.copytree(models / "anomaly" / str(old), models / "anomaly" / str(old + 1))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = client.get("/v1/models").get_json()
            [anomaly] = [entry for entry in status["models"] if entry["name"] == "anomaly"]
            states = {item["version"]: item["state"] for item in anomaly.get("versions", [])}
            if states.get(old + 1) == "AVAILABLE" and states.get(old) != "AVAILABLE":
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"the server did not swap version {old} for {old + 1}")

        upstream_before = _stage_count("upstream")
        second = client.post("/v1/anomaly:score", json=SERIES)
        assert second.status_code == 200, second.get_json()
        assert second.get_json()["model"]["version"] == old + 1
        assert second.get_json()["points"] == first.get_json()["points"]  # same constants, same model weights
        # One request, one observation per stage, however many tries it took.
        assert _stage_count("upstream") == upstream_before + 1
    finally:
        server.stop()

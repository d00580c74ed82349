"""The anomaly detector on real data, as an operator runs it: one model per asset, outages, calibrated
sensitivity, and one grid policy for training and serving."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from serving.anomaly_scoring import false_alarm_rate
from serving.gateway.series_input import parse_csv_series
from serving.gateway.series_prepare import prepare_series
from tests.conftest import NAB_DIR, NAB_TRAIN_CSV, require
from tests.fixtures_gateway import GatewayHandle, start_gateway
from tests.fixtures_modelserver import ModelServerHandle, start_model_server
from tests.processes import REPO_ROOT, python_module
from training.series_data import read_sensor_csv

ANOMALY = "/v1/anomaly:score"
CPU_CSV = NAB_DIR / "realAWSCloudwatch" / "ec2_cpu_utilization_825cc2.csv"
TEMPERATURE_CSV = NAB_DIR / "realKnownCause" / "machine_temperature_system_failure.csv"


def train(models: Path, csv: Path, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python_module(
            "training",
            "anomaly",
            "--data",
            str(csv),
            "--name",
            name,
            "--out",
            str(models),
            "--epochs",
            "2",
            "--seed",
            "1",
            *extra,
        ),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
        check=True,
    )


@pytest.fixture(scope="module")
def assets(
    trained_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, ModelServerHandle, GatewayHandle]]:
    """`anomaly` (the session's model) and `pump-7` (learnt from a CPU series) behind one gateway.

    The model server re-reads the generated models.config every second, as TF Serving does with
    --model_config_file_poll_wait_seconds; the gateway reads the same file.
    """
    models = tmp_path_factory.mktemp("assets")
    shutil.copytree(trained_models / "anomaly", models / "anomaly")
    train(models, require(CPU_CSV), "pump-7", "--train-fraction", "0.15", "--max-train-rows", "750")
    config = models / "models.config"
    server = start_model_server(models, model_config_file=config, model_config_file_poll_wait_seconds=1)
    gateway = start_gateway(server.grpc_target, models_config=config, mnist_model="mnist")
    try:
        yield models, server, gateway
    finally:
        gateway.stop()
        server.stop()


def score(gateway: GatewayHandle, csv_text: str, **params: object) -> requests.Response:
    return requests.post(
        gateway.url + ANOMALY, data=csv_text, params=params, timeout=120, headers={"Content-Type": "text/csv"}
    )


def wait_for(check: callable, timeout: float = 60.0) -> None:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)


def test_two_named_models_answer_side_by_side(assets: tuple[Path, ModelServerHandle, GatewayHandle]) -> None:
    _, _, gateway = assets
    csv_text = require(CPU_CSV).read_text()
    wait_for(lambda: score(gateway, csv_text, model="pump-7").status_code == 200)
    default = score(gateway, csv_text).json()
    pump = score(gateway, csv_text, model="pump-7").json()
    assert default["model"]["name"] == "anomaly" and pump["model"]["name"] == "pump-7"
    assert len(default["points"]) == len(pump["points"]) == 4032
    expected = [p["expected"]["value"] for p in pump["points"][100:200]]
    assert expected != [p["expected"]["value"] for p in default["points"][100:200]]
    assert default["interval_seconds"] == pump["interval_seconds"] == 300

    unknown = score(gateway, csv_text, model="pump-8")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_model"
    assert "anomaly, pump-7" in unknown.json()["error"]["message"]
    listed = {(m["name"], m["role"]) for m in requests.get(f"{gateway.url}/v1/models", timeout=30).json()["models"]}
    assert {("anomaly", "anomaly"), ("pump-7", "anomaly")} <= listed
    metrics = requests.get(f"{gateway.url}/metrics", timeout=30).text
    assert 'gateway_anomaly_points_scored_total{model="pump-7"}' in metrics


def test_a_newly_trained_asset_is_served_without_a_restart(
    assets: tuple[Path, ModelServerHandle, GatewayHandle],
) -> None:
    models, server, gateway = assets
    csv_text = require(TEMPERATURE_CSV).read_text()
    assert score(gateway, csv_text, model="furnace-2").status_code == 404
    train(models, TEMPERATURE_CSV, "furnace-2", "--train-rows", "750")
    assert "furnace-2" in (models / "models.config").read_text()
    wait_for(lambda: score(gateway, csv_text, model="furnace-2").status_code == 200)
    body = score(gateway, csv_text, model="furnace-2").json()
    assert body["model"] == {"name": "furnace-2", "version": 1}
    assert server.process.proc.poll() is None


def test_a_day_long_outage_is_scored_around_and_reported(assets: tuple[Path, ModelServerHandle, GatewayHandle]) -> None:
    _, _, gateway = assets
    header, *rows = require(CPU_CSV).read_text().splitlines()
    outage = rows[:2000] + rows[2288:]  # 288 five-minute readings = one day missing
    body = score(gateway, "\n".join([header, *outage]) + "\n", model="pump-7").json()
    iso = [row.split(",")[0].replace(" ", "T") + "Z" for row in (rows[1999], rows[2288])]
    assert body["gaps"] == [{"after": iso[0], "before": iso[1], "missing_points": 288}]
    points = body["points"]
    history = body["history_length"]
    assert len(points) == len(outage)
    assert [p.get("unscored") for p in points[2000 : 2000 + history]] == ["after_gap"] * history
    assert all(p["score"] is not None for p in points[2000 + history :])
    assert all(p["score"] is not None for p in points[history:2000])
    assert {p.get("unscored") for p in points[:history]} == {"warming_up"}


def test_sensitivity_is_monotone_and_calibrated_on_normal_data(
    assets: tuple[Path, ModelServerHandle, GatewayHandle],
) -> None:
    """art_daily_small_noise (no anomaly) through its own model: the flagged share keeps the promise."""
    _, _, gateway = assets
    csv_text = require(NAB_TRAIN_CSV).read_text()
    shares = []
    for sensitivity in (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 1.0):
        body = score(gateway, csv_text, sensitivity=sensitivity).json()
        scored = [p for p in body["points"] if p["score"] is not None][1000:]  # past the baseline's start
        share = sum(p["is_anomaly"] for p in scored) / len(scored)
        promised = false_alarm_rate(sensitivity)
        assert body["expected_false_alarms_per_1000"] == pytest.approx(1000 * promised, abs=1e-6)
        if sensitivity >= 0.9:
            assert promised / 2 <= share <= promised * 2, (sensitivity, promised, share)
        else:  # rare rates on a drifting real series: bounded by the recent error's new records (docs/anomaly.md)
            records = 10 * (1 + np.log(len(scored))) / len(scored)
            assert share <= max(promised * 2, records), (sensitivity, promised, share)
        shares.append(share)
    assert shares == sorted(shares) and shares[-1] > shares[0]


def test_training_and_serving_put_a_messy_series_on_the_same_grid(tmp_path: Path) -> None:
    """Duplicates, jitter, a clock shift, a short and a long gap: the training job's grid is the gateway's."""
    rng = np.random.default_rng(4)
    steps = np.concatenate([np.arange(0, 400), np.arange(405, 700), np.arange(1000, 1500)])
    times = 1.7e9 + 300.0 * steps + rng.integers(-20, 21, steps.size)
    times[500:] += 60  # the sensor's clock shifts by a minute
    times = np.concatenate([times, times[[10, 600, 900]]])  # three duplicated readings
    values = np.sin(np.arange(times.size) / 20) * 10 + rng.normal(0, 0.5, times.size)
    stamps = [np.datetime_as_string(np.datetime64(int(t), "s")) for t in times]
    csv = tmp_path / "messy.csv"
    csv.write_text("timestamp,value\n" + "".join(f"{s},{v:.4f}\n" for s, v in zip(stamps, values, strict=True)))

    trained = read_sensor_csv(csv)
    served = prepare_series(
        parse_csv_series(csv.read_text()),
        interval_seconds=trained.interval_seconds,
        sensor_names=["value"],
        history_length=16,
    )
    assert trained.interval_seconds == 300
    assert trained.parts == served.parts and len(served.parts) == 2 and len(served.gaps) == 1
    np.testing.assert_array_equal(trained.timestamps, served.grid_timestamps)
    np.testing.assert_array_equal(trained.values, served.values)
    assert served.filled.sum() == 5  # the short gap: steps 400..404


def test_sharded_training_publishes_every_asset_and_one_complete_config(tmp_path: Path) -> None:
    """The Indexed Job's sharding as local processes: two shards of one folder, run at the same time."""
    data = tmp_path / "assets"
    (data / "plant-b").mkdir(parents=True)
    sources = sorted(require(NAB_DIR / "realAWSCloudwatch").glob("ec2_cpu_utilization_*.csv"))[:3]
    targets = [data / "pump-1.csv", data / "pump-2.csv", data / "plant-b" / "fan-3.csv"]
    for source, target in zip(sources, targets, strict=True):
        target.write_text("".join(source.read_text().splitlines(keepends=True)[:400]))
    models = tmp_path / "models"
    shards = [
        subprocess.Popen(
            python_module("training", "anomaly", "--data", str(data), "--out", str(models), "--epochs", "1"),
            env={**os.environ, "JOB_COMPLETION_INDEX": str(index), "SHARD_COUNT": "2"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO_ROOT,
        )
        for index in range(2)
    ]
    outputs = [shard.communicate(timeout=600)[0] for shard in shards]
    assert [shard.returncode for shard in shards] == [0, 0], outputs
    assert "[assets 2/2]" in outputs[0] and "[assets 1/1]" in outputs[1]  # files 0, 2 and file 1
    names = ["fan-3", "pump-1", "pump-2"]
    assert sorted(p.name for p in models.iterdir() if p.is_dir()) == names
    assert all((models / name / "1" / "saved_model.pb").is_file() for name in names)
    config = (models / "models.config").read_text()
    assert re.findall(r'name: "([^"]+)"', config) == names
    assert not list(models.glob(".models-config-*"))


def test_one_absurd_value_is_reported_and_does_not_blind_the_detector(
    assets: tuple[Path, ModelServerHandle, GatewayHandle],
) -> None:
    """values[300] = 1e30 in a 400-point series: every later point is scored, and a real spike at 330 is found."""
    _, _, gateway = assets
    rows = require(NAB_TRAIN_CSV).read_text().splitlines()
    rows = rows[1:401]
    stamps = [row.split(",")[0] for row in rows]
    values = [float(row.split(",")[1]) for row in rows]
    values[300] = 1e30
    values[330] += 500.0
    body = requests.post(gateway.url + ANOMALY, json={"timestamps": stamps, "values": values}, timeout=60).json()
    points = body["points"]
    assert all(p["score"] is not None for p in points[body["history_length"] :])
    assert points[300]["is_anomaly"] and points[300]["alarm"]
    assert points[330]["is_anomaly"] and points[330]["score"] > body["threshold"]
    assert all(not p["is_anomaly"] for p in points[body["history_length"] : 300])


def test_an_event_starting_on_a_filled_point_raises_its_alarm_on_the_next_reading(
    assets: tuple[Path, ModelServerHandle, GatewayHandle],
) -> None:
    """Reading 300 is missing (filled on the grid) and reading 301 is absurd, so the event starts on the filled
    point, which no reading stands for: the alarm goes to reading 301, not nowhere."""
    _, _, gateway = assets
    rows = require(NAB_TRAIN_CSV).read_text().splitlines()[1:401]
    stamps = [row.split(",")[0] for row in rows]
    values = [float(row.split(",")[1]) for row in rows]
    values[301] = 1e30
    missing = stamps.pop(300)
    values.pop(300)
    body = requests.post(gateway.url + ANOMALY, json={"timestamps": stamps, "values": values}, timeout=60).json()
    assert body["filled_points"] == 1
    alarmed = [p["timestamp"] for p in body["points"] if p["alarm"]]
    starts = [event["start"] for event in body["anomalies"]]
    assert len(alarmed) == len(starts)
    assert missing.replace(" ", "T") + "Z" in starts  # NAB writes "2014-02-14 14:30:00"
    assert body["points"][300]["alarm"] and body["points"][300]["timestamp"] not in starts

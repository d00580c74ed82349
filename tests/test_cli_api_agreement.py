"""The CLI shows what the API says: the same numbers, the same timestamps, the same model version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from client.results import parse_timestamp
from client.tables import number, when
from tests.test_client_cli import JUMPSUP, run_cli

pytestmark = pytest.mark.slow


def test_number_and_time_formats_round_trip() -> None:
    assert number(0.99995) == "0.99995" and number(1.0) == "1.0" and number(0.25) == "0.25"
    for text in ("2014-04-11T09:05:00Z", "2014-04-11T09:05:00.250000Z"):
        assert when(parse_timestamp(text)) == text


def table_rows(stdout: str, header: str) -> list[list[str]]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    return [line.split() for line in lines[start + 1 :] if line.strip()]


def test_score_table_and_json_show_the_api_values(gateway, nab_dir: Path) -> None:
    csv = nab_dir / JUMPSUP
    api = requests.post(
        f"{gateway.url}/v1/anomaly:score", data=csv.read_bytes(), headers={"Content-Type": "text/csv"}, timeout=60
    ).json()
    assert api["anomalies"], "the jumpsup series must have an anomalous segment for this test"
    shown = run_cli("score", str(csv), url=gateway.url)
    assert shown.returncode == 0, shown.stderr
    rows = table_rows(shown.stdout, "START")
    expected = [[a["start"], a["end"], str(a["points"]), repr(a["peak_score"]), a["peak_at"]] for a in api["anomalies"]]
    assert rows == expected
    assert f"threshold {api['threshold']!r}," in shown.stdout
    as_json = json.loads(run_cli("score", "--json", str(csv), url=gateway.url).stdout)
    assert [p["timestamp"] for p in as_json["points"]] == [p["timestamp"] for p in api["points"]]
    assert [(a["start"], a["peak_at"], a["peak_score"]) for a in as_json["anomalies"]] == [
        (a["start"], a["peak_at"], a["peak_score"]) for a in api["anomalies"]
    ]
    assert as_json["model"] == api["model"]


def test_predict_json_and_table_show_the_api_values(gateway, mnist_npz: Path, tmp_path: Path) -> None:
    with np.load(mnist_npz) as data:
        digit = data["x_test"][3]
    path = tmp_path / "digit.png"
    Image.fromarray(255 - digit).resize((112, 112)).save(path)
    api = requests.post(
        f"{gateway.url}/v1/digits:predict", data=path.read_bytes(), headers={"Content-Type": "image/png"}, timeout=30
    ).json()
    [predicted] = api["predictions"]
    [as_json] = json.loads(run_cli("predict", "--json", str(path), url=gateway.url).stdout)
    assert as_json["model"] == api["model"] and isinstance(as_json["model"]["version"], int)
    assert (as_json["digit"], as_json["confidence"], as_json["probabilities"]) == (
        predicted["digit"],
        predicted["confidence"],
        predicted["probabilities"],
    )
    shown = run_cli("predict", str(path), url=gateway.url)
    [row] = table_rows(shown.stdout, "IMAGE")[:1]
    assert row[1:3] == [str(predicted["digit"]), repr(predicted["confidence"])]
    assert shown.stdout.splitlines()[-1] == f"model {api['model']['name']} v{api['model']['version']}"

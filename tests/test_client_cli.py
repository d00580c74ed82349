"""`python -m client` as a subprocess against the real local stack: output and exit codes 0/1/2/3."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fixtures_gateway import GatewayHandle, start_gateway
from tests.processes import REPO_ROOT, free_port, python_module

JUMPSUP = "artificialWithAnomaly/art_daily_jumpsup.csv"
IMAGES = 12  # enough to show the progress bar


def run_cli(*args: str, url: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    url_args = ("--url", url) if url else ()
    return subprocess.run(
        python_module("client", *url_args, *args),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def digit_files(mnist_npz: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[int]]:
    folder = tmp_path_factory.mktemp("digits")
    with np.load(mnist_npz) as data:
        images, labels = data["x_test"][:IMAGES], data["y_test"][:IMAGES]
    paths = []
    for index, image in enumerate(images):
        path = folder / f"digit{index:02d}.png"
        Image.fromarray(255 - image).save(path)  # black ink on white, like a scan
        paths.append(path)
    return paths, [int(label) for label in labels]


def test_predict_table_and_progress(gateway, digit_files) -> None:
    paths, labels = digit_files
    result = run_cli("predict", *map(str, paths), url=gateway.url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["IMAGE", "DIGIT", "CONFIDENCE", "NEXT", "BEST"]
    digits = [int(line.split()[1]) for line in lines[1 : 1 + IMAGES]]
    assert np.mean(np.array(digits) == labels) >= 0.75
    assert lines[-1].startswith("model mnist v")
    assert f"{IMAGES}/{IMAGES}" in result.stderr  # tqdm's final count


def test_predict_json(gateway, digit_files) -> None:
    paths, _ = digit_files
    result = run_cli("predict", "--json", "--batch-size", "5", str(paths[0]), str(paths[1]), url=gateway.url)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert [a["image"] for a in answer] == [str(paths[0]), str(paths[1])]
    assert all(len(a["probabilities"]) == 10 and 0 <= a["digit"] <= 9 for a in answer)


def test_bad_image_exits_1(gateway, tmp_path: Path) -> None:
    fake = tmp_path / "fake.png"
    fake.write_text("not a png at all")
    result = run_cli("predict", str(fake), url=gateway.url)
    assert result.returncode == 1
    assert "error" in result.stderr and "HTTP 4" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("predict",),
        ("predict", "--batch-size", "65", "x.png"),
        ("frobnicate",),
        ("predict", "no-such-file.png"),
        ("score", "x.csv", "--threshold", "0.5", "--sensitivity", "2"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    result = run_cli(*args, url="http://127.0.0.1:9")
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_unreachable_exits_3(tmp_path: Path) -> None:
    image = tmp_path / "blank.png"
    Image.new("L", (28, 28)).save(image)
    url = f"http://127.0.0.1:{free_port()}"
    for args in (("health",), ("predict", str(image)), ("--retries", "0", "models")):
        result = run_cli(*args, url=url)
        assert result.returncode == 3, (args, result.stderr)
        assert "unreachable" in result.stderr
    from_env = run_cli("health", env={"GATEWAY_URL": url})
    assert from_env.returncode == 3 and url in from_env.stderr


def test_health_and_models(gateway) -> None:
    health = run_cli("health", env={"GATEWAY_URL": gateway.url})
    assert health.returncode == 0, health.stderr
    assert health.stdout.splitlines() == ["live: ok", "ready: yes"]
    models = run_cli("models", "--url", gateway.url)  # the option after the sub-command works too
    assert models.returncode == 0, models.stderr
    rows = [line.split() for line in models.stdout.splitlines()[1:]]
    available = {(row[0], row[1]) for row in rows if row[3] == "AVAILABLE"}
    assert {("mnist", "digits"), ("anomaly", "anomaly")} <= available
    as_json = json.loads(run_cli("models", "--json", url=gateway.url).stdout)
    assert {m["name"] for m in as_json} >= {"mnist", "anomaly"}


def test_score_summary_json_and_plot(gateway, nab_dir: Path, tmp_path: Path) -> None:
    csv = nab_dir / JUMPSUP
    plot = tmp_path / "scored.png"
    result = run_cli("score", str(csv), "--plot", str(plot), url=gateway.url)
    assert result.returncode == 0, result.stderr
    assert "4032 points" in result.stdout and "model anomaly v" in result.stdout
    segments = int(result.stdout.splitlines()[1].split()[0])
    assert segments >= 1
    assert "START" in result.stdout and "2014-04-1" in result.stdout
    with Image.open(plot) as picture:
        assert picture.format == "PNG" and picture.size == (1200, 600)
        colours = picture.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50  # lines, shading and text, not a blank canvas
    answer = json.loads(run_cli("score", "--json", "--threshold", "0.99", str(csv), url=gateway.url).stdout)
    assert answer["threshold"] == 0.99 and len(answer["points"]) == 4032
    assert all(a["peak_score"] > 0.99 for a in answer["anomalies"])


def test_score_rejected_csv_exits_1(gateway, tmp_path: Path) -> None:
    short = tmp_path / "short.csv"
    short.write_text("timestamp,value\n2024-01-01 00:00:00,1.0\n2024-01-01 00:05:00,2.0\n")
    result = run_cli("score", str(short), url=gateway.url)
    assert result.returncode == 1
    assert "HTTP 4" in result.stderr


@pytest.fixture(scope="module")
def gateway_without_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayHandle]:
    """A real gateway whose model server is not running: live, never ready, 503 on predictions."""
    handle = start_gateway(
        f"127.0.0.1:{free_port()}", log_dir=tmp_path_factory.mktemp("lonely-gateway"), workers=1, deadline_seconds=1
    )
    try:
        yield handle
    finally:
        handle.stop()


def test_not_ready_and_503_exit_1(gateway_without_models, digit_files) -> None:
    url = gateway_without_models.url
    health = run_cli("health", url=url)
    assert health.returncode == 1
    assert health.stdout.startswith("live: ok\nready: no: ")
    predict = run_cli("--retries", "1", "predict", str(digit_files[0][0]), url=url)
    assert predict.returncode == 1
    assert "HTTP 503" in predict.stderr

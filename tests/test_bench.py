"""Smoke test of `python -m bench`: a real stack, real wrk load for one second per level, real results."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.processes import REPO_ROOT, python_module, tool

SCENARIOS = ("digit_1", "digits_32", "series_1000", "series_10080")


@pytest.mark.slow
def test_bench_runs_every_scenario_without_errors(trained_models: Path, mnist_npz: Path, tmp_path: Path) -> None:
    tool("wrk")
    out = tmp_path / "results"
    command = python_module(
        "bench",
        "--models",
        str(trained_models),
        "--out",
        str(out),
        "--duration",
        "1",
        "--warmup",
        "0",
        "--concurrency",
        "2",
        "--requests",
        "20",
        "--import-runs",
        "1",
        "--mnist-data",
        str(mnist_npz),
    )
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=200)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]

    results = json.loads((out / "bench.json").read_text())
    assert (out / "bench.png").stat().st_size > 10_000
    assert set(results["scenarios"]) == set(SCENARIOS)
    for name, scenario in results["scenarios"].items():
        [level] = scenario["levels"]
        assert level["concurrency"] == 2
        assert level["requests"] > 0 and level["requests_per_s"] > 0, name
        # requests_per_s is rounded to 0.1: at a few requests/s of 10,080 points that alone is over 1%
        assert level["items_per_s"] == pytest.approx(
            level["requests_per_s"] * scenario["items_per_request"], rel=0.01, abs=0.05 * scenario["items_per_request"]
        )
        assert level["errors"]["total"] == 0, (name, level["errors"])
        latency = level["latency_ms"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"], (name, latency)
        processes = level["processes"]
        assert {"model server", "gateway worker 1", "gateway worker 2", "load generator (wrk)"} <= set(processes)
        assert processes["model server"]["cpu_seconds"] > 0
        assert all(usage["peak_rss_mb"] > 1 for usage in processes.values())
        assert level["stack_cpu_ms_per_request"] > 0
        if name.startswith("digit"):  # the gateway's own histogram: images per Predict call upstream
            assert level["images_per_predict"] >= scenario["items_per_request"]

    [off] = results["microbatching"]["off"]["levels"]
    assert off["requests"] > 0 and off["errors"]["total"] == 0
    assert off["images_per_predict"] == 1.0  # micro-batching really was off
    assert results["microbatching"]["off"]["sequential"]["p50_ms"] > 0
    paths = results["comparisons"]["paths"]
    assert set(paths) == {"gateway_png_1", "grpc_1", "grpc_32", "rest_1", "rest_32"}
    assert all(row["requests"] == 20 and row["p50_ms"] > 0 for row in paths.values())
    assert results["import"]["tensorflow_loaded"] is False
    assert len(results["memory"]["gateway_workers"]) == 2
    statuses = {row["target"]: row["status"] for row in results["targets"]}
    assert statuses["errors over every level (non-2xx + socket)"] == "PASS"
    assert statuses["single digits at 16 clients: throughput"] == "n/a"  # that level was not run
    assert set(statuses.values()) <= {"PASS", "MISS", "n/a"}


@pytest.mark.slow
def test_request_path_counts_the_hops_of_both_routes(trained_models: Path, tmp_path: Path) -> None:
    out = tmp_path / "path.json"
    command = python_module("bench.request_path", "--models", str(trained_models), "--out", str(out), "--timed", "3")
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=200)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    results = json.loads(out.read_text())
    for route, step in (("digit", "DigitEndpoint"), ("series", "AnomalyEndpoint")):
        functions = results[route]["function_list"]
        assert "serving.gateway.endpoint.serve_request" in functions, route
        assert [
            f"serving.gateway.{'digits' if route == 'digit' else 'anomaly'}.{step}.{name}" in functions
            for name in ("read", "preprocess", "predict", "postprocess")
        ] == [True] * 4, route
        assert results[route]["functions"] == len(functions) and results[route]["modules"] >= 8
        assert results[route]["timed"] == 3 and results[route]["median_ms"] > 0


@pytest.mark.slow
def test_app_cost_times_the_request_and_its_parts(trained_models: Path, tmp_path: Path) -> None:
    """A tiny `python -m bench.app_cost`: every part measured, and a whole request costs more than any part."""
    out = tmp_path / "app_cost.json"
    command = python_module(
        "bench.app_cost", "--models", str(trained_models), "--out", str(out), "--calls", "20", "--rounds", "3"
    )
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=200)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    parts = json.loads(out.read_text())["parts"]
    assert list(parts) == ["whole request", "flask and hooks", "image to digit", "predict", "metric write"]
    assert all(len(part["rounds_ms"]) == 3 and part["median_ms"] > 0 for part in parts.values())
    whole = parts["whole request"]["median_ms"]
    assert whole > parts["predict"]["median_ms"] and whole > parts["flask and hooks"]["median_ms"]
    assert out.with_suffix(".png").stat().st_size > 0


def run_app_cost(models: Path, out: Path) -> subprocess.CompletedProcess[str]:
    command = python_module("bench.app_cost", "--models", str(models), "--out", str(out))
    # The timeout is the check that it stops at once: the harness used to wait 300 s for the model to appear.
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("missing", ["mnist", "anomaly"])
def test_benchmarks_refuse_a_models_folder_without_a_model_at_once(
    trained_models: Path, tmp_path: Path, missing: str
) -> None:
    """A folder lacking one of the models ends the benchmark with one line naming what is missing."""
    partial = tmp_path / "models"
    shutil.copytree(trained_models, partial, ignore=shutil.ignore_patterns(missing))
    finished = run_app_cost(partial, tmp_path / "cost.json")
    assert finished.returncode == 1
    assert finished.stderr.strip().splitlines()[-1] == (
        f"error: no exported version of {missing!r} under {partial / missing}: train one first (python -m training)"
    )


def test_benchmarks_refuse_a_folder_whose_config_does_not_serve_a_model(trained_models: Path, tmp_path: Path) -> None:
    """A folder trained for other models (its own models.config without mnist) is refused by name, at once."""
    folder = tmp_path / "models"
    shutil.copytree(trained_models, folder)
    config = folder / "models.config"
    config.write_text(
        'model_config_list { config { name: "anomaly" base_path: "/models/anomaly" model_platform: "tensorflow" } }\n'
    )
    finished = run_app_cost(folder, tmp_path / "cost.json")
    assert finished.returncode == 1
    assert finished.stderr.strip().splitlines()[-1] == f"error: {config} serves anomaly, not 'mnist'"

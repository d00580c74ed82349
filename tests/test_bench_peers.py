"""A tiny slice of `python -m bench.peers`: a real model server, our gateway and the minimum under real load.

The KServe and BentoML peers need their own venvs, which take minutes to build from PyPI: CI does not build
them. Their test runs where `make bench-peers` already built them, and skips with the reason otherwise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.peers import venvs
from tests.processes import REPO_ROOT, python_module, tool

PEER_VENVS = REPO_ROOT / "bench-results" / "peers-venvs"


def run_peers(
    models: Path, mnist_npz: Path, out: Path, peers: list[str], timeout: float, extra: tuple[str, ...] = ()
) -> dict:
    command = python_module(
        "bench.peers",
        "--models",
        str(models),
        "--out",
        str(out),
        "--venvs",
        str(PEER_VENVS),
        "--peers",
        *peers,
        "--scenarios",
        "digit_1",
        "digits_32",
        "--concurrency",
        "2",
        "--duration",
        "1",
        "--repeats",
        "1",
        "--requests",
        "20",
        "--floor-calls",
        "10",
        "--mnist-data",
        str(mnist_npz),
        *extra,
    )
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert (out / "peers.png").stat().st_size > 10_000
    return json.loads((out / "peers.json").read_text())


def check_level(row: dict, name: str) -> None:
    assert row["requests_per_s"] > 0 and row["errors"] == 0, (name, row)
    assert 0 < row["p50_ms"] <= row["p99_ms"], (name, row)
    assert row["model_server_cpu_ms_per_request"] > 0, (name, row)


@pytest.mark.slow
def test_ours_against_the_minimum(trained_models: Path, mnist_npz: Path, tmp_path: Path) -> None:
    tool("wrk")
    # --baseline: a second gateway from another source tree (here a copy of this one), in the same rounds
    baseline = tmp_path / "baseline"
    shutil.copytree(REPO_ROOT / "serving", baseline / "serving", ignore=shutil.ignore_patterns("__pycache__"))
    peers = ["ours", "minimum-rest", "minimum-grpc"]
    results = run_peers(trained_models, mnist_npz, tmp_path / "out", peers, 300, ("--baseline", str(baseline)))

    assert set(results["peers"]) == {*peers, "ours-baseline"} and not results["skipped"]
    for name, scenarios in results["peers"].items():
        for scenario, levels in scenarios.items():
            check_level(levels["2"], f"{name} {scenario}")
    ours = results["peers"]["ours"]["digit_1"]["2"]
    assert ours["peer_cpu_ms_per_request"] > 0 and ours["peer_peak_rss_mb"] > 30
    assert any(name.startswith("ours") for name in ours["cpu_ms_per_request_by_process"])
    minimum = results["peers"]["minimum-grpc"]["digits_32"]["2"]
    assert minimum["peer_cpu_ms_per_request"] is None  # nothing between the client and the model server
    assert minimum["items_per_s"] == pytest.approx(32 * minimum["requests_per_s"], rel=0.01)
    ratio = results["ratios_to_ours"]["minimum-rest"]["digit_1"]["2"]
    assert ratio["requests_per_s"] == pytest.approx(
        results["peers"]["minimum-rest"]["digit_1"]["2"]["requests_per_s"] / ours["requests_per_s"], rel=0.01
    )

    assert [row["batch_size"] for row in results["floor"]] == [1, 32]
    assert all(row["digits_per_s"] > 0 for row in results["floor"])
    assert results["overhead"]["gateway_png_1"]["p50_ms"] > 0
    assert results["baseline_overhead"]["gateway_png_1"]["p50_ms"] > 0
    assert results["settings"]["baseline"] == str(baseline)
    assert results["ratios_to_ours"]["ours-baseline"]["digit_1"]["2"]["peer_cpu_ms_per_request"] > 0
    by_name = {row["target"]: row for row in results["targets"]}
    assert by_name["errors, every peer and level"]["status"] == "PASS"
    assert by_name["single digits, 16 clients: ours / best peer req/s"]["status"] == "n/a"  # no peer, no level 16
    assert by_name["gateway overhead over a direct Predict, p50"]["measured"] == results["overhead"]["overhead_p50_ms"]


@pytest.mark.slow
def test_kserve_and_bentoml_peers(trained_models: Path, mnist_npz: Path, tmp_path: Path) -> None:
    tool("wrk")
    for peer in ("kserve", "bentoml"):
        built = PEER_VENVS / peer / venvs.STAMP
        if not built.exists() or built.read_text() != (venvs.PEERS_DIR / peer / "requirements.txt").read_text():
            pytest.skip(
                f"the {peer} venv is not built ({PEER_VENVS / peer}): `make bench-peers` builds it from "
                "PyPI in minutes, which CI does not spend"
            )
    results = run_peers(trained_models, mnist_npz, tmp_path, ["ours", "kserve-rest", "kserve-grpc", "bentoml"], 300)

    assert not results["skipped"]
    for name in ("kserve-rest", "kserve-grpc", "bentoml"):
        for scenario, levels in results["peers"][name].items():
            check_level(levels["2"], f"{name} {scenario}")
            assert levels["2"]["peer_peak_rss_mb"] > 30
        assert results["ratios_to_ours"][name]["digit_1"]["2"]["requests_per_s"] > 0

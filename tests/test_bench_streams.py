"""A tiny slice of `python -m bench.streams`: both stores, real load for one second, real memory numbers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.processes import REPO_ROOT, python_module, tool


@pytest.mark.slow
def test_stream_bench_runs_on_both_stores(trained_models: Path, tmp_path: Path) -> None:
    tool("redis-server")
    out = tmp_path / "results"
    command = python_module(
        "bench.streams",
        "--models",
        str(trained_models),
        "--out",
        str(out),
        "--duration",
        "1",
        "--concurrency",
        "2",
        "--memory-streams",
        "50",
    )
    finished = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    results = json.loads((out / "streams.json").read_text())
    assert (out / "streams.png").stat().st_size > 10_000
    assert set(results["stores"]) == {"sqlite", "redis"}
    for kind, result in results["stores"].items():
        [level] = result["levels"]
        assert level["concurrency"] == 2 and level["appends"] > 0 and level["errors"] == 0, kind
        assert 0 < level["latency_ms"]["p50_ms"] <= level["latency_ms"]["p99_ms"]
        assert level["store_round_trips_per_append"] == 2.0  # one read, one conditional write
        assert {"store_read", "upstream", "score", "store_write"} <= set(level["stage_means_ms"])
        memory = result["memory"]
        assert memory["streams"] == 50 and memory["blob_bytes"] > 100 and memory["bytes_per_stream"] > 0

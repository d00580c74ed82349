"""The MNIST training job as a user runs it (`python -m training mnist --data ...`), timed from outside.

Wall time is measured from process start to exit (TensorFlow's import, training, scoring and the export all
count); each output line is time-stamped on arrival, so the longest silence shows whether any step runs without
a word (the old pipeline's teardown after the last epoch was a silent minute).
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def run_job(data: str | None, seed: int, epochs: int) -> dict:
    """One run in a fresh process, models written to a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="bench-mnist-job-") as out:
        command = [sys.executable, "-u", "-m", "training", "mnist", "--out", out, "--seed", str(seed)]
        command += ["--epochs", str(epochs)]
        command += ["--data", data] if data else []
        load_before = round(os.getloadavg()[0], 2)
        started = time.perf_counter()
        stamps: list[tuple[float, str]] = []
        with subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        ) as job:
            assert job.stdout is not None
            for line in job.stdout:
                stamps.append((time.perf_counter() - started, line.rstrip()))
        wall = time.perf_counter() - started
        if job.returncode != 0:
            raise RuntimeError(f"training job failed ({job.returncode}):\n" + "\n".join(t for _, t in stamps[-20:]))
        report = json.loads(next(Path(out).glob("mnist/*/training_report.json")).read_text())
    gaps = [(later - earlier, line) for (earlier, _), (later, line) in itertools.pairwise(stamps)]
    silence, before_line = max(gaps, default=(0.0, ""))
    last_epoch = max(i for i, (_, line) in enumerate(stamps) if line.startswith("[mnist] epoch "))
    return {
        "wall_seconds": round(wall, 2),
        "test_accuracy": round(report["metrics"]["test_accuracy"], 4),
        "fit_seconds": report["metrics"]["fit_seconds"],
        "longest_silence_seconds": round(silence, 2),
        "longest_silence_before": before_line,
        # The "silent minute": from the last epoch's line to the next word of the job.
        "after_last_epoch_seconds": round(stamps[last_epoch + 1][0] - stamps[last_epoch][0], 2),
        "load_average_before": load_before,
    }


def time_training_job(data: str | None, seed: int, runs: int, epochs: int) -> dict:
    results = []
    for index in range(runs):
        results.append(run_job(data, seed, epochs))
        print(f"[job] run {index + 1}/{runs}: {results[-1]}", flush=True)
    return {
        "runs": results,
        "median_wall_seconds": round(statistics.median(r["wall_seconds"] for r in results), 2),
        "median_test_accuracy": round(statistics.median(r["test_accuracy"] for r in results), 4),
    }

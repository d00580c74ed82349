"""The NAB scorer (bench/nab/scorer.py) against NAB's published scores, and a slice of `make bench-nab`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench.nab.corpus import labelled_files, reference_scores
from bench.nab.scorer import PROFILES, FileScore, normalised, probationary_rows, score_file
from tests.conftest import SHARED_DATA, require
from tests.processes import REPO_ROOT, python_module

NAB = SHARED_DATA / "nab"
# NAB's thresholds for the Numenta HTM detector, per profile, and the normalised scores they give on the
# 46 shared files (shared/data/README.md).
NUMENTA = {
    "standard": (0.5421876907348634, 70.77),
    "reward_low_FP_rate": (0.5751955032348636, 63.40),
    "reward_low_FN_rate": (0.5421876907348634, 74.83),
}


def test_scorer_reproduces_the_published_numenta_scores() -> None:
    files = labelled_files(require(NAB))
    assert len(files) == 46 and sum(len(f.windows) for f in files) == 88
    for profile in PROFILES:
        threshold, published = NUMENTA[profile.name]
        scores = []
        for nab_file in files:
            timestamps, values = reference_scores(NAB, "numenta", nab_file)
            scores.append(score_file(timestamps, values >= threshold, nab_file.windows, profile))
        assert round(normalised(scores), 2) == published, profile.name


def test_scoring_rules_on_a_hand_made_file() -> None:
    """1,000 rows, probation 150, one window of rows 400..499."""
    times = np.arange(1000.0)
    window = [(400.0, 499.0)]
    standard = PROFILES[0]
    assert probationary_rows(1000) == 150 and probationary_rows(10_000) == 750
    nothing = score_file(times, np.zeros(1000, bool), window, standard)
    assert (nothing.score, nothing.null_score, nothing.perfect_score) == (-1.0, -1.0, 1.0)
    detections = np.zeros(1000, bool)
    detections[[400, 450]] = True  # only the earliest detection in a window counts
    assert score_file(times, detections, window, standard).score == pytest.approx(1.0)
    late = np.zeros(1000, bool)
    late[499] = True  # the window's last row is worth almost nothing
    sigma = lambda x: 2 / (1 + np.exp(5 * x)) - 1  # noqa: E731 - NAB's scaled sigmoid
    assert score_file(times, late, window, standard).score == pytest.approx(sigma(-1 / 100) / sigma(-1))
    false_alarms = np.zeros(1000, bool)
    false_alarms[[100, 300, 501, 900]] = True  # in probation (free), before the window (full cost), after it
    result = score_file(times, false_alarms, window, standard)
    assert result.false_positives == 3 and result.detected_windows == 0
    assert result.score == pytest.approx(-1.0 - 0.11 + 0.11 * sigma(2 / 99) + 0.11 * sigma(401 / 99))
    assert normalised([nothing]) == 0.0 and normalised([score_file(times, detections, window, standard)]) == 100.0
    assert isinstance(result, FileScore)


def test_bench_nab_slice_trains_serves_and_scores(tmp_path: Path) -> None:
    """`python -m bench.nab` on the first six labelled files (the artificial ones), one epoch each."""
    require(NAB)
    out = tmp_path / "nab"
    finished = subprocess.run(
        python_module("bench.nab", "--nab", str(NAB), "--out", str(out), "--files", "6", "--epochs", "1"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    results = json.loads((out / "nab.json").read_text())
    assert [r["file"] for r in results["files"]][:2] == [
        "artificialNoAnomaly/art_daily_no_noise.csv",
        "artificialNoAnomaly/art_daily_perfect_square_wave.csv",
    ]
    assert len(results["files"]) == 6 and set(results["normalised"]) == {p.name for p in PROFILES}
    assert results["seed"] == 0  # the training CLI's default draw of the networks
    assert all(r["rows"] == 4032 for r in results["files"])
    assert (out / "nab.png").stat().st_size > 10_000
    assert "normalised NAB score" in finished.stdout

"""The Numenta Anomaly Benchmark's scoring rules (NAB v1.1), written from the published description.

A file is a list of row timestamps, the detector's binary detections per row and the labelled windows.
- The first `probationary_rows(n)` rows are not scored (the detector is still learning).
- Inside a window only the earliest detection counts, worth `A_TP * sigma(position) / sigma(-1)`, where the
  position runs from -1 at the window's first row towards 0 at its last and
  `sigma(x) = 2 / (1 + exp(5x)) - 1` (a scaled sigmoid; anything past 3 is -1).
- A detection outside every window costs `A_FP * sigma(distance)`, where the distance is counted in rows
  after the end of the previous window, in units of that window's width minus one (so an alarm just after a
  window costs little); before the first window it costs the full `A_FP`.
- A window with no (scored) detection costs `A_FN`; windows with no row after the probationary period do not
  count.
The corpus score is `100 * (S - S_null) / (S_perfect - S_null)` over all files, where the null detector
detects nothing (`-A_FN` per window) and the perfect one detects every window at its first row (`A_TP`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Profile:
    name: str
    true_positive: float
    false_positive: float
    false_negative: float


PROFILES = (
    Profile("standard", 1.0, 0.11, 1.0),
    Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
)


def probationary_rows(n_rows: int) -> int:
    """Rows a detector may learn from and that are never scored: min(floor(0.15 n), 750)."""
    return min(math.floor(0.15 * n_rows), 750)


def scaled_sigmoid(position: float) -> float:
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


@dataclass(frozen=True)
class FileScore:
    """Raw score parts of one file under one profile."""

    score: float
    null_score: float
    perfect_score: float
    detected_windows: int
    windows: int
    false_positives: int


def window_rows(timestamps: np.ndarray, windows: Sequence[tuple[float, float]]) -> list[tuple[int, int]]:
    """Each labelled window [start, end] (epoch seconds, inclusive) as the row range (first, last) it covers."""
    rows = []
    for start, end in windows:
        first = int(np.searchsorted(timestamps, start, side="left"))
        last = int(np.searchsorted(timestamps, end, side="right")) - 1
        if last >= first:
            rows.append((first, last))
    return rows


def score_file(
    timestamps: np.ndarray, detections: np.ndarray, windows: Sequence[tuple[float, float]], profile: Profile
) -> FileScore:
    """NAB's score of one file's detections (bool per row, rows in time order) under `profile`."""
    detections = np.asarray(detections, dtype=bool)
    n_rows = len(timestamps)
    if detections.shape != (n_rows,):
        raise ValueError(f"{detections.shape} detections for {n_rows} rows")
    probation = probationary_rows(n_rows)
    limits = window_rows(np.asarray(timestamps, dtype=np.float64), windows)
    max_tp = scaled_sigmoid(-1.0)
    window_of = np.full(n_rows, -1)
    for k, (first, last) in enumerate(limits):
        window_of[first : last + 1] = k
    best_in_window: dict[int, float] = {}
    scored_windows = {k for k, (_, last) in enumerate(limits) if last >= probation}
    false_positive_cost = 0.0
    false_positives = 0
    previous: tuple[int, int] | None = None
    for row in range(n_rows):
        k = int(window_of[row])
        if k >= 0:
            first, last = limits[k]
            if row >= probation and detections[row] and k not in best_in_window:
                width = last - first + 1
                weight = scaled_sigmoid(-(last - row + 1) / width) / max_tp
                best_in_window[k] = profile.true_positive * weight
            if row == last:
                previous = limits[k]
            continue
        if row < probation or not detections[row]:
            continue
        false_positives += 1
        if previous is None:
            false_positive_cost += -profile.false_positive
        else:
            first, last = previous
            distance = abs(last - row) / max(last - first, 1)
            false_positive_cost += profile.false_positive * scaled_sigmoid(distance)
    missed = len(scored_windows - set(best_in_window))
    windows_scored = len(scored_windows)
    score = sum(best_in_window.values()) + false_positive_cost - profile.false_negative * missed
    return FileScore(
        score=score,
        null_score=-profile.false_negative * windows_scored,
        perfect_score=profile.true_positive * windows_scored,
        detected_windows=len(best_in_window),
        windows=windows_scored,
        false_positives=false_positives,
    )


def normalised(scores: Sequence[FileScore]) -> float:
    """The corpus score: 0 for detecting nothing, 100 for detecting every window at its first row."""
    total = sum(s.score for s in scores)
    null = sum(s.null_score for s in scores)
    perfect = sum(s.perfect_score for s in scores)
    if perfect == null:
        raise ValueError("no labelled window to normalise by")
    return 100.0 * (total - null) / (perfect - null)

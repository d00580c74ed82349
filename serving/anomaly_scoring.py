"""Forecast errors -> self-adapting anomaly scores -> flags -> events (NumPy only; gateway and training share it).

The model's per-step error is the mean absolute forecast residual over the sensors, in units of the residual
spread it saw while learning. The score asks how unusual the recent errors are *for this series now*:

1. `recent`: the mean error of the last `average_points` scored points (one odd point is noise; several
   surprising points in a row are an event).
2. `baseline`: the mean and standard deviation of `recent` over the `baseline_points` scored points before
   it, with the model's own learning-period statistics mixed in as `prior_points` pseudo-points. A new series
   starts from what the model learnt; as it runs, its own recent history takes over, so drift in level or
   noise after training raises the baseline instead of raising alarms forever.
3. `score = Phi((recent - mean) / std)`: the normal probability that the recent errors are below what the
   baseline expects. Each point is judged only on points before it (causal).

A point is flagged when `score > 1 - alpha`, with `alpha = false_alarm_rate(sensitivity)` the share of
normal points expected above the threshold. An event opens at a flagged point when no event opened in the
`event_gap_points` before it; flags inside that while join the open event instead of raising new alarms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_SENSITIVITY = 0.5
# sensitivity 0 -> one normal point in a million above the threshold; 1 -> one in ten; log-linear between
LEAST_ALPHA_LOG10 = -6.0
MOST_ALPHA_LOG10 = -1.0
STD_FLOOR = 1e-3  # in error units (residual spreads): a perfectly predictable stretch is not infinitely sure


@dataclass(frozen=True)
class ScoreParams:
    """The scoring constants of one model version (exported in its `model_info`)."""

    average_points: int = 10
    baseline_points: int = 8000
    prior_points: int = 100
    event_gap_points: int = 300
    prior_mean: float = 1.0
    prior_std: float = 1.0


def false_alarm_rate(sensitivity: float) -> float:
    """Expected share of normal points flagged at `sensitivity` in [0, 1] (1e-6 .. 1e-1, log-linear)."""
    if not 0.0 <= sensitivity <= 1.0:
        raise ValueError("sensitivity must be in [0, 1]")
    return 10.0 ** (LEAST_ALPHA_LOG10 + (MOST_ALPHA_LOG10 - LEAST_ALPHA_LOG10) * sensitivity)


def threshold_for(sensitivity: float) -> float:
    """The score threshold of `sensitivity`: 1 - false_alarm_rate(sensitivity)."""
    return 1.0 - false_alarm_rate(sensitivity)


def _trailing_mean(values: np.ndarray, width: int) -> np.ndarray:
    total = np.concatenate(([0.0], np.cumsum(values)))
    index = np.arange(values.size)
    low = np.maximum(0, index - width + 1)
    return (total[index + 1] - total[low]) / (index + 1 - low)


def _baseline(recent: np.ndarray, params: ScoreParams) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of `recent` over the `baseline_points` before each point, shrunk towards the prior."""
    sums = np.concatenate(([0.0], np.cumsum(recent)))
    squares = np.concatenate(([0.0], np.cumsum(recent * recent)))
    index = np.arange(recent.size)
    low = np.maximum(0, index - params.baseline_points)
    count = index - low
    prior = float(params.prior_points)
    prior_second = params.prior_std**2 + params.prior_mean**2
    mean = (sums[index] - sums[low] + prior * params.prior_mean) / (count + prior)
    second = (squares[index] - squares[low] + prior * prior_second) / (count + prior)
    return mean, np.sqrt(np.maximum(second - mean * mean, 0.0))


def adaptive_scores(errors: np.ndarray, params: ScoreParams) -> np.ndarray:
    """Scores in [0, 1] for `errors` in time order; NaN errors (unscored points) get NaN and are skipped."""
    errors = np.asarray(errors, dtype=np.float64)
    scores = np.full(errors.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(errors))
    if valid.size == 0:
        return scores
    recent = _trailing_mean(errors[valid], params.average_points)
    mean, std = _baseline(recent, params)
    z = (recent - mean) / np.maximum(std, STD_FLOOR)
    scores[valid] = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
    return scores


def _erf(values: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(values)


def surprise(scores: np.ndarray) -> np.ndarray:
    """-log10(1 - score): the axis on which scores near 1 can be told apart (6 = one in a million)."""
    with np.errstate(divide="ignore"):
        return -np.log10(np.maximum(1.0 - np.asarray(scores, dtype=np.float64), 1e-12))


@dataclass(frozen=True)
class Event:
    """Grid positions of an event: where it opened (the alarm), its last flagged point and its peak."""

    start: int
    end: int
    peak: int


def group_events(flags: np.ndarray, scores: np.ndarray, event_gap_points: int) -> list[Event]:
    """Flagged positions -> events: a flag opens an event unless one opened within `event_gap_points` before."""
    events: list[Event] = []
    flagged = np.flatnonzero(np.asarray(flags, dtype=bool))
    start = end = -1
    for position in flagged.tolist():
        if start >= 0 and position - start <= event_gap_points:
            end = position
            continue
        if start >= 0:
            events.append(_event(start, end, scores))
        start = end = position
    if start >= 0:
        events.append(_event(start, end, scores))
    return events


def _event(start: int, end: int, scores: np.ndarray) -> Event:
    window = np.nan_to_num(np.asarray(scores[start:end + 1], dtype=np.float64), nan=-1.0)
    return Event(start, end, start + int(np.argmax(window)))

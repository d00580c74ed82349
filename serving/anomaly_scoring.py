"""Forecast errors and seasonal errors -> self-adapting anomaly scores -> flags -> events (NumPy only; gateway and
training share it).

Two kinds of evidence, each an error per point in units of its spread while learning:
- the forecast error: the mean absolute forecast residual over the sensors (the network's one-step forecast);
- the seasonal error (`seasonal_errors`): how far each reading is from the median of the readings at the same
  time of day on the `SEASON_CYCLES` days before it. A 64-step forecaster never sees yesterday, so a missing
  or shifted daily peak, or a day unlike the days before, is invisible to it; this sees exactly that.

Each kind is averaged over `average_points` (a short burst) and over `SUSTAINED_POINTS` (a sustained shift
whose single points look ordinary), and each of those four trailing means gets a tail:

1. `tail`: the share of the series' own baseline (the trailing means of the `baseline_points` before it,
   leaving out the last ones of the same width, which share its readings) that is at least as large, with the
   model's learning period mixed in as `prior_points` pseudo-points drawn from a normal fit. A conformal
   p-value: on normal data it is uniform whatever the errors' distribution, so the threshold means what the
   sensitivity promises. A new series starts from what the model learnt; as it runs, its own history takes
   over, so drift in level or noise after training raises the baseline instead of raising alarms forever.
2. The point's tail is the harmonic mean of the four (`combined_scores`: as sure as the surest piece of
   evidence, discounted for how many were asked), and `score = 1 - tail`. Each point is judged only on points
   before it (causal). A model whose learning period held too little of a second day (or that samples more
   often than once a minute) has no seasonal evidence (`seasonal_prior_std` 0); its points combine the two
   forecast tails.

Extreme transients (tail < `EXTREME_TAIL` within `event_gap_points` of their event's start) are kept out
of the baseline, so one absurd reading or a short burst never hides the next anomaly; a sustained change
joins the baseline once its event's while is over.

The learning period's errors are in-sample (the network was fitted to them), so they understate how large
later errors get: on the unlabelled NAB series, the 99th percentile of the errors after learning sits a
median 5.8 learnt spreads above the learnt mean, where a normal fit would put it at 2.3. The prior's
spread is therefore widened `PRIOR_SPREAD` times; this is what keeps a young series' first record errors
from being alarms, and it brings the flagged share closer to the promise (tests/test_anomaly_scoring.py).

A reading that leaves the range its series has shown so far by more than `RANGE_MARGIN` of that range
(`beyond_range`) scores at least `RANGE_SCORE`, one in a million: no forecast error makes such a value
ordinary. A point is flagged when `score > 1 - alpha`, with `alpha = false_alarm_rate(sensitivity)` the
share of normal points expected above the threshold.
An event opens at a flagged point when no event opened in the `event_gap_points` before it; flags inside
that while join the open event instead of raising new alarms.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np

# the middle of the sensitivities (0.6-0.7) where NAB's 46 files score within a point of the best, on five draws of
# the networks (1.8 flagged normal points in 1,000; docs/anomaly.md)
DEFAULT_SENSITIVITY = 0.65
# sensitivity 0 -> one normal point in a million above the threshold; 1 -> one in ten; log-linear between
LEAST_ALPHA_LOG10 = -6.0
MOST_ALPHA_LOG10 = -1.0
ERROR_CAP = 1e30  # an infinite error (an absurd reading) is a huge one, not a missing one
STD_FLOOR = 1e-3  # in error units (residual spreads): a perfectly predictable stretch is not infinitely sure
EXTREME_TAIL = 1e-4  # points rarer than this, early in an event, are kept out of the baseline
PRIOR_SPREAD = 3.0  # the learnt errors are in-sample: later errors spread ~3x wider in their upper tail
RANGE_MARGIN = 0.1  # a reading beyond the range seen so far by this share of it is flagged
RANGE_SCORE = 1.0 - 1e-6  # the score of such a reading: the threshold of sensitivity 0
RANGE_MIN_HISTORY = 500  # points seen before the range rule applies (a young series, or the first turn of
# a daily cycle, sets records often)
SUSTAINED_POINTS = 30  # the longer of the two averages of each evidence
SEASON_SECONDS = 86400.0  # the cycle of the seasonal evidence: a day
SEASON_CYCLES = 3  # its reference: the median of the same time on this many days before (one odd day is outvoted)
MIN_SEASONAL_POINTS = 100  # seasonal errors a learning period needs for a seasonal prior (as many as prior_points)
MIN_SEASON_INTERVAL_SECONDS = 60.0  # finer series have no seasonal evidence: a stream keeps SEASON_CYCLES days
# of grid points for it, at most 4,320 per sensor


@dataclass(frozen=True)
class ScoreParams:
    """The scoring constants of one model version (exported in its `model_info`)."""

    average_points: int = 10
    baseline_points: int = 8000
    prior_points: int = 100
    event_gap_points: int = 100  # 8 h at 5 minutes; 150 swallowed anomalies soon after a false alarm (RESULTS)
    prior_mean: float = 1.0
    prior_std: float = 1.0
    seasonal_prior_mean: float = 1.0
    seasonal_prior_std: float = 0.0  # 0: the model has no seasonal evidence (too little learnt of a second day)

    @property
    def seasonal(self) -> bool:
        return self.seasonal_prior_std > 0.0


def false_alarm_rate(sensitivity: float) -> float:
    """Expected share of normal points flagged at `sensitivity` in [0, 1] (1e-6 .. 1e-1, log-linear)."""
    if not 0.0 <= sensitivity <= 1.0:
        raise ValueError("sensitivity must be in [0, 1]")
    return 10.0 ** (LEAST_ALPHA_LOG10 + (MOST_ALPHA_LOG10 - LEAST_ALPHA_LOG10) * sensitivity)


def threshold_for(sensitivity: float) -> float:
    """The score threshold of `sensitivity`: 1 - false_alarm_rate(sensitivity)."""
    return 1.0 - false_alarm_rate(sensitivity)


def _trailing_mean(values: np.ndarray, width: int) -> np.ndarray:
    """Mean of each value and the `width - 1` before it (fewer at the start).

    A convolution, not a running sum: one absurd value (1e30) would wreck every later difference of sums. The
    zeros in front make every sum the same `width` terms in the same order however long `values` is, so a
    stream's last errors give the means of its whole history bit for bit.
    """
    sums = np.convolve(np.concatenate((np.zeros(width - 1), values)), np.ones(width), mode="valid")
    return sums / np.minimum(np.arange(1, values.size + 1), width)


@cache
def _pairs_before(block: int) -> np.ndarray:
    """[j, i] True where j < i: the pairs inside a block of `block` (built once per block size, read-only)."""
    mask = np.triu(np.ones((block, block), dtype=bool), k=1)
    mask.flags.writeable = False
    return mask


def _count_at_least(queries: np.ndarray, pool: np.ndarray, window: int, first: int = 0, block: int = 256) -> np.ndarray:
    """For each i from `first`: how many of pool[i - window:i] are >= queries[i] (a -inf in the pool never is).

    Block by block: the values before a block are sorted once and searched for the whole block; pairs that
    the sliding window adds (inside the block) or drops (its oldest values) are compared directly.
    O(n / block * window log window + n * block), all in NumPy.
    """
    n = queries.size
    at_least = np.zeros(max(0, n - first), dtype=np.int64)
    before = _pairs_before(block)
    for start in range(first, n, block):
        stop = min(start + block, n)
        size = stop - start
        current = queries[start:stop]
        oldest_start = max(0, start - window)
        history = np.sort(pool[oldest_start:start])
        counts = history.size - np.searchsorted(history, current, side="left")
        pairs = before[:size, :size]
        counts += np.count_nonzero((pool[start:stop, np.newaxis] >= current) & pairs, axis=0)
        # point i no longer sees the values of `history` before max(0, i - window)
        if start >= window:  # then that is the block's share of the oldest values, the j < i of them
            oldest = pool[oldest_start : oldest_start + size, np.newaxis]
            counts -= np.count_nonzero((oldest >= current) & pairs, axis=0)
        elif stop > window:
            drop = np.maximum(0, np.arange(start, stop) - window)
            oldest = pool[: int(drop.max()), np.newaxis]
            seen_then = np.arange(oldest.size)[:, np.newaxis] < drop
            counts -= np.count_nonzero((oldest >= current) & seen_then, axis=0)
        at_least[start - first : stop - first] = counts
    return at_least


def _tail(
    recent: np.ndarray, kept: np.ndarray, width: int, prior_tail: np.ndarray, params: ScoreParams, first: int
) -> np.ndarray:
    """Share of the baseline >= each recent value from `first` on, the prior's tail counted as `prior_points`
    pseudo-points (`prior_tail` holds the points from `first` on).

    The baseline of point i is the kept recent values of the `baseline_points` before i - width: the last
    `width` recent values share readings with point i's own, so they are no evidence of what is normal (and a
    burst would otherwise hide its own later points).
    """
    lag = min(width, recent.size)
    pool = np.concatenate((np.full(lag, -np.inf), np.where(kept, recent, -np.inf)[: recent.size - lag]))
    at_least = _count_at_least(recent, pool, params.baseline_points, first)
    kept_before = np.concatenate(([0], np.cumsum(np.isfinite(pool))))
    index = np.arange(first, recent.size)
    seen = kept_before[index] - kept_before[np.maximum(0, index - params.baseline_points)]
    return (at_least + params.prior_points * prior_tail) / (seen + params.prior_points)


def _kept_after_extremes(extreme: np.ndarray, gap: int, opened: int | None) -> tuple[np.ndarray, int | None]:
    """Which points stay in the baseline: not the extreme ones in the first `gap` points of their event.

    Extreme points group into events as `group_events` groups flags; `opened` is where the last such event
    opened, relative to extreme[0] (negative: before it; None: none yet). Returns the new `opened` as well.
    """
    kept = np.ones(extreme.size, dtype=bool)
    for position in np.flatnonzero(extreme).tolist():
        if opened is None or position - opened > gap:
            opened = position
        kept[position] = position - opened >= gap
    return kept, opened


@dataclass(frozen=True)
class Baseline:
    """One evidence's past, as much as its next points' tails depend on.

    `errors`: its last valid errors, oldest first; `kept` [widths, k]: whether each counts in the baseline of
    each trailing mean (`tail_widths` order); `opened_age`: per width, how many points before the last one its
    last extreme event opened (None: none within an event's while). Extending a baseline with new errors gives
    the tails that the whole history would give (`extend_tails`), so a stream keeps this, not its whole history.
    """

    errors: np.ndarray
    kept: np.ndarray
    opened_age: tuple[int | None, ...]

    @classmethod
    def empty(cls) -> Baseline:
        """No past: a new series (one row per trailing mean)."""
        return cls(np.zeros(0), np.ones((2, 0), dtype=bool), (None, None))

    def last(self, points: int) -> Baseline:
        """The same past, keeping its last `points` errors (enough when they cover what `history_points` says)."""
        return Baseline(self.errors[-points:], self.kept[:, -points:], self.opened_age)


def tail_widths(params: ScoreParams) -> tuple[int, int]:
    """The widths of an evidence's two trailing means: a short burst and a sustained shift."""
    return (params.average_points, SUSTAINED_POINTS)


def history_points(params: ScoreParams) -> int:
    """Errors a `Baseline` must keep for exact tails: the baseline window of the next point and the errors of
    its longest trailing means."""
    return params.baseline_points + 2 * max(tail_widths(params))


def extend_tails(
    past: Baseline, errors: np.ndarray, prior: tuple[float, float], params: ScoreParams
) -> tuple[list[np.ndarray], Baseline]:
    """The tails of new `errors` after `past` (one array per trailing mean; NaN where the error is NaN: those
    points are skipped), and the past extended by the valid ones.

    Two passes per trailing mean: the first finds the extreme points (tail below `EXTREME_TAIL`) of each
    event's first `event_gap_points`; the second judges every point against a baseline without them. So a
    transient (one absurd reading, a short burst) never becomes the normal that hides the next anomaly, while
    a sustained change joins the baseline once its event's while is over.
    """
    errors = np.asarray(errors, dtype=np.float64)
    valid = ~np.isnan(errors)
    tails = [np.full(errors.shape, np.nan) for _ in tail_widths(params)]
    if not valid.any():
        return tails, past
    first = past.errors.size
    values = np.minimum(np.concatenate((past.errors, errors[valid])), ERROR_CAP)
    scale = max(PRIOR_SPREAD * prior[1], STD_FLOOR)
    kept_rows, ages = [], []
    for row, width in enumerate(tail_widths(params)):
        recent = _trailing_mean(values, width)
        prior_tail = 0.5 * _erfc((recent[first:] - prior[0]) / scale / math.sqrt(2.0))  # the learnt normal fit
        first_pass = _tail(recent, np.ones(recent.size, dtype=bool), width, prior_tail, params, first)
        age = past.opened_age[row]
        new_kept, opened = _kept_after_extremes(
            first_pass < EXTREME_TAIL, params.event_gap_points, None if age is None else -1 - age
        )
        kept = np.concatenate((past.kept[row], new_kept))
        if kept[max(0, first - params.baseline_points - width) :].all():
            tails[row][valid] = first_pass
        else:
            tails[row][valid] = _tail(recent, kept, width, prior_tail, params, first)
        kept_rows.append(kept)
        age = None if opened is None else new_kept.size - 1 - opened
        ages.append(None if age is None or age >= params.event_gap_points else age)
    return tails, Baseline(values, np.stack(kept_rows), tuple(ages))


def evidence_tails(errors: np.ndarray, prior: tuple[float, float], params: ScoreParams) -> list[np.ndarray]:
    """One evidence's tails, of its `average_points` and its `SUSTAINED_POINTS` trailing means, per point
    (NaN where the error is NaN: those points are skipped)."""
    return extend_tails(Baseline.empty(), errors, prior, params)[0]


def combined_scores(tails: list[np.ndarray]) -> np.ndarray:
    """1 - the harmonic mean of the tails (a missing one counts as 1, no evidence), capped at 1.

    The harmonic mean p-value (Wilson, PNAS 2019) combines tests that depend on each other: for tails that move
    together (the 10- and 30-point means of one error) it is about their common value, for one strong piece of
    evidence among weak ones about their number times the smallest (as Bonferroni), and it lies between the
    smallest and that. So the threshold keeps its promise on normal data (tests/test_anomaly_scoring.py).
    """
    inverse = [1.0 / np.maximum(np.nan_to_num(tail, nan=1.0), np.finfo(np.float64).tiny) for tail in tails]
    return 1.0 - np.minimum(1.0, len(tails) / np.sum(inverse, axis=0))


def adaptive_scores(errors: np.ndarray, params: ScoreParams, seasonal: np.ndarray | None = None) -> np.ndarray:
    """Scores in [0, 1] for forecast `errors` in time order; NaN errors (unscored points) get NaN.

    `seasonal` (the same points' `seasonal_errors`, NaN where there is no earlier day) is required when the
    model has seasonal evidence.
    """
    errors = np.asarray(errors, dtype=np.float64)
    tails = evidence_tails(errors, (params.prior_mean, params.prior_std), params)
    if params.seasonal:
        if seasonal is None:
            raise ValueError("this model has seasonal evidence: pass the points' seasonal errors")
        tails += evidence_tails(seasonal, (params.seasonal_prior_mean, params.seasonal_prior_std), params)
    return np.where(np.isnan(errors), np.nan, combined_scores(tails))


def seasonal_residuals(
    times: np.ndarray,
    values: np.ndarray,
    interval_seconds: float,
    earlier: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """[n, F] reading - median of the readings at the same time on the `SEASON_CYCLES` days before it; NaN where
    no earlier day has a grid point within half an interval.

    `times` [n] and `values` [n, F] are grid points in time order; `earlier` (times, values) are grid points
    before them that may serve as references (a stream's kept days). Looked up by time, so gaps are fine.
    """
    times = np.asarray(times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64).reshape(len(times), -1)
    all_times, all_values = times, values
    if earlier is not None and len(earlier[0]):
        all_times = np.concatenate((earlier[0], times))
        all_values = np.vstack((np.asarray(earlier[1], dtype=np.float64).reshape(len(earlier[0]), -1), values))
    references = np.full((SEASON_CYCLES, *values.shape), np.nan)
    if len(all_times):
        for cycle in range(SEASON_CYCLES):
            target = times - (cycle + 1) * SEASON_SECONDS
            right = np.clip(np.searchsorted(all_times, target), 0, len(all_times) - 1)
            left = np.maximum(right - 1, 0)
            nearest = np.where(np.abs(all_times[left] - target) < np.abs(all_times[right] - target), left, right)
            found = np.abs(all_times[nearest] - target) <= interval_seconds / 2
            references[cycle][found] = all_values[nearest[found]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN references: no earlier day, NaN residual
        return values - np.nanmedian(references, axis=0)


def seasonal_errors(residuals: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """[n] mean over sensors of |seasonal residual| / `scale` (each sensor's learnt spread)."""
    return np.mean(np.abs(residuals) / np.asarray(scale, dtype=np.float64), axis=1)


def beyond_range(values: np.ndarray) -> np.ndarray:
    """[n] bool: readings [n, F] outside the range of every earlier reading by more than `RANGE_MARGIN` of it.

    Any sensor counts. NaN readings are never beyond, and the first `RANGE_MIN_HISTORY` never are.
    """
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    if len(values) <= RANGE_MIN_HISTORY:
        return np.zeros(len(values), dtype=bool)
    seen = np.where(np.isnan(values), np.inf, values)
    low = np.minimum.accumulate(seen, axis=0)[:-1]
    high = np.maximum.accumulate(np.where(np.isnan(values), -np.inf, values), axis=0)[:-1]
    with np.errstate(invalid="ignore", over="ignore"):
        margin = RANGE_MARGIN * (high - low)
        outside = (values[1:] > high + margin) | (values[1:] < low - margin)
    flags = np.concatenate((np.zeros(1, dtype=bool), outside.any(axis=1)))
    flags[:RANGE_MIN_HISTORY] = False
    return flags


def with_range(scores: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`scores` with every scored reading `beyond_range` raised to at least `RANGE_SCORE`; NaN stays NaN.

    As surprising as one normal point in a million: flagged at every sensitivity above 0, never by
    `threshold` 1, and the event's peak says so.
    """
    raised = np.where(beyond_range(values), np.maximum(scores, RANGE_SCORE), scores)
    return np.where(np.isnan(scores), np.nan, raised)


def _erfc(values: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erfc, otypes=[np.float64])(values)


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
    window = np.nan_to_num(np.asarray(scores[start : end + 1], dtype=np.float64), nan=-1.0)
    return Event(start, end, start + int(np.argmax(window)))

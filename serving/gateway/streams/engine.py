"""One append to a stream: forecast the new grid points, score them, group flags into events.

Everything the batch path computes is computed here by the same functions, on the state the stream kept:
- forecasts: the new points' chunks (serving/gateway/series_chunks.py's aligned chunks, which depend on a point's
  position in its part only) rebuilt from the readings kept since the current chunk's start;
- scores: `anomaly_scoring.extend_tails` from each evidence's kept past (its last errors, which of them count
  in the baselines) to the new errors, and the seasonal errors against the kept days (causal: the score of a
  point depends only on the points up to it, so extending the past gives what the whole history would);
- events: `anomaly_scoring.group_events` over the last event (its start, end and peak) and the new flags.
So a series appended in pieces gets the scores of the same series posted whole (tests/test_streams_api.py).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving import anomaly_scoring
from serving.contract import ERROR_OUTPUT, FORECAST_OUTPUT
from serving.gateway.segments import format_timestamps
from serving.gateway.series_chunks import Chunk, chunk_windows, stitch
from serving.gateway.streams.grid import NewPoints
from serving.gateway.streams.state import PUBLIC_EVENT_FIELDS, RECENT_EVENTS, StreamState
from serving.series_grid import alarm_readings

# windows [n, length, F] float32 -> {"forecast": [n, length, F], "error": [n, length]}
Forecaster = Callable[[np.ndarray], dict[str, np.ndarray]]
DECIMALS = 6


@dataclass
class Scored:
    """Per new grid point: forecast [m, F], error, score, flag; and the events this append touched."""

    forecast: np.ndarray
    scores: np.ndarray
    flags: np.ndarray
    alarms: np.ndarray
    events: list[dict[str, Any]]


def forecast(state: StreamState, new: NewPoints, predict: Forecaster) -> tuple[np.ndarray, np.ndarray]:
    """Forecasts [m, F] and errors [m] of the new points (NaN while a part warms up); moves state's context."""
    history, stride = state.history_length, state.chunk_points - state.history_length
    bounds = [new.first, *[s for s in new.part_starts if s > new.first], new.first + len(new.values)]
    starts = set(new.part_starts)
    pieces: list[tuple[np.ndarray, int, int, int, list[Chunk]]] = []  # local values, origin, a, b, chunks
    for a, b in itertools.pairwise(bounds):
        fresh = new.values[a - new.first : b - new.first].astype(np.float32)
        if a in starts:
            state.part_start, origin, local = a, a, fresh
        else:
            origin, local = state.context_start, np.concatenate((state.context.reshape(-1, fresh.shape[1]), fresh))
        part = state.part_start
        chunks = [
            Chunk(start - origin, min(start + state.chunk_points, b) - origin, max(history, a - start))
            for start in range(
                part + _chunk_index(max(a - part, history), history, stride) * stride, b - history, stride
            )
        ]
        pieces.append((local, origin, a, b, chunks))
        state.context_start = part + _chunk_index(b - part, history, stride) * stride
        state.context = local[state.context_start - origin :]
    m, features = len(new.values), new.values.shape[1]
    forecasts, errors = np.full((m, features), np.nan), np.full(m, np.nan, dtype=np.float32)
    length = max((c.length for *_, chunks in pieces for c in chunks), default=0)
    if length == 0:
        return forecasts, errors
    windows = np.concatenate([chunk_windows(local, chunks, length) for local, *_, chunks in pieces if chunks])
    outputs = predict(windows)
    row = 0
    for local, origin, a, b, chunks in pieces:
        if not chunks:
            continue
        taken = slice(row, row + len(chunks))
        row += len(chunks)
        where, keep = slice(a - new.first, b - new.first), slice(a - origin, b - origin)
        forecasts[where] = stitch(chunks, outputs[FORECAST_OUTPUT][taken], len(local))[keep]
        errors[where] = stitch(chunks, outputs[ERROR_OUTPUT][taken], len(local))[keep]
    return forecasts, errors


def _chunk_index(position: int, history: int, stride: int) -> int:
    """The chunk whose kept outputs hold `position` of a part (chunk 0 before the part is warm)."""
    return max(0, position - history) // stride


def score(state: StreamState, new: NewPoints, errors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores and flags of the new points from the kept errors, the kept days and the range seen so far.

    Each evidence's tails extend its kept past (`StreamState.baseline`: the last `history_points` valid errors,
    which of them count in each baseline, where the last extreme event opened) by the new errors: the new points
    alone are judged, in O(baseline) each, not the whole history again. The seasonal errors of the new points
    look their references up in the grid points of the last `SEASON_CYCLES` days, which the stream keeps
    (`day_times`, `day_values`). The range rule (`with_range`) sees the stream's past as rows whose running
    minimum and maximum are the stream's, as many as the points so far (the rule ignores a series' first
    RANGE_MIN_HISTORY points, so more rows than that change nothing).
    """
    params = state.score
    values = new.values.astype(np.float32).astype(np.float64)  # as the batch grid holds them
    tails = _new_tails(state, "errors", errors)
    if params.seasonal:
        residuals = anomaly_scoring.seasonal_residuals(
            new.times, values, state.interval_seconds, (state.day_times, state.day_values)
        )
        seasonal = anomaly_scoring.seasonal_errors(residuals, state.seasonal_spread)
        tails += _new_tails(state, "seasonal", seasonal)
        _keep_days(state, new.times, values)
    scores = np.where(np.isnan(errors), np.nan, anomaly_scoring.combined_scores(tails))
    past = min(new.first, anomaly_scoring.RANGE_MIN_HISTORY + 1)
    rows = np.vstack([state.low] + [state.high] * (past - 1)) if past else np.empty((0, values.shape[1]))
    scores = anomaly_scoring.with_range(np.concatenate((np.full(past, np.nan), scores)), np.vstack((rows, values)))
    scores = scores[past:]
    state.low = np.minimum(state.low, values.min(axis=0)) if state.low.size else values.min(axis=0)
    state.high = np.maximum(state.high, values.max(axis=0)) if state.high.size else values.max(axis=0)
    return scores, np.nan_to_num(scores, nan=-1.0) > state.threshold


def _new_tails(state: StreamState, evidence: str, errors: np.ndarray) -> list[np.ndarray]:
    """The new points' tails of one evidence (NaN where its error is), extending the past the state kept."""
    tails, baseline = anomaly_scoring.extend_tails(
        state.baseline(evidence), errors, state.evidence_prior(evidence), state.score
    )
    state.keep_baseline(evidence, baseline)
    return tails


def _keep_days(state: StreamState, times: np.ndarray, values: np.ndarray) -> None:
    """Keep the grid points a later point's seasonal references can be: the last `SEASON_CYCLES` days."""
    day_times = np.concatenate((state.day_times, times))
    since = day_times[-1] - anomaly_scoring.SEASON_CYCLES * anomaly_scoring.SEASON_SECONDS - state.interval_seconds
    first = int(np.searchsorted(day_times, since))
    state.day_times = day_times[first:]
    state.day_values = np.vstack((state.day_values.reshape(-1, values.shape[1]), values))[first:]


def group(
    state: StreamState, new: NewPoints, scores: np.ndarray, flags: np.ndarray
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Alarms of the new points and the events this append opened, extended or closed (state keeps the last)."""
    gap = state.score.event_gap_points
    last = state.event
    origin = last["start_index"] if last is not None and new.first - last["start_index"] <= gap else new.first
    offset = new.first - origin
    all_flags = np.zeros(offset + flags.size, dtype=bool)
    all_scores = np.full(offset + flags.size, np.nan)
    all_flags[offset:], all_scores[offset:] = flags, scores
    if offset:  # the last event is still open: its start, last flag and peak stand for its past
        for key in ("start_index", "end_index"):
            all_flags[last[key] - origin] = True
        all_scores[last["peak_index"] - origin] = last["peak_score"]
    times = format_timestamps(new.times)
    touched, changed = [], []
    for event in anomaly_scoring.group_events(all_flags, all_scores, gap):
        continued = offset > 0 and event.start == 0
        record = (
            dict(last)
            if continued
            else {"start_index": origin + event.start, "start": times[event.start - offset], "points": 0}
        )
        new_flags = flags[max(0, event.start - offset) : event.end - offset + 1]
        record["points"] += int(new_flags.sum())
        record["end_index"] = origin + event.end
        if event.end >= offset:
            record["end"] = times[event.end - offset]
        if event.peak >= offset:
            record["peak_index"], record["peak_at"] = origin + event.peak, times[event.peak - offset]
            record["peak_score"] = float(scores[event.peak - offset])
        touched.append(record)
        changed.append(not continued or bool(new_flags.any()))
    next_index = new.first + flags.size
    for record in touched:
        record["status"] = "open" if next_index - record["start_index"] <= gap else "closed"
    if touched:
        state.event = touched[-1]
        kept = [e for e in state.recent_events if e["start_index"] not in {t["start_index"] for t in touched}]
        state.recent_events = (kept + touched)[-RECENT_EVENTS:]
    # an open event this append did not extend is not news; it is reported again when it closes
    reported = [r for r, news in zip(touched, changed, strict=True) if news or r["status"] == "closed"]
    alarms = np.zeros(flags.size, dtype=bool)
    for record in touched:
        if record["start_index"] >= new.first:
            alarms[record["start_index"] - new.first] = True
    return alarms, [_public(e) for e in reported]


def _public(event: dict[str, Any]) -> dict[str, Any]:
    return {key: event[key] for key in PUBLIC_EVENT_FIELDS}


def points_json(state: StreamState, new: NewPoints, reading_times: np.ndarray, scored: Scored) -> list[dict]:
    """One entry per reading, like the points of /v1/anomaly:score (filled grid points are not listed)."""
    at = new.reading_at - new.first
    stamps = format_timestamps(reading_times)
    expected = np.round(scored.forecast[at], DECIMALS)
    alarms = alarm_readings(at, np.flatnonzero(scored.alarms))
    points = []
    for k, i in enumerate(at.tolist()):
        entry: dict[str, Any] = {
            "timestamp": stamps[k],
            "score": float(scored.scores[i]) if not np.isnan(scored.scores[i]) else None,
            "is_anomaly": bool(scored.flags[i]),
            "alarm": bool(alarms[k]),
            "expected": dict(zip(state.sensors, expected[k].tolist(), strict=True)),
        }
        if entry["score"] is None:
            entry["unscored"] = "warming_up" if _part_of(new, int(new.reading_at[k])) == 0 else "after_gap"
        points.append(entry)
    return points


def _part_of(new: NewPoints, index: int) -> int:
    """The start of the part holding grid `index` (`part_starts` ascend: a binary search, not a scan per point)."""
    before = bisect.bisect_right(new.part_starts, index)
    return new.part_starts[before - 1] if before else new.part_before

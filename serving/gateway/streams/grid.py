"""New readings of a stream -> new points on its grid: the policy of serving/series_grid.py, one point at a time.

A stream's readings come in time order, each at least half an interval after the one before, so every
reading is a sample of its own (the batch grid's rule for series not finer than the interval): it goes to
its nearest step counted from the anchor, or to the next step when that one is taken (a clock that
shifted; the anchor moves with it). Up to `max_gap_steps` missing steps are interpolated linearly; a longer
outage starts a new part. Readings must carry every sensor: a stream cannot interpolate a sensor's hole
before the sensor's next value arrives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from serving.gateway.errors import ApiError
from serving.gateway.streams.state import StreamState


@dataclass
class NewPoints:
    """Grid points an append adds: times, values [m, F], and the global grid index of each reading."""

    first: int
    times: np.ndarray
    values: np.ndarray
    reading_at: np.ndarray
    part_starts: list[int]  # global indices of the parts that start inside this append
    part_before: int  # where the part in force before this append started


def place(state: StreamState, times: np.ndarray, values: np.ndarray) -> NewPoints:
    """Put readings (times increasing, after state.end) on the stream's grid; updates the grid fields of state."""
    if np.isnan(values).any():
        row = int(np.argmax(np.isnan(values).any(axis=1)))
        raise ApiError(
            "missing_value",
            f"point {row} lacks a value; a stream needs every sensor in every "
            "reading (send the readings when they are complete)",
        )
    interval = state.interval_seconds
    previous = np.concatenate(([state.end], times[:-1])) if state.end is not None else times[:-1]
    spacing = times[times.size - previous.size :] - previous
    if (spacing < interval / 2).any():
        row = int(np.argmax(spacing < interval / 2)) + times.size - previous.size
        raise ApiError(
            "readings_too_close",
            f"point {row} is less than half the model's interval "
            f"({interval:g} s) after the reading before it; a stream takes one reading per step",
        )
    first, part_before = state.points, state.part_start
    out_times: list[float] = []
    out_values: list[np.ndarray] = []
    reading_at = np.empty(times.size, dtype=np.int64)
    part_starts: list[int] = []
    for i, (moment, row) in enumerate(zip(times.tolist(), values, strict=True)):
        if state.anchor is None:
            state.anchor, state.last_step = moment, 0
            part_starts.append(state.points)
        else:
            step = int(np.rint((moment - state.anchor) / interval))
            if step <= state.last_step:
                step = state.last_step + 1
                state.anchor = moment - step * interval
            missing = step - state.last_step - 1
            if missing > state.max_gap_steps:
                part_starts.append(state.points)
            elif missing:
                between = np.arange(1, missing + 1)
                out_times.extend(np.interp(between, [0, missing + 1], [state.end, moment]).tolist())
                out_values.extend(
                    np.stack(
                        [
                            np.interp(between, [0, missing + 1], [a, b])
                            for a, b in zip(state.last_values, row, strict=True)
                        ],
                        axis=1,
                    )
                )
                state.points += missing
            state.last_step = step
        reading_at[i] = state.points
        out_times.append(moment)
        out_values.append(row)
        state.points += 1
        state.end = moment
        state.last_values = np.asarray(row, dtype=np.float64)
    return NewPoints(
        first,
        np.array(out_times),
        np.array(out_values, dtype=np.float64).reshape(-1, values.shape[1]),
        reading_at,
        part_starts,
        part_before,
    )

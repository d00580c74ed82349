"""Sensor readings as they come (unsorted, duplicated, jittered, with outages) -> parts of a regular grid.

One policy, used by the training job and by the gateway alike, so the model is served data prepared exactly
like the data it learnt from:

- Readings are sorted by time; each goes to its nearest grid step counted from the first reading, and the
  readings on one step are averaged per sensor (NaN values ignored). So a series finer than the model's
  interval is averaged onto it, and jittered readings land on their nominal steps.
- In a series sampled about as often as the model's interval or less often (median spacing at least half
  the interval), every distinct sample keeps a point of its own: readings less than a tenth of an interval
  apart are one sample (duplicates, retries), and a later reading that lands on an occupied step (a sensor
  clock that shifted by a minute) takes the next step, the count going on from there. Such a point keeps the
  time of its first reading, so a reading's grid time is its own time.
- Between two consecutive points `d` seconds apart, `round(d / interval) - 1` points are missing. Up to
  `max_gap_steps` missing points are filled by linear interpolation (evenly spaced in time); a longer gap
  ends the part, and the next reading starts a new one. Gaps are never materialised, so a year-long outage
  costs nothing.
- The same limit holds per sensor: a run of more than `max_gap_steps` grid points without a value of some
  sensor (readings that lack it, plus the missing points around them) is left out and splits the part.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np


class GridError(ValueError):
    """Readings that cannot be put on a grid at all (`code` is the API's error code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Gap:
    """An outage between two parts: the last point before it and the first point after it (epoch seconds)."""

    after: float
    before: float
    missing_steps: int


@dataclass
class Grid:
    """Values on the grid, parts laid end to end.

    `values[parts[k][0]:parts[k][1]]` is the k-th regular part; `timestamps` are the grid points' times;
    `reading_to_point[i]` is the grid point of the i-th reading (in input order), -1 where it landed in
    a sensor-gap that split a part; `filled[j]` is True where some value of grid point j was interpolated.
    """

    timestamps: np.ndarray
    values: np.ndarray
    parts: list[tuple[int, int]]
    reading_to_point: np.ndarray
    filled: np.ndarray
    gaps: list[Gap]


def infer_interval(timestamps: np.ndarray) -> float:
    """The median spacing of distinct timestamps, in whole seconds when it is at least a second."""
    distinct = np.unique(np.asarray(timestamps, dtype=np.float64))
    steps = np.diff(distinct)
    if steps.size == 0:
        raise GridError("series_too_short", "cannot infer a sampling interval from fewer than two timestamps")
    interval = float(np.median(steps))
    return float(round(interval)) if interval >= 1.0 else interval


def _grid_steps(sorted_times: np.ndarray, interval: float) -> tuple[np.ndarray, bool]:
    """Grid step of each sorted reading (non-decreasing), and whether the series is finer than the grid.

    Readings go to their nearest step counted from the first reading. In a series not finer than the grid,
    a reading that lands on the step of an earlier, different sample (a clock that shifted) takes the next
    step instead, and the count goes on from it.
    """
    steps = np.rint((sorted_times - sorted_times[0]) / interval).astype(np.int64)
    spacing = np.diff(sorted_times)
    distinct = spacing[spacing > 0]
    if distinct.size == 0 or np.median(distinct) < interval / 2.0:
        return steps, True
    new_sample = spacing >= interval / 10.0
    if not (new_sample & (np.diff(steps) == 0)).any():
        return steps, False
    anchor = sorted_times[0]
    for i in range(1, sorted_times.size):
        step = int(np.rint((sorted_times[i] - anchor) / interval))
        if not new_sample[i - 1]:
            step = steps[i - 1]
        elif step <= steps[i - 1]:
            step = steps[i - 1] + 1
            anchor = sorted_times[i] - step * interval
        steps[i] = step
    return steps, False


def _point_means(groups: np.ndarray, matrix: np.ndarray, n_points: int) -> np.ndarray:
    """Mean of the non-NaN values per grid point and sensor; NaN where a sensor has none."""
    means = np.full((n_points, matrix.shape[1]), np.nan)
    for k in range(matrix.shape[1]):
        present = ~np.isnan(matrix[:, k])
        counts = np.bincount(groups[present], minlength=n_points)
        sums = np.bincount(groups[present], weights=matrix[present, k], minlength=n_points)
        np.divide(sums, counts, out=means[:, k], where=counts > 0)
    return means


def _long_sensor_gaps(values: np.ndarray, max_gap_steps: int) -> np.ndarray:
    """Mask of grid points inside a run of NaN (in any sensor) longer than `max_gap_steps`."""
    long = np.zeros(values.shape[0], dtype=bool)
    for k in range(values.shape[1]):
        edges = np.diff(np.concatenate(([0], np.isnan(values[:, k]).astype(np.int8), [0])))
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            if stop - start > max_gap_steps:
                long[start:stop] = True
    return long


def put_on_grid(timestamps: np.ndarray, matrix: np.ndarray, interval: float, max_gap_steps: int) -> Grid:
    """Readings [n] x sensors [n, F] (NaN = missing) -> a `Grid` (see the module docstring)."""
    if not interval > 0 or max_gap_steps < 0:
        raise ValueError("interval must be > 0 and max_gap_steps >= 0")
    timestamps = np.asarray(timestamps, dtype=np.float64)
    if timestamps.size == 0:
        raise GridError("series_too_short", "the series is empty")
    order = np.argsort(timestamps, kind="stable")
    sorted_times = timestamps[order]
    steps, finer = _grid_steps(sorted_times, interval)
    point_steps, groups = np.unique(steps, return_inverse=True)
    n_points = point_steps.size
    first_reading = np.searchsorted(groups, np.arange(n_points))
    # a point of an averaged (finer) series is its step; otherwise it is the time of its first reading
    point_times = sorted_times[0] + point_steps * interval if finer else sorted_times[first_reading]
    point_values = _point_means(groups, np.asarray(matrix, dtype=np.float64)[order], n_points)

    missing = np.diff(point_steps) - 1
    missing[missing > max_gap_steps] = -1  # a split, not a fill
    span = np.concatenate(([1], np.where(missing < 0, 1, missing + 1)))
    position = np.cumsum(span) - 1  # where each reading point sits on the expanded grid
    n_grid = int(position[-1]) + 1
    grid_times = np.full(n_grid, np.nan)
    grid_values = np.full((n_grid, point_values.shape[1]), np.nan)
    grid_times[position] = point_times
    grid_values[position] = point_values
    filled = np.isnan(grid_values).any(axis=1)  # no reading there, or one without every sensor's value

    breaks = np.flatnonzero(missing < 0) + 1  # reading points that start a new part
    bounds = [0, *position[breaks].tolist(), n_grid]
    left_out = _long_sensor_gaps(grid_values, max_gap_steps)
    for start, stop in itertools.pairwise(bounds):
        _fill_part(grid_times, grid_values, start, stop)
    left_out |= np.isnan(grid_values).any(axis=1)  # a sensor with no value at all in a short part
    parts = [run for start, stop in itertools.pairwise(bounds) for run in _split_on(left_out, start, stop)]
    keep = np.zeros(n_grid, dtype=bool)
    for start, stop in parts:
        keep[start:stop] = True
    new_index = np.cumsum(keep) - 1
    point_of_reading = np.where(keep[position], new_index[position], -1)
    reading_to_point = np.empty(timestamps.size, dtype=np.int64)
    reading_to_point[order] = point_of_reading[groups]
    compact = [(int(new_index[a]), int(new_index[b - 1]) + 1) for a, b in parts]
    gaps = [
        Gap(
            float(point_times[i - 1]),
            float(point_times[i]),
            int(np.rint((point_times[i] - point_times[i - 1]) / interval)) - 1,
        )
        for i in breaks
    ]
    return Grid(
        timestamps=grid_times[keep],
        values=grid_values[keep],
        parts=compact,
        reading_to_point=reading_to_point,
        filled=filled[keep],
        gaps=gaps,
    )


def _fill_part(times: np.ndarray, values: np.ndarray, start: int, stop: int) -> None:
    """Interpolate the missing times and values of one part in place (a sensor with no value in it stays NaN)."""
    index = np.arange(start, stop)
    known = ~np.isnan(times[start:stop])
    times[start:stop] = np.interp(index, index[known], times[start:stop][known])
    for k in range(values.shape[1]):
        column = values[start:stop, k]
        present = ~np.isnan(column)
        if present.any() and not present.all():
            column[~present] = np.interp(index[~present], index[present], column[present])


def _split_on(mask: np.ndarray, start: int, stop: int) -> list[tuple[int, int]]:
    """The runs of [start, stop) outside `mask`."""
    inside = ~mask[start:stop]
    edges = np.diff(np.concatenate(([0], inside.astype(np.int8), [0])))
    return [
        (start + a, start + b) for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True)
    ]


def alarm_readings(reading_to_point: np.ndarray, alarm_points: np.ndarray) -> np.ndarray:
    """Per reading: whether it carries an alarm, given the grid points where events start.

    An event can start on a filled grid point, which no reading stands for; its alarm goes to the first reading
    on a later grid point (the reading that revealed it) instead of being lost. Readings on one grid point
    (duplicates) carry its alarm once: the first of them. Readings outside the grid (-1) carry none.
    """
    alarms = np.zeros(len(reading_to_point), dtype=bool)
    if len(alarm_points) == 0:
        return alarms
    placed = np.flatnonzero(reading_to_point >= 0)
    placed = placed[np.argsort(reading_to_point[placed], kind="stable")]
    at = np.searchsorted(reading_to_point[placed], alarm_points, side="left")
    alarms[placed[at[at < len(placed)]]] = True
    return alarms

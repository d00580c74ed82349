"""A parsed series on one model version's grid: duplicates resolved, sensors in the model's order, gaps
splitting it into parts (serving/series_grid.py, the training job's code too). Policies: docs/preprocessing.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from serving.gateway.errors import ApiError
from serving.gateway.segments import format_timestamp
from serving.gateway.series_input import RawSeries, check_series_size, usable_series
from serving.series_grid import Gap, infer_interval, put_on_grid

DUPLICATE_POLICIES = ("mean", "first", "last", "reject")


@dataclass
class PreparedSeries:
    """The series on the model's grid: regular parts laid end to end (`values[start:stop]` per part).

    `input_to_grid[i]` is the grid point of the i-th input point (-1 where a long gap in one of its
    sensors left it out); `gaps` are the outages between parts.
    """

    grid_timestamps: np.ndarray
    values: np.ndarray
    input_to_grid: np.ndarray
    filled: np.ndarray
    sensor_names: list[str]
    parts: list[tuple[int, int]]
    gaps: list[Gap]


def _sensor_matrix(raw: RawSeries, sensor_names: Sequence[str]) -> np.ndarray:
    """[n, F] float64 in the model's sensor order."""
    if raw.univariate and len(sensor_names) == 1:
        (column,) = raw.values.values()
        return column.reshape(-1, 1)
    given = list(raw.values)
    if sorted(given) != sorted(sensor_names):
        raise ApiError(
            "sensor_mismatch",
            f"the model expects sensors {list(sensor_names)}; the request has {given}",
        )
    return np.stack([raw.values[name] for name in sensor_names], axis=1)


def _apply_duplicate_policy(sorted_times: np.ndarray, values: np.ndarray, policy: str) -> np.ndarray:
    """`values` (sorted rows) with the readings the policy drops set to NaN (so they join no mean)."""
    same_as_next = np.concatenate((sorted_times[1:] == sorted_times[:-1], [False]))
    same_as_previous = np.concatenate(([False], same_as_next[:-1]))
    if policy == "reject" and same_as_next.any():
        first = format_timestamp(sorted_times[int(np.argmax(same_as_next))])
        raise ApiError(
            "duplicate_timestamps",
            f"{int(same_as_next.sum())} duplicated timestamps, the first at {first}",
        )
    dropped = {"first": same_as_previous, "last": same_as_next}.get(policy)
    if dropped is None or not dropped.any():
        return values
    values = values.copy()
    values[dropped] = np.nan
    return values


def _coarser_than_the_model(raw: RawSeries, interval_seconds: float, max_gap_steps: int) -> str:
    """A hint when the readings are further apart than the grid bridges: every step between them is an outage."""
    if np.unique(raw.timestamps).size < 2:
        return ""
    spacing = infer_interval(raw.timestamps)
    holes = round(spacing / interval_seconds) - 1  # the steps missing between two readings, as the grid counts
    if holes <= max_gap_steps:
        return ""
    return (
        f"; the readings are a median {spacing:g} s apart, which leaves {holes} steps between two of them, more than "
        f"the {max_gap_steps} the grid bridges: score them with a model trained on this asset's own readings "
        "(docs/anomaly.md, 'One model per asset')"
    )


def prepare_series(
    raw: RawSeries,
    *,
    interval_seconds: float,
    sensor_names: Sequence[str],
    history_length: int,
    max_points: int = 200_000,
    max_gap_steps: int = 12,
    duplicate_policy: str = "mean",
) -> PreparedSeries:
    """Validate `raw` and put it on the model's grid: serving/series_grid.py, the policy training uses too.

    Gaps longer than `max_gap_steps` split the grid into parts; parts of at most `history_length` points
    are kept (their points get no score) unless no part is long enough, which is 422 `series_too_short`.
    `max_points` also bounds the grid (filled points included).
    """
    if interval_seconds <= 0 or history_length < 0 or max_gap_steps < 0:
        raise ValueError("interval_seconds must be > 0; history_length and max_gap_steps >= 0")
    if duplicate_policy not in DUPLICATE_POLICIES:
        raise ValueError(f"duplicate_policy must be one of {DUPLICATE_POLICIES}")
    count = usable_series(raw).timestamps.size
    check_series_size(count, max_points)
    matrix = _sensor_matrix(raw, sensor_names)
    empty = np.isnan(matrix).all(axis=0)
    if empty.any():
        raise ApiError("gap_too_long", f"sensor {sensor_names[int(np.argmax(empty))]!r} has no values at all")
    order = np.argsort(raw.timestamps, kind="stable")
    sorted_values = _apply_duplicate_policy(raw.timestamps[order], matrix[order], duplicate_policy)
    matrix = np.empty_like(sorted_values)
    matrix[order] = sorted_values
    grid = put_on_grid(raw.timestamps, matrix, interval_seconds, max_gap_steps)
    if len(grid.values) > max_points:
        raise ApiError(
            "series_too_long",
            f"the series fills {len(grid.values)} points at the model's interval of {interval_seconds:g} s "
            f"(gaps interpolated); the limit is {max_points}",
        )
    longest = max((stop - start for start, stop in grid.parts), default=0)
    if longest < history_length + 1:
        where = f" between {len(grid.gaps)} gaps" if grid.gaps else ""
        raise ApiError(
            "series_too_short",
            f"the longest gap-free run{where} has {longest} points at the model's interval of "
            f"{interval_seconds:g} s; the model needs at least {history_length + 1} "
            f"(history_length {history_length} + 1){_coarser_than_the_model(raw, interval_seconds, max_gap_steps)}",
        )
    return PreparedSeries(
        grid_timestamps=grid.timestamps,
        values=grid.values.astype(np.float32),
        input_to_grid=grid.reading_to_point,
        filled=grid.filled,
        sensor_names=list(sensor_names),
        parts=grid.parts,
        gaps=grid.gaps,
    )

"""Sensor series from a request -> values on the anomaly model's regular grid, and back.

Parsing (`parse_json_series`, `parse_csv_series`) checks types and turns timestamps into epoch
seconds; `prepare_series` applies the duplicate policy and puts the readings on the model's grid with
serving/series_grid.py (the training job's code too), whose long gaps split it into parts;
`plan_chunks` / `chunk_windows` / `stitch` cut every part into equal-length overlapping chunks for one
batched Predict call and put the outputs back together. Policies: docs/preprocessing.md.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from serving.gateway.errors import ApiError
from serving.gateway.segments import format_timestamp, format_timestamps
from serving.series_grid import Gap, put_on_grid

__all__ = [
    "Chunk",
    "PreparedSeries",
    "RawSeries",
    "chunk_windows",
    "format_timestamp",
    "format_timestamps",
    "make_chunks",
    "parse_csv_series",
    "parse_json_series",
    "plan_chunks",
    "prepare_series",
    "stitch",
]

UNIVARIATE_KEY = "value"
DUPLICATE_POLICIES = ("mean", "first", "last", "reject")
# Timestamps must fall in years 1..9999 so that they can be written back as ISO 8601.
EPOCH_MIN = datetime(1, 1, 1, tzinfo=UTC).timestamp()
EPOCH_MAX = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
MISSING_WORDS = frozenset({"", "nan", "null", "none", "na"})
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass
class RawSeries:
    """A series as the client sent it: epoch seconds and values in input order, NaN where missing."""

    timestamps: np.ndarray
    values: dict[str, np.ndarray]
    univariate: bool


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


@dataclass(frozen=True)
class Chunk:
    """Grid slice [start, stop) sent as one sequence; its outputs count from position `keep_from` on."""

    start: int
    stop: int
    keep_from: int

    @property
    def length(self) -> int:
        return self.stop - self.start


# ---------------------------------------------------------------- parsing


def _invalid(where: str, problem: str, status: int = 422, code: str = "invalid_value") -> ApiError:
    """400 `invalid_series` for a wrong JSON type; 422 (`code`) for a well-typed but unusable entry."""
    return ApiError(status, "invalid_series" if status == 400 else code, f"{where}: {problem}")


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


# Values per allowed point, over all sensors: bounds the parsing work of a request with many sensors
# (points are capped by `max_points`, but thousands of sensors would multiply the work per point).
VALUES_PER_POINT = 4


def _check_count(count: int, max_points: int | None, sensors: int = 1) -> None:
    if max_points is None:
        return
    if count > max_points:
        raise ApiError(413, "series_too_long", f"the series has {count} points; the limit is {max_points}")
    if count * sensors > VALUES_PER_POINT * max_points:
        raise ApiError(
            413, "series_too_large",
            f"{count} points x {sensors} sensors = {count * sensors} values; the limit is "
            f"{VALUES_PER_POINT * max_points} values over all sensors",
        )


def _timestamp_from_text(text: str, where: str) -> float:
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return _epoch_in_range(float(text), where)
        except ValueError:
            problem = f"{text[:40]!r} is neither an ISO 8601 time nor epoch seconds"
            raise _invalid(where, problem, code="invalid_timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return _epoch_in_range(moment.timestamp(), where)  # an offset can push year 9999 past the range


def _epoch_in_range(seconds: float, where: str) -> float:
    if not math.isfinite(seconds) or not EPOCH_MIN <= seconds <= EPOCH_MAX:
        problem = f"{seconds} is not a usable time (epoch seconds of years 1..9999)"
        raise _invalid(where, problem, code="invalid_timestamp")
    return seconds


def _json_timestamp(value: object, where: str) -> float:
    if isinstance(value, str):
        return _timestamp_from_text(value, where)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return _epoch_in_range(float(value), where)
        except OverflowError:
            raise _invalid(where, "epoch seconds out of range", code="invalid_timestamp") from None
    raise _invalid(where, f"expected an ISO 8601 string or epoch seconds, got {_type_name(value)}", 400)


def _number_from_text(text: str, where: str) -> float:
    if text.strip().lower() in MISSING_WORDS:
        return math.nan
    try:
        number = float(text)
    except ValueError:
        raise _invalid(where, f"{text[:40]!r} is not a number") from None
    if math.isinf(number):
        raise _invalid(where, "Infinity is not a usable value (send null for a missing one)")
    return number


def _json_value(value: object, where: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, str):
        if value.strip().lower() in ("nan", "infinity", "-infinity", "+infinity", "inf", "-inf", "+inf"):
            return _number_from_text(value, where)
        raise _invalid(where, "expected a number or null, got a string", 400)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            raise _invalid(where, "number out of range") from None
        if math.isinf(number):
            raise _invalid(where, "Infinity is not a usable value (send null for a missing one)")
        return number
    raise _invalid(where, f"expected a number or null, got {_type_name(value)}", 400)


def _json_list(payload: dict, key: str, where: str | None = None) -> list:
    value = payload[key]
    if not isinstance(value, list):
        raise _invalid(where or key, f"expected a list, got {_type_name(value)}", 400)
    return value


def parse_json_series(payload: object, *, max_points: int | None = None) -> RawSeries:
    """`{"timestamps": [...], "values": [...]}` or `{"timestamps": [...], "series": {name: [...]}}`."""
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_series", f"the body must be a JSON object, got {_type_name(payload)}")
    if "timestamps" not in payload:
        raise ApiError(400, "invalid_series", "missing field 'timestamps'")
    if ("values" in payload) == ("series" in payload):
        raise ApiError(400, "invalid_series", "send exactly one of 'values' (one sensor) or 'series' (named)")
    raw_times = _json_list(payload, "timestamps")
    _check_count(len(raw_times), max_points)
    if "values" in payload:
        columns = {UNIVARIATE_KEY: _json_list(payload, "values")}
        labels = {UNIVARIATE_KEY: "values"}
    else:
        named = payload["series"]
        if not isinstance(named, dict) or not named:
            raise ApiError(400, "invalid_series", "'series' must be a non-empty object of sensor -> list")
        columns = {name: _json_list(named, name, f"series.{name}") for name in named}
        labels = {name: f"series.{name}" for name in named}
    _check_count(len(raw_times), max_points, len(columns))
    for name, column in columns.items():
        if len(column) != len(raw_times):
            raise ApiError(
                422, "length_mismatch",
                f"{labels[name]} has {len(column)} entries but timestamps has {len(raw_times)}",
            )
    timestamps = np.array(
        [_json_timestamp(value, f"timestamps[{i}]") for i, value in enumerate(raw_times)], dtype=np.float64
    )
    values = {
        name: np.array(
            [_json_value(value, f"{labels[name]}[{i}]") for i, value in enumerate(column)], dtype=np.float64
        )
        for name, column in columns.items()
    }
    return _usable(RawSeries(timestamps=timestamps, values=values, univariate="values" in payload))


def parse_csv_series(text: str, *, max_points: int | None = None) -> RawSeries:
    """CSV with a header `timestamp,<sensor>...` (NAB: `timestamp,value`); blank lines are skipped.

    One value column makes a univariate series whatever its name; empty cells, `nan`, `null`, `NA`
    are missing values.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")), strict=True)
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            raise ApiError(422, "invalid_csv", "the CSV is empty")
        names = [cell.strip() for cell in header]
        if names[0].lower() != "timestamp" or len(names) < 2:
            raise ApiError(
                422, "invalid_csv",
                f"line {reader.line_num}: the header must be 'timestamp,<sensor>[,<sensor>...]', "
                f"got {','.join(names)[:80]!r}",
            )
        sensors = names[1:]
        if any(not name for name in sensors) or len(set(sensors)) != len(sensors):
            raise ApiError(422, "invalid_csv", "sensor names in the header must be non-empty and unique")
        times: list[float] = []
        rows: list[list[float]] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"line {reader.line_num}"
            if len(row) != len(names):
                raise ApiError(422, "invalid_csv", f"{where}: expected {len(names)} fields, got {len(row)}")
            times.append(_timestamp_from_text(row[0], where))
            rows.append([_number_from_text(cell, f"{where}, column {name}") for cell, name in
                         zip(row[1:], sensors, strict=True)])
            _check_count(len(times), max_points, len(sensors))
    except csv.Error as exc:
        raise ApiError(422, "invalid_csv", f"line {reader.line_num}: {exc}") from exc
    matrix = np.array(rows, dtype=np.float64).reshape(len(rows), len(sensors))
    return _usable(RawSeries(
        timestamps=np.array(times, dtype=np.float64),
        values={name: matrix[:, k] for k, name in enumerate(sensors)},
        univariate=len(sensors) == 1,
    ))


def _usable(raw: RawSeries) -> RawSeries:
    """`raw` itself, after the checks that need no model: not empty, every value fits in float32."""
    if raw.timestamps.size == 0:
        raise ApiError(422, "series_too_short", "the series is empty")
    for name, column in raw.values.items():
        too_big = np.abs(np.nan_to_num(column)) > FLOAT32_MAX
        if too_big.any():
            raise _invalid(f"sensor {name!r}, point {int(np.argmax(too_big))}", "value beyond float32 range")
    return raw


# ---------------------------------------------------------------- preparing


def _sensor_matrix(raw: RawSeries, sensor_names: Sequence[str]) -> np.ndarray:
    """[n, F] float64 in the model's sensor order."""
    if raw.univariate and len(sensor_names) == 1:
        (column,) = raw.values.values()
        return column.reshape(-1, 1)
    given = list(raw.values)
    if sorted(given) != sorted(sensor_names):
        raise ApiError(
            422, "sensor_mismatch",
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
            422, "duplicate_timestamps",
            f"{int(same_as_next.sum())} duplicated timestamps, the first at {first}",
        )
    dropped = {"first": same_as_previous, "last": same_as_next}.get(policy)
    if dropped is None or not dropped.any():
        return values
    values = values.copy()
    values[dropped] = np.nan
    return values


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
    count = _usable(raw).timestamps.size
    _check_count(count, max_points)
    matrix = _sensor_matrix(raw, sensor_names)
    empty = np.isnan(matrix).all(axis=0)
    if empty.any():
        raise ApiError(422, "gap_too_long", f"sensor {sensor_names[int(np.argmax(empty))]!r} has no values at all")
    order = np.argsort(raw.timestamps, kind="stable")
    sorted_values = _apply_duplicate_policy(raw.timestamps[order], matrix[order], duplicate_policy)
    matrix = np.empty_like(sorted_values)
    matrix[order] = sorted_values
    grid = put_on_grid(raw.timestamps, matrix, interval_seconds, max_gap_steps)
    if len(grid.values) > max_points:
        raise ApiError(
            413, "series_too_long",
            f"the series fills {len(grid.values)} points at the model's interval of {interval_seconds:g} s "
            f"(gaps interpolated); the limit is {max_points}",
        )
    longest = max((stop - start for start, stop in grid.parts), default=0)
    if longest < history_length + 1:
        where = f" between {len(grid.gaps)} gaps" if grid.gaps else ""
        raise ApiError(
            422, "series_too_short",
            f"the longest gap-free run{where} has {longest} points at the model's interval of "
            f"{interval_seconds:g} s; the model needs at least {history_length + 1} "
            f"(history_length {history_length} + 1)",
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


# ---------------------------------------------------------------- chunking


def make_chunks(n_points: int, history_length: int, chunk_size: int) -> list[Chunk]:
    """Chunks of at most `chunk_size` overlapping by `history_length` whose kept parts cover [history_length, n).

    Chunk k starts at k * (chunk_size - history_length), whatever `n_points` is, and only the last one is
    shorter: a point's chunk (and so its forecast, the LSTM reading each chunk from a fresh state) depends on
    its position in its part alone, so a stream scored as it grows (serving/gateway/streams/) gets the
    forecasts of the same series scored whole. Each chunk keeps its outputs from `history_length` on.
    """
    if chunk_size <= history_length:
        raise ValueError("chunk_size must be larger than history_length")
    if n_points < history_length + 1:
        raise ValueError(f"a series of {n_points} points has nothing to score (needs {history_length + 1})")
    stride = chunk_size - history_length
    return [Chunk(start, min(start + chunk_size, n_points), history_length)
            for start in range(0, n_points - history_length, stride)]


def plan_chunks(parts: Sequence[tuple[int, int]], history_length: int, chunk_size: int) -> tuple[list[Chunk], int]:
    """Chunks over every part long enough to score, and the one length they are padded to for a batch.

    Parts of at most `history_length` points have nothing to score and get no chunk. A chunk shorter than the
    common length is padded at its end for the batch (the network is causal: padding changes no kept output).
    """
    scorable = [(a, b) for a, b in parts if b - a > history_length]
    if not scorable:
        raise ValueError("no part is longer than history_length")
    chunks = [
        Chunk(start + c.start, start + c.stop, c.keep_from)
        for start, stop in scorable
        for c in make_chunks(stop - start, history_length, chunk_size)
    ]
    return chunks, max(c.length for c in chunks)


def chunk_windows(values: np.ndarray, chunks: Sequence[Chunk], length: int) -> np.ndarray:
    """[n_chunks, length, F]: each chunk's values, padded at the end with its last value."""
    windows = np.empty((len(chunks), length, values.shape[1]), dtype=values.dtype)
    for i, chunk in enumerate(chunks):
        windows[i, :chunk.length] = values[chunk.start:chunk.stop]
        windows[i, chunk.length:] = values[chunk.stop - 1]
    return windows


def stitch(chunks: Sequence[Chunk], outputs: np.ndarray, n_points: int) -> np.ndarray:
    """[n_points, ...] from per-chunk outputs [n_chunks, chunk_len, ...]; NaN where nothing was kept."""
    outputs = np.asarray(outputs)
    if outputs.shape[0] != len(chunks) or any(c.length > outputs.shape[1] for c in chunks):  # padded is fine
        raise ValueError(f"outputs of shape {outputs.shape} do not match {len(chunks)} chunks")
    dtype = outputs.dtype if np.issubdtype(outputs.dtype, np.floating) else np.float64
    result = np.full((n_points, *outputs.shape[2:]), np.nan, dtype=dtype)
    for i, chunk in enumerate(chunks):
        result[chunk.start + chunk.keep_from:chunk.stop] = outputs[i, chunk.keep_from:chunk.length]
    return result

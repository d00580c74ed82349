"""Sensor series from a request: JSON or CSV parsed into epoch seconds and float values, types checked.

`parse_json_series` and `parse_csv_series` check what needs no model (types, timestamps, sizes); putting the
series on a model's grid is serving/gateway/series_prepare.py. Policies: docs/preprocessing.md.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from serving.gateway.errors import ApiError

UNIVARIATE_KEY = "value"
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


def _invalid(where: str, problem: str, code: str = "invalid_value") -> ApiError:
    """`code` (422 `invalid_value` unless named) for an unusable entry; `invalid_series` (400) for a wrong JSON type."""
    return ApiError(code, f"{where}: {problem}")


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


# Values per allowed point, over all sensors: bounds the parsing work of a request with many sensors
# (points are capped by `max_points`, but thousands of sensors would multiply the work per point).
VALUES_PER_POINT = 4


def check_series_size(count: int, max_points: int | None, sensors: int = 1) -> None:
    if max_points is None:
        return
    if count > max_points:
        raise ApiError("series_too_long", f"the series has {count} points; the limit is {max_points}")
    if count * sensors > VALUES_PER_POINT * max_points:
        raise ApiError(
            "series_too_large",
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
    raise _invalid(where, f"expected an ISO 8601 string or epoch seconds, got {_type_name(value)}", "invalid_series")


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
        raise _invalid(where, "expected a number or null, got a string", "invalid_series")
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            raise _invalid(where, "number out of range") from None
        if math.isinf(number):
            raise _invalid(where, "Infinity is not a usable value (send null for a missing one)")
        return number
    raise _invalid(where, f"expected a number or null, got {_type_name(value)}", "invalid_series")


def _json_list(payload: dict, key: str, where: str | None = None) -> list:
    value = payload[key]
    if not isinstance(value, list):
        raise _invalid(where or key, f"expected a list, got {_type_name(value)}", "invalid_series")
    return value


def parse_json_series(payload: object, *, max_points: int | None = None) -> RawSeries:
    """`{"timestamps": [...], "values": [...]}` or `{"timestamps": [...], "series": {name: [...]}}`."""
    if not isinstance(payload, dict):
        raise ApiError("invalid_series", f"the body must be a JSON object, got {_type_name(payload)}")
    if "timestamps" not in payload:
        raise ApiError("invalid_series", "missing field 'timestamps'")
    if ("values" in payload) == ("series" in payload):
        raise ApiError("invalid_series", "send exactly one of 'values' (one sensor) or 'series' (named)")
    raw_times = _json_list(payload, "timestamps")
    check_series_size(len(raw_times), max_points)
    if "values" in payload:
        columns = {UNIVARIATE_KEY: _json_list(payload, "values")}
        labels = {UNIVARIATE_KEY: "values"}
    else:
        named = payload["series"]
        if not isinstance(named, dict) or not named:
            raise ApiError("invalid_series", "'series' must be a non-empty object of sensor -> list")
        columns = {name: _json_list(named, name, f"series.{name}") for name in named}
        labels = {name: f"series.{name}" for name in named}
    check_series_size(len(raw_times), max_points, len(columns))
    for name, column in columns.items():
        if len(column) != len(raw_times):
            raise ApiError(
                "length_mismatch",
                f"{labels[name]} has {len(column)} entries but timestamps has {len(raw_times)}",
            )
    timestamps = np.array(
        [_json_timestamp(value, f"timestamps[{i}]") for i, value in enumerate(raw_times)], dtype=np.float64
    )
    values = {
        name: np.array([_json_value(value, f"{labels[name]}[{i}]") for i, value in enumerate(column)], dtype=np.float64)
        for name, column in columns.items()
    }
    return usable_series(RawSeries(timestamps=timestamps, values=values, univariate="values" in payload))


def parse_csv_series(text: str, *, max_points: int | None = None) -> RawSeries:
    """CSV with a header `timestamp,<sensor>...` (NAB: `timestamp,value`); blank lines are skipped.

    One value column makes a univariate series whatever its name; empty cells, `nan`, `null`, `NA`
    are missing values.
    """
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")), strict=True)
    try:
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            raise ApiError("invalid_csv", "the CSV is empty")
        names = [cell.strip() for cell in header]
        if names[0].lower() != "timestamp" or len(names) < 2:
            raise ApiError(
                "invalid_csv",
                f"line {reader.line_num}: the header must be 'timestamp,<sensor>[,<sensor>...]', "
                f"got {','.join(names)[:80]!r}",
            )
        sensors = names[1:]
        if any(not name for name in sensors) or len(set(sensors)) != len(sensors):
            raise ApiError("invalid_csv", "sensor names in the header must be non-empty and unique")
        times: list[float] = []
        rows: list[list[float]] = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"line {reader.line_num}"
            if len(row) != len(names):
                raise ApiError("invalid_csv", f"{where}: expected {len(names)} fields, got {len(row)}")
            times.append(_timestamp_from_text(row[0], where))
            rows.append(
                [
                    _number_from_text(cell, f"{where}, column {name}")
                    for cell, name in zip(row[1:], sensors, strict=True)
                ]
            )
            check_series_size(len(times), max_points, len(sensors))
    except csv.Error as exc:
        raise ApiError("invalid_csv", f"line {reader.line_num}: {exc}") from exc
    matrix = np.array(rows, dtype=np.float64).reshape(len(rows), len(sensors))
    return usable_series(
        RawSeries(
            timestamps=np.array(times, dtype=np.float64),
            values={name: matrix[:, k] for k, name in enumerate(sensors)},
            univariate=len(sensors) == 1,
        )
    )


def usable_series(raw: RawSeries) -> RawSeries:
    """`raw` itself, after the checks that need no model: not empty, every value fits in float32."""
    if raw.timestamps.size == 0:
        raise ApiError("series_too_short", "the series is empty")
    for name, column in raw.values.items():
        too_big = np.abs(np.nan_to_num(column)) > FLOAT32_MAX
        if too_big.any():
            raise _invalid(f"sensor {name!r}, point {int(np.argmax(too_big))}", "value beyond float32 range")
    return raw

"""Turn the series inputs the client accepts into a `/v1/anomaly:score` request body.

Accepted: a CSV file path (sent as it is, `text/csv`, header `timestamp,<sensor>...`); a pandas DataFrame
with a DatetimeIndex or a `timestamp` column; a pandas Series with a DatetimeIndex; or timestamps plus values
(a sequence for one sensor, or a mapping sensor -> sequence for several). One value column is sent as
`values` (univariate), several as `series` keyed by column name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

SeriesInput: TypeAlias = str | Path | pd.DataFrame | pd.Series | Sequence[Any]
Values: TypeAlias = Sequence[float] | Mapping[str, Sequence[float]]


@dataclass(frozen=True)
class SeriesBody:
    """Exactly one of `json` or `data` (raw bytes of type `content_type`)."""

    json: dict[str, Any] | None = None
    data: bytes | None = None
    content_type: str | None = None


def series_body(data: SeriesInput, values: Values | None = None) -> SeriesBody:
    """The request body for `data` (and `values`, when `data` holds the timestamps)."""
    if isinstance(data, str | Path):
        if values is not None:
            raise TypeError("values must not be given together with a CSV path")
        return SeriesBody(data=Path(data).read_bytes(), content_type="text/csv")
    if isinstance(data, pd.Series):
        return series_body(data.to_frame(name=data.name or "value"), values)
    if isinstance(data, pd.DataFrame):
        if values is not None:
            raise TypeError("values must not be given together with a DataFrame")
        return SeriesBody(json=_frame_json(data))
    if values is None:
        raise TypeError("score_series needs timestamps and values, a DataFrame, or a CSV path")
    columns = dict(values) if isinstance(values, Mapping) else {"value": values}
    return SeriesBody(json=_columns_json(list(data), columns))


def _frame_json(frame: pd.DataFrame) -> dict[str, Any]:
    if "timestamp" in frame.columns:
        timestamps = list(frame["timestamp"])
        frame = frame.drop(columns="timestamp")
    elif isinstance(frame.index, pd.DatetimeIndex):
        timestamps = list(frame.index)
    else:
        raise ValueError("the DataFrame needs a DatetimeIndex or a 'timestamp' column")
    if frame.shape[1] == 0:
        raise ValueError("the DataFrame has no value columns")
    return _columns_json(timestamps, {str(name): frame[name].tolist() for name in frame.columns})


def _columns_json(timestamps: list[Any], columns: Mapping[str, Sequence[float]]) -> dict[str, Any]:
    for name, column in columns.items():
        if len(column) != len(timestamps):
            raise ValueError(f"{len(timestamps)} timestamps but {len(column)} values for {name!r}")
    body: dict[str, Any] = {"timestamps": [_timestamp_json(t) for t in timestamps]}
    if len(columns) == 1:
        (column,) = columns.values()
        body["values"] = [_value_json(v) for v in column]
    else:
        body["series"] = {name: [_value_json(v) for v in column] for name, column in columns.items()}
    return body


def _timestamp_json(value: Any) -> str | float:
    """ISO 8601 for dates, epoch seconds for numbers, text as it is."""
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    return str(value)


def _value_json(value: Any) -> float | None:
    """A JSON number, or null for a missing value (JSON has no NaN)."""
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number

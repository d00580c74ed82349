"""Sensor series for the anomaly model: read and clean CSV files, and cut training windows.

CSV: `timestamp,value` (NAB) or `timestamp,<sensor1>,<sensor2>,...`. Cleaning is explicit:
- rows are sorted by time; duplicate timestamps are averaged (NAB's machine_temperature file repeats 12);
- the series is put on a regular grid at its median interval (mean of the points in each step);
- gaps and NaN values up to `max_gap_steps` grid steps are filled by linear interpolation; longer gaps split the
  series into segments, and training windows never cross one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from training.mnist_data import DataError

MAX_GAP_STEPS = 12


@dataclass
class SensorSeries:
    """A cleaned, regularly sampled multivariate series."""

    timestamps: pd.DatetimeIndex
    values: np.ndarray  # float32 [n, F], NaN inside long gaps
    sensor_names: list[str]
    interval_seconds: float
    source: str
    notes: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(np.nan_to_num(self.values, nan=-1e30).tobytes())
        digest.update(",".join(self.sensor_names).encode())
        return digest.hexdigest()

    def head(self, rows: int) -> SensorSeries:
        return SensorSeries(
            self.timestamps[:rows],
            self.values[:rows],
            self.sensor_names,
            self.interval_seconds,
            self.source,
            [*self.notes, f"learning from the first {rows} of {len(self.values)} grid points"],
        )

    def segments(self, min_length: int) -> list[np.ndarray]:
        """Runs of rows without NaN, at least `min_length` long."""
        valid = ~np.isnan(self.values).any(axis=1)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], valid.astype(np.int8), [0]])))
        return [self.values[a:b] for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= min_length]


def read_sensor_csv(path: Path, min_rows: int, max_gap_steps: int = MAX_GAP_STEPS) -> SensorSeries:
    """Parse, validate and regularise a sensor CSV; every problem is a DataError with a one-line reason."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    columns = [str(c).strip() for c in frame.columns]
    if not columns or columns[0].lower() != "timestamp" or len(columns) < 2:
        raise DataError(
            f"{path}: the header must be 'timestamp,<sensor>[,<sensor>...]' (NAB: 'timestamp,value'), got "
            f"{','.join(columns)!r}"
        )
    if len(set(columns)) != len(columns):
        raise DataError(f"{path}: duplicate column names in the header")
    frame.columns = columns
    stamps = pd.to_datetime(frame["timestamp"].str.strip(), errors="coerce", utc=True, format="mixed")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if bad.size:
        row = int(bad[0])
        raise DataError(
            f"{path}: line {row + 2}: unparsable timestamp {frame['timestamp'].iloc[row]!r} "
            f"({bad.size} bad timestamps in all)"
        )
    names = columns[1:]
    values = np.empty((len(frame), len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        text = frame[name].str.strip()
        numbers = pd.to_numeric(text.replace({"": "nan", "null": "nan", "NaN": "nan"}), errors="coerce")
        bad = np.flatnonzero(
            numbers.isna().to_numpy() & ~text.str.lower().isin(["", "nan", "null"]).to_numpy()
        )
        if bad.size:
            row = int(bad[0])
            raise DataError(f"{path}: line {row + 2}: column {name!r}: not a number: {text.iloc[row]!r}")
        column = numbers.to_numpy(dtype=np.float64)
        if np.isinf(column).any():
            raise DataError(f"{path}: column {name!r}: infinite values")
        values[:, j] = column
    if len(frame) < min_rows:
        raise DataError(f"{path}: {len(frame)} data rows; at least {min_rows} are needed")
    return regularise(pd.DatetimeIndex(stamps), values, names, str(path), max_gap_steps)


def regularise(
    stamps: pd.DatetimeIndex, values: np.ndarray, names: list[str], source: str, max_gap_steps: int
) -> SensorSeries:
    notes = []
    frame = pd.DataFrame(values, index=stamps, columns=names).sort_index()
    duplicates = int(frame.index.duplicated().sum())
    if duplicates:
        notes.append(f"averaged {duplicates} duplicate timestamps")
        frame = frame.groupby(level=0).mean()
    steps = np.diff(frame.index.as_unit("ns").asi8) / 1e9
    if steps.size == 0 or np.median(steps) <= 0:
        raise DataError(f"{source}: cannot infer a sampling interval")
    interval = float(np.median(steps))
    grid = frame.resample(pd.Timedelta(seconds=interval), origin="start").mean()
    missing = int(grid.isna().any(axis=1).sum())
    filled = grid.interpolate(method="linear", limit=max_gap_steps, limit_area="inside")
    if missing:
        notes.append(f"{missing} grid points missing or NaN; gaps up to {max_gap_steps} steps interpolated")
    return SensorSeries(
        pd.DatetimeIndex(filled.index), filled.to_numpy(np.float32), names, interval, source, notes
    )


def training_windows(
    segments: list[np.ndarray], length: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """`count` windows [count, length, F] at random offsets, segments weighted by how many windows they hold."""
    spans = np.array([len(seg) - length + 1 for seg in segments], dtype=np.float64)
    choice = rng.choice(len(segments), size=count, p=spans / spans.sum())
    windows = [
        segments[i][start : start + length]
        for i in choice
        for start in [int(rng.integers(0, len(segments[i]) - length + 1))]
    ]
    return np.stack(windows).astype(np.float32)

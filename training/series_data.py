"""Sensor series for the anomaly model: read a CSV and put it on the grid the gateway serves, cut training windows.

CSV: `timestamp,value` (NAB) or `timestamp,<sensor1>,<sensor2>,...`, parsed by the gateway's own parser and put
on the grid by `serving/series_grid.py` at the series' median sampling interval, so the model learns from data
prepared exactly as it will be served (duplicates averaged, jitter kept, gaps up to `MAX_GAP_STEPS` filled,
longer gaps split the series into parts that no training window crosses).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from serving.gateway.errors import ApiError
from serving.gateway.series_input import parse_csv_series
from serving.series_grid import GridError, infer_interval, put_on_grid
from training.common import DataError

MAX_GAP_STEPS = 12  # the gateway's default `max_gap_steps`


@dataclass
class SensorSeries:
    """A series on the model's grid: regular parts laid end to end (see serving/series_grid.py)."""

    timestamps: np.ndarray  # epoch seconds per grid point
    values: np.ndarray  # float32 [n, F]
    parts: list[tuple[int, int]]
    sensor_names: list[str]
    interval_seconds: float
    source: str
    notes: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.values.tobytes())
        digest.update(",".join(self.sensor_names).encode())
        return digest.hexdigest()

    def segments(self, min_length: int) -> list[np.ndarray]:
        """The parts at least `min_length` long."""
        return [self.values[a:b] for a, b in self.parts if b - a >= min_length]


def read_sensor_csv(path: Path, learn_rows: int | None = None, max_gap_steps: int = MAX_GAP_STEPS) -> SensorSeries:
    """Parse and grid a sensor CSV; the interval is inferred from the first `learn_rows` rows (all by default).

    Every problem is a DataError with a one-line reason.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        raw = parse_csv_series(path.read_text(encoding="utf-8"))
        order = np.argsort(raw.timestamps, kind="stable")
        learn = order[: learn_rows or len(order)]
        interval = infer_interval(raw.timestamps[learn])
        matrix = np.stack(list(raw.values.values()), axis=1)
        grid = put_on_grid(raw.timestamps[learn], matrix[learn], interval, max_gap_steps)
    except ApiError as exc:
        raise DataError(f"{path}: {exc.message}") from None
    except GridError as exc:
        raise DataError(f"{path}: {exc}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    notes = [f"{len(learn)} of {len(order)} rows -> {len(grid.values)} grid points every {interval:g}s"]
    if grid.filled.any():
        notes.append(f"{int(grid.filled.sum())} grid points interpolated (gaps up to {max_gap_steps} steps)")
    if grid.gaps:
        notes.append(f"{len(grid.gaps)} longer gaps split the series into {len(grid.parts)} parts")
    return SensorSeries(
        grid.timestamps, grid.values.astype(np.float32), grid.parts, list(raw.values), interval, str(path), notes
    )


def training_windows(segments: list[np.ndarray], length: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` windows [count, length, F] at random offsets, segments weighted by how many windows they hold."""
    spans = np.array([len(seg) - length + 1 for seg in segments], dtype=np.float64)
    choice = rng.choice(len(segments), size=count, p=spans / spans.sum())
    windows = [
        segments[i][start : start + length]
        for i in choice
        for start in [int(rng.integers(0, len(segments[i]) - length + 1))]
    ]
    return np.stack(windows).astype(np.float32)

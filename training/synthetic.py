"""Built-in synthetic multi-sensor data: what the anomaly model learns from when no --data is given.

Three correlated sensors at one-minute resolution, with a daily and a weekly cycle and noise:
temperature follows the daily load; pressure follows temperature with a lag; vibration rises with load.
"""

from __future__ import annotations

import numpy as np

from training.series_data import SensorSeries

SENSORS = ["temperature", "pressure", "vibration"]
INTERVAL_SECONDS = 60.0
START = 1_767_571_200.0  # 2026-01-05T00:00:00Z


def synthetic_series(points: int, seed: int) -> SensorSeries:
    rng = np.random.default_rng(seed)
    minutes = np.arange(points, dtype=np.float64)
    day = 2 * np.pi * minutes / 1440.0
    week = 2 * np.pi * minutes / (7 * 1440.0)
    weekend = (np.sin(week) > 0.62).astype(np.float64)
    load = 0.6 + 0.3 * np.sin(day - np.pi / 2) + 0.1 * np.sin(week) - 0.15 * weekend
    temperature = 45.0 + 12.0 * load + rng.normal(0, 0.4, points)
    lagged = np.concatenate([np.full(30, load[0]), load[:-30]])
    pressure = 101.0 + 3.0 * lagged + 0.02 * (temperature - 45.0) + rng.normal(0, 0.15, points)
    vibration = 0.2 + 0.5 * load**2 + np.abs(rng.normal(0, 0.03, points))
    values = np.stack([temperature, pressure, vibration], axis=1).astype(np.float32)
    stamps = START + INTERVAL_SECONDS * minutes
    return SensorSeries(
        stamps, values, [(0, points)], list(SENSORS), INTERVAL_SECONDS, f"synthetic(points={points}, seed={seed})"
    )

"""Timestamps as ISO 8601 text, and runs of anomalous points as segments for the response."""

from __future__ import annotations

import numpy as np


def format_timestamps(epoch_seconds: np.ndarray) -> list[str]:
    """UTC ISO 8601 strings ending in `Z`; whole seconds unless some timestamp has a fraction (then ms)."""
    millis = np.rint(np.asarray(epoch_seconds, dtype=np.float64) * 1000.0).astype(np.int64)
    unit = "s" if np.all(millis % 1000 == 0) else "ms"
    return [text + "Z" for text in np.datetime_as_string(millis.astype("datetime64[ms]"), unit=unit)]


def format_timestamp(epoch_seconds: float) -> str:
    return format_timestamps(np.array([epoch_seconds]))[0]


def anomaly_segments(grid_timestamps: np.ndarray, scores: np.ndarray, is_anomaly: np.ndarray) -> list[dict]:
    """Each contiguous run of `is_anomaly` as {start, end, peak_score, peak_at, points}.

    `start` and `end` are the first and last anomalous points of the run (both inclusive); NaN scores
    (positions without a valid score) never peak.
    """
    flags = np.asarray(is_anomaly, dtype=bool)
    if flags.shape != np.shape(scores) or flags.shape != np.shape(grid_timestamps):
        raise ValueError("grid_timestamps, scores and is_anomaly must have the same shape")
    edges = np.diff(np.concatenate(([0], flags.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    segments = []
    for start, stop in zip(starts, stops, strict=True):
        run = np.asarray(scores[start:stop], dtype=np.float64)
        peak = start + (int(np.nanargmax(run)) if np.isfinite(run).any() else 0)
        first, last, peak_at = format_timestamps(grid_timestamps[[start, stop - 1, peak]])
        segments.append({
            "start": first,
            "end": last,
            "peak_score": float(scores[peak]) if np.isfinite(scores[peak]) else None,
            "peak_at": peak_at,
            "points": int(stop - start),
        })
    return segments

"""Timestamps as ISO 8601 text for responses and messages."""

from __future__ import annotations

import numpy as np


def format_timestamps(epoch_seconds: np.ndarray) -> list[str]:
    """UTC ISO 8601 strings ending in `Z`; whole seconds unless some timestamp has a fraction (then ms)."""
    millis = np.rint(np.asarray(epoch_seconds, dtype=np.float64) * 1000.0).astype(np.int64)
    unit = "s" if np.all(millis % 1000 == 0) else "ms"
    return [text + "Z" for text in np.datetime_as_string(millis.astype("datetime64[ms]"), unit=unit)]


def format_timestamp(epoch_seconds: float) -> str:
    return format_timestamps(np.array([epoch_seconds]))[0]

"""A request's alert threshold: `threshold` or `sensitivity` (at most one), else the default sensitivity.

One reading for every anomaly route (batch scoring and streams), so the two accept the same values.
"""

from __future__ import annotations

import math
from typing import Any

from serving import anomaly_scoring
from serving.gateway.errors import ApiError


def unit_interval(value: Any, name: str) -> float | None:
    """A float in [0, 1] from a query/form string or a JSON number; None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ApiError("invalid_parameter", f"{name} must be a number in [0, 1]")
    try:
        number = float(value)
    except ValueError:
        raise ApiError("invalid_parameter", f"{name}={str(value)[:40]!r} is not a number") from None
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise ApiError("parameter_out_of_range", f"{name} must be in [0, 1], got {number}")
    return number


def read_threshold(threshold: Any, sensitivity: Any) -> tuple[float | None, float | None]:
    """(threshold, sensitivity) as sent, each None when absent; both at once is a conflict."""
    threshold, sensitivity = unit_interval(threshold, "threshold"), unit_interval(sensitivity, "sensitivity")
    if threshold is not None and sensitivity is not None:
        raise ApiError("conflicting_parameters", "send threshold or sensitivity, not both")
    return threshold, sensitivity


def effective_threshold(threshold: float | None, sensitivity: float | None) -> tuple[float, float | None]:
    """(threshold, sensitivity): the threshold as sent, else the one the sensitivity (or the default) promises;
    the sensitivity is None when the client chose the threshold."""
    if threshold is not None:
        return threshold, None
    chosen = anomaly_scoring.DEFAULT_SENSITIVITY if sensitivity is None else sensitivity
    return anomaly_scoring.threshold_for(chosen), chosen

"""Prometheus metrics of the streams (docs/metrics.md); append latency by stage is the gateway's
`gateway_stage_duration_seconds{endpoint="/v1/streams/<stream_id>:append"}`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ACTIVE = Gauge(
    "gateway_streams_active",
    "Live streams in the store (every owner), as last counted.",
    multiprocess_mode="livemostrecent",
)
APPENDS = Counter("gateway_stream_appends", "Stream appends by outcome (applied, replayed).", ["outcome"])
POINTS = Counter("gateway_stream_points", "Readings appended to streams.")
EVENTS = Counter("gateway_stream_events", "Stream events opened and closed.", ["change"])
STORE_OPERATIONS = Counter("gateway_stream_store_operations", "Stream store calls (round trips).", ["operation"])
STORE_ERRORS = Counter(
    "gateway_stream_store_errors", "Stream store calls that failed (store unreachable).", ["operation"]
)


def initialise() -> None:
    """Every label value at zero from the start, so rates and the store alert work before the first error."""
    for outcome in ("applied", "replayed"):
        APPENDS.labels(outcome)
    for change in ("opened", "closed"):
        EVENTS.labels(change)
    for operation in ("create", "get", "replace", "delete", "count"):
        STORE_OPERATIONS.labels(operation)
        STORE_ERRORS.labels(operation)

"""The gateway's Prometheus metrics (names and meanings: docs/metrics.md) and the `/metrics` exposition.

Under gunicorn every worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR, which
serving/gateway/server.py sets before any worker imports this module; `/metrics` merges them. Without
that variable (unit tests, a bare Flask app) the default single-process registry is used.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0)

REQUESTS = Counter("gateway_requests", "HTTP requests answered.", ["endpoint", "method", "status"])
REQUEST_DURATION = Histogram(
    "gateway_request_duration_seconds",
    "Whole request, first byte in to response out.",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
STAGE_DURATION = Histogram(
    "gateway_stage_duration_seconds",
    "Time spent in one stage of a request.",
    ["endpoint", "stage"],
    buckets=LATENCY_BUCKETS,
)
INFLIGHT = Gauge(
    "gateway_inflight_requests", "Requests being handled now, over all workers.", multiprocess_mode="livesum"
)
API_KEY_REQUESTS = Counter(
    "gateway_api_key_requests", "Requests by API key name (bounded) and outcome.", ["key", "outcome"]
)
UPSTREAM_REQUESTS = Counter(
    "gateway_upstream_requests", "gRPC calls to the model server by status code.", ["model", "method", "code"]
)
UPSTREAM_ERRORS = Counter(
    "gateway_upstream_errors", "Failed gRPC calls to the model server by status code.", ["model", "code"]
)
BATCH_SIZE = Histogram(
    "gateway_batch_size",
    "Model rows (digits, a photo's views, or series chunks) per Predict call.",
    ["model"],
    buckets=BATCH_BUCKETS,
)
MODEL_VERSION_RESPONSES = Counter(
    "gateway_model_version_responses", "Responses by the model version that answered.", ["model", "version"]
)
MODEL_READY = Gauge(
    "gateway_model_ready",
    "1 when the model is AVAILABLE upstream, else 0 (checked at scrape time).",
    ["model"],
    multiprocess_mode="mostrecent",
)
DIGIT_PREDICTIONS = Counter("gateway_digit_predictions", "Predicted class counts.", ["digit"])
DIGIT_CONFIDENCE = Histogram(
    "gateway_digit_confidence", "Top-class probability of each predicted digit.", buckets=CONFIDENCE_BUCKETS
)
ANOMALY_POINTS_SCORED = Counter("gateway_anomaly_points_scored", "Points that received a score.", ["model"])
ANOMALY_POINTS_FLAGGED = Counter("gateway_anomaly_points_flagged", "Points flagged as anomalous.", ["model"])
ANOMALY_EVENTS = Counter("gateway_anomaly_events", "Anomaly events (alarms) reported.", ["model"])
_label_limit = [50]  # set from GatewayConfig.model_label_limit by initialise()
_named_models: set[str] = set()
_named_lock = threading.Lock()


def model_label(name: str) -> str:
    """`name` as a metric label, or `other` once this worker has labelled `model_label_limit` distinct models."""
    if name in _named_models:
        return name
    with _named_lock:
        if len(_named_models) < _label_limit[0]:
            _named_models.add(name)
            return name
    return "other"


# Up to this many values, `observe_many` observes them one by one (2 writes each beat the NumPy path's ~30 us).
FEW_VALUES = 4
ANOMALY_SCORE = Histogram("gateway_anomaly_score", "Scores of scored points.", buckets=SCORE_BUCKETS)


def initialise(models: tuple[str, ...], model_label_limit: int = 50) -> None:
    """Create the series that alerts and dashboards expect to exist at 0 before anything happens."""
    _label_limit[0] = model_label_limit
    for model in models:
        for code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            UPSTREAM_ERRORS.labels(model, code)
    for digit in range(10):
        DIGIT_PREDICTIONS.labels(str(digit))


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """`histogram.observe(v)` for every v, with one update per bucket instead of one per value.

    A 10,000-point series would otherwise cost 10,000 locked writes to the multiprocess file. This
    relies on prometheus-client's (pinned) Histogram internals: `_upper_bounds` (ending in +Inf),
    `_buckets` holding per-bucket (non-cumulative) counts and `_sum`; tests/test_gateway_unit.py
    checks the result against plain `observe`.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size <= FEW_VALUES:  # a single digit's confidence: plain observes cost a sixth of the NumPy path
        for value in values.tolist():
            histogram.observe(value)
        return
    counts = np.bincount(
        np.searchsorted(histogram._upper_bounds, values, side="left"), minlength=len(histogram._upper_bounds)
    )
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(int(count))
    histogram._sum.inc(float(values.sum()))


@functools.cache
def labelled(metric: Any, *labels: str) -> Any:
    """The child of `metric` for `labels`, looked up once per worker process: `labels()` takes a lock and
    rebuilds the key on every call, several times per request. Only for label sets of bounded size."""
    return metric.labels(*labels)


def exposition() -> tuple[bytes, str]:
    """The text exposition of all metrics (merged over workers in multiprocess mode) and its type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

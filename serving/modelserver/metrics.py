"""TF Serving's Prometheus metrics, rendered in the Prometheus text format.

TF Serving exports TensorFlow monitoring metrics with '/' replaced by ':', e.g.
`/tensorflow/serving/request_count` -> `:tensorflow:serving:request_count`, counters without a `_total`
suffix and latency samplers as histograms in microseconds. prometheus-client would append `_total` to
counters, so this module renders the few metrics itself.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def tf_metric_name(path: str) -> str:
    """`/tensorflow/serving/request_count` -> `:tensorflow:serving:request_count`."""
    return path.replace("/", ":")


def exponential_buckets(scale: float, growth: float, count: int) -> list[float]:
    """Upper bounds like TensorFlow's monitoring::Buckets::Exponential (the last bucket is +Inf)."""
    return [scale * growth**i for i in range(count)]


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    pairs = [f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Counter:
    """A monotonically increasing count per label set."""

    def __init__(self, path: str, help_text: str, labelnames: Sequence[str]) -> None:
        self.name = tf_metric_name(path)
        self.help_text = help_text
        self.labelnames = tuple(labelnames)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *labelvalues: str, amount: float = 1) -> None:
        with self._lock:
            self._values[labelvalues] = self._values.get(labelvalues, 0) + amount

    def render(self) -> list[str]:
        with self._lock:
            values = sorted(self._values.items())
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_labels(self.labelnames, key)} {_number(value)}" for key, value in values]
        return lines


class Histogram:
    """Cumulative buckets, sum and count per label set."""

    def __init__(self, path: str, help_text: str, labelnames: Sequence[str], bounds: Sequence[float]) -> None:
        self.name = tf_metric_name(path)
        self.help_text = help_text
        self.labelnames = tuple(labelnames)
        self.bounds = list(bounds)
        self._series: dict[tuple[str, ...], list[float]] = {}  # bucket counts..., +Inf count, sum
        self._lock = threading.Lock()

    def observe(self, value: float, *labelvalues: str) -> None:
        index = next((i for i, bound in enumerate(self.bounds) if value <= bound), len(self.bounds))
        with self._lock:
            series = self._series.setdefault(labelvalues, [0.0] * (len(self.bounds) + 2))
            series[index] += 1
            series[-1] += value

    def render(self) -> list[str]:
        with self._lock:
            snapshot = sorted((key, list(series)) for key, series in self._series.items())
        lines = [f"# HELP {self.name} {self.help_text}", f"# TYPE {self.name} histogram"]
        for key, series in snapshot:
            cumulative = 0.0
            for bound, count in zip([*self.bounds, float("inf")], series[:-1], strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else _number(bound)
                labels = _labels(self.labelnames, key, 'le="' + le + '"')
                lines.append(f"{self.name}_bucket{labels} {_number(cumulative)}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_number(series[-1])}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {_number(cumulative)}")
        return lines


# Scale of 10 us, growth 1.8, 33 buckets (up to ~20 minutes), as TF Serving's latency samplers.
LATENCY_BUCKETS = exponential_buckets(10, 1.8, 33)


class ServingMetrics:
    """The metrics this server exports, named and labelled as TF Serving's."""

    def __init__(self) -> None:
        self.request_count = Counter(
            "/tensorflow/serving/request_count", "The total number of requests.", ("model_name", "status")
        )
        self.request_latency = Histogram(
            "/tensorflow/serving/request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ("model_name", "API", "entrypoint"),
            LATENCY_BUCKETS,
        )
        self.runtime_latency = Histogram(
            "/tensorflow/serving/runtime_latency",
            "Distribution of wall time (in microseconds) for Tensorflow runtime.",
            ("model_name", "API", "runtime"),
            LATENCY_BUCKETS,
        )
        self.load_attempt_count = Counter(
            "/tensorflow/cc/saved_model/load_attempt_count",
            "The number of times a SavedModel was successfully loaded.",
            ("model_path", "status"),
        )
        self.load_latency = Counter(
            "/tensorflow/cc/saved_model/load_latency",
            "Latency in microseconds for SavedModels that were successfully loaded.",
            ("model_path",),
        )

    def record_request(self, model_name: str, status: str, api: str, entrypoint: str, micros: float) -> None:
        """Count a request; like TF Serving, only successful requests enter the latency histogram."""
        self.request_count.inc(model_name, status)
        if status == "OK":
            self.request_latency.observe(micros, model_name, api, entrypoint)

    def render(self) -> str:
        metrics = (
            self.request_count,
            self.request_latency,
            self.runtime_latency,
            self.load_attempt_count,
            self.load_latency,
        )
        return "\n".join(line for metric in metrics for line in metric.render()) + "\n"

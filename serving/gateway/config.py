"""Gateway settings: one frozen dataclass, filled from `GATEWAY_*` environment variables and CLI flags.

Every field has an environment variable named `GATEWAY_<FIELD IN UPPER CASE>`; the command line
(`python -m serving.gateway --port ...`) overrides the environment. The documentation of each
variable is in serving/gateway/README.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from serving.contract import ANOMALY_MODEL, MNIST_MODEL
from serving.gateway.series_prepare import DUPLICATE_POLICIES

ENV_PREFIX = "GATEWAY_"
WORKER_CLASSES = ("gevent", "gthread", "sync")


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway can be told; the defaults suit a 2-core machine next to the model server."""

    port: int = 8080
    host: str = "0.0.0.0"
    upstream: str = "localhost:8500"
    workers: int = 2
    threads: int = 4
    worker_class: str = "gevent"
    worker_connections: int = 1000
    reuse_port: int = 1  # 1: every worker listens on its own SO_REUSEPORT socket; 0: one shared socket
    read_timeout_seconds: float = 10.0
    deadline_seconds: float = 5.0
    upstream_retries: int = 4
    max_request_bytes: int = 32 * 1024 * 1024
    max_inflight_body_bytes: int = 64 * 1024 * 1024
    max_images: int = 256
    max_image_pixels: int = 16_000_000
    max_request_pixels: int = 64_000_000
    max_series_points: int = 100_000
    anomaly_chunk_points: int = 256
    max_gap_steps: int = 12
    duplicate_policy: str = "mean"
    mnist_model: str = MNIST_MODEL
    anomaly_model: str = ANOMALY_MODEL
    models_config: str = ""  # TF Serving's models.config: every model in it but mnist_model is an anomaly model
    model_label_limit: int = 50  # anomaly model names used as metric labels per worker; the rest are `other`
    model_label: str = ""
    version_cache_seconds: float = 2.0
    microbatch_ms: float = 2.0
    microbatch_max_images: int = 256
    log_level: str = "info"
    api_keys_file: str = ""
    metrics_port: int = 0
    stream_store: str = "sqlite:///streams.db"  # or redis://host:6379/0 (docs/streams.md)
    stream_ttl_seconds: float = 7 * 24 * 3600.0  # an idle stream expires after this long without an append
    stream_max_per_key: int = 1000  # live streams per API key (or in all without keys); 0: no limit
    stream_history_points: int = 20_000  # most scored errors a stream keeps (docs/streams.md)
    stream_max_append_points: int = 10_000
    stream_store_timeout_seconds: float = 1.0
    stream_store_retry_seconds: float = 1.0  # the Retry-After of a 503 while the store is down

    def __post_init__(self) -> None:
        positive = (
            "port",
            "workers",
            "threads",
            "worker_connections",
            "read_timeout_seconds",
            "max_request_bytes",
            "max_images",
            "max_image_pixels",
            "max_request_pixels",
            "max_series_points",
            "anomaly_chunk_points",
            "microbatch_max_images",
            "stream_ttl_seconds",
            "stream_history_points",
            "stream_max_append_points",
            "stream_store_timeout_seconds",
            "stream_store_retry_seconds",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{ENV_PREFIX}{name.upper()} must be positive, got {getattr(self, name)}")
        if self.deadline_seconds <= 0:
            raise ValueError(f"{ENV_PREFIX}DEADLINE_SECONDS must be positive, got {self.deadline_seconds}")
        not_negative = (
            "upstream_retries",
            "max_gap_steps",
            "version_cache_seconds",
            "microbatch_ms",
            "model_label_limit",
            "metrics_port",
            "stream_max_per_key",
        )
        for name in not_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"{ENV_PREFIX}{name.upper()} must not be negative, got {getattr(self, name)}")

        if self.max_inflight_body_bytes < self.max_request_bytes:
            raise ValueError(f"{ENV_PREFIX}MAX_INFLIGHT_BODY_BYTES must be at least {ENV_PREFIX}MAX_REQUEST_BYTES")
        if self.reuse_port not in (0, 1):
            raise ValueError(f"{ENV_PREFIX}REUSE_PORT must be 0 or 1, got {self.reuse_port}")
        if self.worker_class not in WORKER_CLASSES:
            raise ValueError(f"{ENV_PREFIX}WORKER_CLASS must be one of {WORKER_CLASSES}, got {self.worker_class!r}")
        if self.duplicate_policy not in DUPLICATE_POLICIES:
            raise ValueError(
                f"{ENV_PREFIX}DUPLICATE_POLICY must be one of {DUPLICATE_POLICIES}, got {self.duplicate_policy!r}"
            )

    @property
    def microbatching(self) -> bool:
        """Micro-batching needs concurrent requests in one process, i.e. gevent or gthread workers."""
        return self.microbatch_ms > 0 and self.worker_class != "sync"

    @property
    def required_models(self) -> tuple[str, str]:
        return (self.mnist_model, self.anomaly_model)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> GatewayConfig:
        """Defaults, then `GATEWAY_*` variables, then `overrides` (values that are not None)."""
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = environ.get(ENV_PREFIX + field.name.upper())
            if raw is not None and raw != "":
                values[field.name] = _parse(field, raw)
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


def _boolean(raw: str) -> bool:
    """true/false, yes/no, on/off or 1/0, in any case."""
    answer = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}
    try:
        return answer[raw.strip().lower()]
    except KeyError:
        raise ValueError(raw) from None


# How a `GATEWAY_*` string becomes each type a field may have (the annotations are strings: postponed evaluation).
PARSERS: dict[str, Callable[[str], Any]] = {"int": int, "float": float, "str": str, "bool": _boolean}


def _parse(field: dataclasses.Field[Any], raw: str) -> Any:
    """`raw` as the field's type; a field of a type PARSERS does not know is a programming error (TypeError)."""
    type_name = field.type if isinstance(field.type, str) else field.type.__name__
    parse = PARSERS.get(type_name)
    if parse is None:
        raise TypeError(f"GatewayConfig.{field.name}: no parser for type {type_name!r}; add one to PARSERS")
    try:
        return parse(raw)
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{field.name.upper()}={raw!r} is not a valid {type_name}") from None

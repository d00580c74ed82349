"""Per-version constants of the anomaly model, read once per version (docs/contract.md).

GetModelMetadata says which version the server serves now (for the configured label, or the latest)
and gives F (the last dimension of the `window` input); the `model_info` signature gives the rest.
Both are cached per version, and the "which version is current" answer for a few seconds only, so a
rollout is picked up quickly while a busy gateway asks at most once per `version_cache_seconds`.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import grpc
import numpy as np

from serving import contract as c
from serving.anomaly_scoring import ScoreParams
from serving.gateway.upstream import UpstreamClient, UpstreamError, model_spec
from serving.protos import tfs_lite_pb2


@dataclass(frozen=True)
class AnomalyModelInfo:
    """The constants of one version of the anomaly model."""

    name: str
    version: int
    history_length: int
    interval_seconds: float
    sensor_names: tuple[str, ...]
    score: ScoreParams
    seasonal_scale: np.ndarray  # [F]; ones when the model has no seasonal evidence

    @property
    def features(self) -> int:
        return len(self.sensor_names)


class AnomalyCatalog:
    """Resolves the current version of the anomaly model and its constants, with caching."""

    def __init__(self, upstream: UpstreamClient, name: str, *, label: str, version_ttl: float) -> None:
        self.upstream = upstream
        self.name = name
        self.label = label
        self.version_ttl = version_ttl
        self._lock = threading.Lock()
        self._current: tuple[float, AnomalyModelInfo] | None = None
        self._by_version: dict[int, AnomalyModelInfo] = {}

    def current(self, deadline: float) -> AnomalyModelInfo:
        """The constants of the version the server serves now."""
        with self._lock:
            cached = self._current
        if cached is not None and time.monotonic() - cached[0] < self.version_ttl:
            return cached[1]
        version, signatures = self.upstream.metadata(model_spec(self.name, label=self.label), deadline)
        info = self._by_version.get(version)
        if info is None:
            info = self._read_info(version, _features(self.name, signatures), deadline)
        with self._lock:
            self._by_version[version] = info
            self._current = (time.monotonic(), info)
        return info

    def forget(self, version: int) -> None:
        """Drop a version that the server no longer has (Predict answered NOT_FOUND)."""
        with self._lock:
            self._by_version.pop(version, None)
            if self._current is not None and self._current[1].version == version:
                self._current = None

    def _read_info(self, version: int, features: int, deadline: float) -> AnomalyModelInfo:
        spec = model_spec(self.name, version=version, signature=c.INFO_SIGNATURE)
        outputs = self.upstream.predict(
            spec, {c.WINDOW_INPUT: np.zeros((1, 1, features), np.float32)}, deadline
        ).outputs
        try:
            names = tuple(bytes(item).decode("utf-8") for item in outputs[c.SENSOR_NAMES_INFO].ravel())
            score = ScoreParams(
                **{field: int(outputs[field].ravel()[0]) for field in c.COUNT_INFOS},
                prior_mean=float(outputs[c.PRIOR_ERROR_MEAN_INFO].ravel()[0]),
                prior_std=float(outputs[c.PRIOR_ERROR_STD_INFO].ravel()[0]),
                seasonal_prior_mean=_optional(outputs, c.SEASONAL_PRIOR_MEAN_INFO, 1.0),
                seasonal_prior_std=_optional(outputs, c.SEASONAL_PRIOR_STD_INFO, 0.0),
            )
            info = AnomalyModelInfo(
                name=self.name,
                version=version,
                history_length=int(outputs[c.HISTORY_LENGTH_INFO].ravel()[0]),
                interval_seconds=float(outputs[c.INTERVAL_SECONDS_INFO].ravel()[0]),
                sensor_names=names,
                score=score,
                seasonal_scale=np.asarray(outputs.get(c.SEASONAL_SCALE_INFO, np.ones(len(names))), np.float64).ravel(),
            )
        except (KeyError, IndexError, UnicodeDecodeError, TypeError, ValueError) as exc:
            raise _contract_error(self.name, f"model_info signature is incomplete: {exc}") from exc
        counts_usable = all(getattr(score, field) >= 1 for field in c.COUNT_INFOS)
        usable = (
            info.history_length >= 0
            and 0 < info.interval_seconds < math.inf
            and counts_usable
            and math.isfinite(score.prior_mean)
            and math.isfinite(score.prior_std)
            and score.prior_std > 0
            and math.isfinite(score.seasonal_prior_mean)
            and score.seasonal_prior_std >= 0
            and info.seasonal_scale.shape == (len(names),)
            and bool(np.all(info.seasonal_scale > 0))
        )
        if not usable:
            raise _contract_error(
                self.name,
                f"model_info constants out of range: history_length "
                f"{info.history_length}, interval {info.interval_seconds}, {score}",
            )
        if info.features != features:
            raise _contract_error(self.name, f"model_info names {info.features} sensors, input has {features}")
        return info


def _optional(outputs: dict[str, np.ndarray], key: str, default: float) -> float:
    """A seasonal constant, or `default` (no seasonal evidence) for a model exported before it existed."""
    return float(outputs[key].ravel()[0]) if key in outputs else default


def _features(name: str, signatures: tfs_lite_pb2.SignatureDefMap) -> int:
    signature = signatures.signature_def.get(c.SERVING_SIGNATURE)
    window = signature.inputs.get(c.WINDOW_INPUT) if signature is not None else None
    dims = [dim.size for dim in window.tensor_shape.dim] if window is not None else []
    if len(dims) != 3 or dims[-1] <= 0:
        raise _contract_error(name, f"{c.SERVING_SIGNATURE} has no [-1, -1, F] {c.WINDOW_INPUT!r} input")
    return dims[-1]


def _contract_error(name: str, message: str) -> UpstreamError:
    return UpstreamError("model_contract", f"model {name!r}: {message}", grpc.StatusCode.INTERNAL)

"""Typed results of gateway calls, built from the gateway's JSON answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd


def parse_timestamp(value: Any) -> datetime:
    """A gateway timestamp (ISO 8601 text or epoch seconds) as an aware-or-naive `datetime`."""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class ModelRef:
    """Which model version produced a result."""

    name: str
    version: int | None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ModelRef:
        data = data or {}
        version = data.get("version")
        return cls(name=str(data.get("name", "")), version=int(version) if version is not None else None)


@dataclass(frozen=True)
class DigitPrediction:
    """The classifier's answer for one image."""

    digit: int
    confidence: float
    probabilities: list[float]
    model: ModelRef

    @classmethod
    def from_json(cls, data: dict[str, Any], model: ModelRef) -> DigitPrediction:
        return cls(
            digit=int(data["digit"]),
            confidence=float(data["confidence"]),
            probabilities=[float(p) for p in data["probabilities"]],
            model=model,
        )


@dataclass(frozen=True)
class PointScore:
    """Score of one input timestamp; `score` is None where the model has too little history yet."""

    timestamp: datetime
    score: float | None
    is_anomaly: bool
    expected: dict[str, float] = field(default_factory=dict)
    contribution: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PointScore:
        score = data.get("score")
        return cls(
            timestamp=parse_timestamp(data["timestamp"]),
            score=None if score is None else float(score),
            is_anomaly=bool(data.get("is_anomaly", False)),
            expected={k: float(v) for k, v in (data.get("expected") or {}).items() if v is not None},
            contribution={k: float(v) for k, v in (data.get("contribution") or {}).items() if v is not None},
        )


@dataclass(frozen=True)
class AnomalySegment:
    """A run of consecutive anomalous points."""

    start: datetime
    end: datetime
    peak_score: float
    peak_at: datetime
    points: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnomalySegment:
        return cls(
            start=parse_timestamp(data["start"]),
            end=parse_timestamp(data["end"]),
            peak_score=float(data["peak_score"]),
            peak_at=parse_timestamp(data["peak_at"]),
            points=int(data["points"]),
        )


@dataclass(frozen=True)
class SeriesScore:
    """The anomaly detector's answer for a whole series, and the model constants it used."""

    points: list[PointScore]
    anomalies: list[AnomalySegment]
    threshold: float
    model: ModelRef
    sensitivity: float | None = None
    sensors: list[str] = field(default_factory=list)
    interval_seconds: float | None = None
    history_length: int | None = None
    filled_points: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SeriesScore:
        optional = {k: data[k] for k in ("sensitivity", "interval_seconds", "history_length") if k in data}
        return cls(
            points=[PointScore.from_json(p) for p in data["points"]],
            anomalies=[AnomalySegment.from_json(a) for a in data.get("anomalies", [])],
            threshold=float(data["threshold"]),
            model=ModelRef.from_json(data.get("model")),
            sensors=[str(s) for s in data.get("sensors", [])],
            filled_points=int(data.get("filled_points", 0)),
            **optional,
        )

    def to_frame(self) -> pd.DataFrame:
        """One row per point, indexed by timestamp: score (NaN without one), is_anomaly, expected_<sensor>."""
        frame = pd.DataFrame(
            {
                "score": [float("nan") if p.score is None else p.score for p in self.points],
                "is_anomaly": [p.is_anomaly for p in self.points],
            },
            index=pd.DatetimeIndex([p.timestamp for p in self.points], name="timestamp"),
        )
        for sensor in self.sensors:
            frame[f"expected_{sensor}"] = [p.expected.get(sensor, float("nan")) for p in self.points]
        return frame


@dataclass(frozen=True)
class ModelVersion:
    """One version of a served model: its state (START, LOADING, AVAILABLE, UNLOADING, END) and error."""

    version: int
    state: str
    error: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    """A served model, its role in the gateway (digits / anomaly) and its versions."""

    name: str
    role: str
    versions: list[ModelVersion]
    error: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelInfo:
        versions = [
            ModelVersion(version=int(v["version"]), state=str(v["state"]), error=v.get("error"))
            for v in data.get("versions", [])
        ]
        return cls(name=str(data["name"]), role=str(data.get("role", "")), versions=versions, error=data.get("error"))

    @classmethod
    def list_from_json(cls, data: dict[str, Any]) -> list[ModelInfo]:
        """The models of a `/v1/models` answer."""
        return [cls.from_json(m) for m in data["models"]]


@dataclass(frozen=True)
class Readiness:
    """The `/readyz` answer: truthy when the gateway can serve; `message` says why not."""

    ready: bool
    message: str = ""

    def __bool__(self) -> bool:
        return self.ready

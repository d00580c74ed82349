"""Python client of the digits-and-sensors gateway: library (`GatewayClient`), CLI (`python -m client`)."""

from client.errors import GatewayError, GatewayUnavailable
from client.gateway import GatewayClient
from client.results import (
    AnomalySegment,
    DigitPrediction,
    ModelInfo,
    ModelRef,
    ModelVersion,
    PointScore,
    Readiness,
    SeriesScore,
)
from client.streams import LiveStream, StreamAppend, StreamEvent, StreamPoint

__all__ = [
    "AnomalySegment",
    "DigitPrediction",
    "GatewayClient",
    "GatewayError",
    "GatewayUnavailable",
    "LiveStream",
    "ModelInfo",
    "ModelRef",
    "ModelVersion",
    "PointScore",
    "Readiness",
    "SeriesScore",
    "StreamAppend",
    "StreamEvent",
    "StreamPoint",
]

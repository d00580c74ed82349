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

__all__ = [
    "AnomalySegment",
    "DigitPrediction",
    "GatewayClient",
    "GatewayError",
    "GatewayUnavailable",
    "ModelInfo",
    "ModelRef",
    "ModelVersion",
    "PointScore",
    "Readiness",
    "SeriesScore",
]

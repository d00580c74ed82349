"""Streams from the client side: `LiveStream` sends new readings and remembers the end they extend.

`GatewayClient.open_stream("pump-7")` starts (or, with `resume=True`, continues) a stream; each
`append(timestamps, values)` returns the readings' scores and the events they opened or closed. The
transport retries a lost append with the same body, which the gateway answers exactly once (docs/streams.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from client.results import ModelRef, parse_timestamp
from client.series import Values, series_body
from client.transport import Transport


@dataclass(frozen=True)
class StreamPoint:
    """One appended reading: its score (None while warming up), flag, and whether it raised an alarm."""

    timestamp: datetime
    score: float | None
    is_anomaly: bool
    alarm: bool
    unscored: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamPoint:
        return cls(
            parse_timestamp(data["timestamp"]),
            data["score"],
            bool(data["is_anomaly"]),
            bool(data["alarm"]),
            data.get("unscored"),
        )


@dataclass(frozen=True)
class StreamEvent:
    """An event an append opened, extended or closed (`status` "open" or "closed")."""

    start: datetime
    end: datetime
    points: int
    peak_score: float
    status: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StreamEvent:
        return cls(
            parse_timestamp(data["start"]),
            parse_timestamp(data["end"]),
            int(data["points"]),
            float(data["peak_score"]),
            str(data["status"]),
        )


@dataclass(frozen=True)
class StreamAppend:
    """The answer to one append."""

    points: list[StreamPoint]
    events: list[StreamEvent]
    end: str
    model: ModelRef


class LiveStream:
    """One stream of the gateway; `end` is the last reading it holds (what the next append extends)."""

    def __init__(self, http: Transport, stream_id: str, end: str | None) -> None:
        self._http = http
        self.stream_id = stream_id
        self.end = end

    def append(self, timestamps: Sequence[Any], values: Values) -> StreamAppend:
        """Score new readings: timestamps after `end` with one value per sensor (a sequence or a mapping)."""
        body = series_body(list(timestamps), values).json
        answer = self._http.request(
            "POST", f"/v1/streams/{self.stream_id}:append", json={"after": self.end, **(body or {})}
        ).json()
        self.end = answer["end"]
        return StreamAppend(
            [StreamPoint.from_json(p) for p in answer["points"]],
            [StreamEvent.from_json(e) for e in answer["events"]],
            answer["end"],
            ModelRef.from_json(answer["model"]),
        )

    def state(self) -> dict[str, Any]:
        """The gateway's summary: model version, readings, end, recent events."""
        return self._http.request("GET", f"/v1/streams/{self.stream_id}").json()

    def delete(self) -> None:
        self._http.request("DELETE", f"/v1/streams/{self.stream_id}")


def open_stream(http: Transport, stream_id: str, *, resume: bool, options: dict[str, Any]) -> LiveStream:
    """A fresh stream (PUT: on the model's current version), or the existing one where it ends (`resume`)."""
    if resume:
        return LiveStream(http, stream_id, http.request("GET", f"/v1/streams/{stream_id}").json()["end"])
    http.request("PUT", f"/v1/streams/{stream_id}", json=options)
    return LiveStream(http, stream_id, None)

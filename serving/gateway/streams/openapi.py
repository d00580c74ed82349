"""The OpenAPI paths and schemas of `/v1/streams` (merged into serving/gateway/openapi.py's document)."""

from __future__ import annotations

from typing import Any

from serving.gateway.config import GatewayConfig

JSON = "application/json"
REF = "#/components/schemas/"
# Shared with the batch API's schemas (serving/gateway/openapi.py).
MODEL_NAME = {"type": "string", "minLength": 1}
ONE_SERIES_SHAPE = {"oneOf": [{"required": ["values"]}, {"required": ["series"]}]}
# `threshold` and `sensitivity`: null is the same as absent, and at most one of them is a number.
OPTIONAL_UNIT = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
ONE_LIMIT = {
    "not": {
        "required": ["threshold", "sensitivity"],
        "properties": {"threshold": {"type": "number"}, "sensitivity": {"type": "number"}},
    }
}
STREAM_ID = {
    "name": "stream_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$"},
}


def _content(name: str) -> dict[str, Any]:
    return {JSON: {"schema": {"$ref": REF + name}}}


def _errors(statuses: dict[int, str]) -> dict[str, Any]:
    return {str(status): {"description": text, "content": _content("Error")} for status, text in statuses.items()}


STORE_DOWN = {503: "The stream store is unreachable (or the model server is); see Retry-After."}
NO_STREAM = {404: "No such stream (never created, deleted, or idle past its TTL)."}


def stream_paths(config: GatewayConfig) -> dict[str, Any]:
    ttl = f"{config.stream_ttl_seconds:g} s"
    return {
        "/v1/streams/{stream_id}": {
            "put": {
                "tags": ["streams"],
                "operationId": "createStream",
                "summary": "Start (or restart) a stream",
                "description": (
                    "Creates the stream, or starts an existing one afresh, on the current version of `model` "
                    "(default: anomaly); the stream keeps that version until it is PUT again. `sensors` and "
                    "`interval_seconds`, when given, must match the model. At most one of `sensitivity` and "
                    f"`threshold`. A stream expires after {ttl} without an append; at most "
                    f"{config.stream_max_per_key or 'unlimited'} streams per API key."
                ),
                "parameters": [STREAM_ID],
                "requestBody": {"required": False, "content": _content("StreamRequest")},
                "responses": {
                    "201": {"description": "The new stream.", "content": _content("StreamSummary")},
                    **_errors(
                        {
                            400: "Malformed body or stream id.",
                            404: "Unknown anomaly model.",
                            415: "Not JSON, or sent with a Content-Encoding.",
                            422: "Sensors or interval do not match the model.",
                            429: "Too many streams for this API key.",
                            **STORE_DOWN,
                        }
                    ),
                },
            },
            "get": {
                "tags": ["streams"],
                "operationId": "readStream",
                "summary": "A stream's state and last events",
                "parameters": [STREAM_ID],
                "responses": {
                    "200": {"description": "The stream.", "content": _content("StreamSummary")},
                    **_errors({400: "Bad stream id.", **NO_STREAM, **STORE_DOWN}),
                },
            },
            "delete": {
                "tags": ["streams"],
                "operationId": "deleteStream",
                "summary": "Forget a stream",
                "parameters": [STREAM_ID],
                "responses": {
                    "204": {"description": "Deleted."},
                    **_errors({400: "Bad stream id.", **NO_STREAM, **STORE_DOWN}),
                },
            },
        },
        "/v1/streams/{stream_id}:append": {
            "post": {
                "tags": ["streams"],
                "operationId": "appendToStream",
                "summary": "Score new readings of a stream",
                "description": (
                    "New readings (after the stream's end, at least half an interval apart, every sensor "
                    "present) -> each one's score, flag and alarm, and the events this append opened, "
                    "extended or closed: the same scores the whole series would get from /v1/anomaly:score. "
                    "`after` is the stream's end this append extends (the `end` of the previous answer; null "
                    "for the first). Exactly once: a retry of the last append gets the same answer and changes "
                    "nothing; any other `after` than the end is 409 with the end (header X-Stream-End). "
                    f"At most {config.stream_max_append_points} readings per append."
                ),
                "parameters": [STREAM_ID],
                "requestBody": {"required": True, "content": _content("AppendRequest")},
                "responses": {
                    "200": {"description": "Scores of the new readings.", "content": _content("AppendResponse")},
                    **_errors(
                        {
                            400: "Malformed body (no `after`, wrong types).",
                            **NO_STREAM,
                            409: "`after` is not the stream's end, or the model version it started with is "
                            "gone (PUT it again).",
                            413: "Too many readings.",
                            415: "Not JSON, or sent with a Content-Encoding.",
                            422: "Unusable readings (missing values, too close, bad timestamps).",
                            **STORE_DOWN,
                            504: "The model server did not answer in time.",
                        }
                    ),
                },
            },
        },
    }


def stream_schemas(config: GatewayConfig) -> dict[str, Any]:
    unit = {"type": "number", "minimum": 0, "maximum": 1}
    stamp = {"type": "string", "description": "ISO 8601 UTC"}
    values = {"type": "array", "maxItems": config.stream_max_append_points, "items": {"type": "number"}}
    event = {
        "type": "object",
        "required": ["start", "end", "peak_score", "peak_at", "points", "status"],
        "properties": {
            "start": stamp,
            "end": stamp,
            "peak_score": unit,
            "peak_at": stamp,
            "points": {"type": "integer", "minimum": 1},
            "status": {
                "enum": ["open", "closed"],
                "description": "open: later flags within event_gap_points of its start join it",
            },
        },
    }
    return {
        "StreamRequest": {
            "type": "object",
            **ONE_LIMIT,
            "properties": {
                "model": MODEL_NAME,
                "sensors": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                "interval_seconds": {"type": "number", "exclusiveMinimum": 0},
                "sensitivity": OPTIONAL_UNIT,
                "threshold": OPTIONAL_UNIT,
            },
        },
        "StreamEvent": event,
        "StreamSummary": {
            "type": "object",
            "required": ["stream", "model", "sensors", "interval_seconds", "threshold", "end", "readings", "appends"],
            "properties": {
                "stream": {"type": "string"},
                "model": {"$ref": REF + "ModelRef"},
                "sensors": {"type": "array", "items": {"type": "string"}},
                "interval_seconds": {"type": "number"},
                "threshold": unit,
                "sensitivity": {**unit, "type": ["number", "null"]},
                "end": {"type": ["string", "null"], "description": "the last reading's time: the next `after`"},
                "readings": {"type": "integer"},
                "appends": {"type": "integer"},
                "grid_points": {"type": "integer"},
                "history_points": {"type": "integer", "description": "scored errors kept for the baseline"},
                "recent_events": {"type": "array", "items": {"$ref": REF + "StreamEvent"}},
            },
        },
        "AppendRequest": {
            "type": "object",
            "required": ["after", "timestamps"],
            "description": "`timestamps` and exactly one of `values` (one sensor) or `series` (named).",
            **ONE_SERIES_SHAPE,
            "properties": {
                "after": {"type": ["string", "number", "null"], "description": "the stream's end; null at first"},
                "timestamps": {
                    "type": "array",
                    "maxItems": config.stream_max_append_points,
                    "items": {"type": ["string", "number"]},
                },
                "values": values,
                "series": {"type": "object", "minProperties": 1, "additionalProperties": values},
            },
        },
        "StreamPoint": {
            "type": "object",
            "required": ["timestamp", "score", "is_anomaly", "alarm", "expected"],
            "properties": {
                "timestamp": stamp,
                "score": {**unit, "type": ["number", "null"]},
                "is_anomaly": {"type": "boolean"},
                "alarm": {"type": "boolean"},
                "expected": {"type": "object", "additionalProperties": {"type": ["number", "null"]}},
                "unscored": {"enum": ["warming_up", "after_gap"]},
            },
        },
        "AppendResponse": {
            "type": "object",
            "required": ["points", "events", "end", "appends", "model"],
            "properties": {
                "points": {"type": "array", "items": {"$ref": REF + "StreamPoint"}},
                "events": {"type": "array", "items": {"$ref": REF + "StreamEvent"}},
                "end": stamp,
                "appends": {"type": "integer"},
                "model": {"$ref": REF + "ModelRef"},
            },
        },
    }

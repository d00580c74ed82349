"""The OpenAPI 3.1 document of the gateway, served at `/openapi.json` and rendered at `/docs`.

Built once per worker from the config, so the documented limits are the configured ones. Tests
validate real responses against the schemas here and fuzz the API from it.
"""

from __future__ import annotations

from typing import Any

from serving.anomaly_scoring import DEFAULT_SENSITIVITY
from serving.contract import MNIST_SIDE
from serving.gateway.config import GatewayConfig
from serving.gateway.curl_examples import code_samples
from serving.gateway.streams.openapi import (
    MODEL_NAME,
    ONE_LIMIT,
    ONE_SERIES_SHAPE,
    OPTIONAL_UNIT,
    stream_paths,
    stream_schemas,
)

JSON = "application/json"
REF = "#/components/schemas/"
MODEL_STATES = ("UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _json_content(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {JSON: media}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json_content(_ref("Error"))}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "Malformed request (not JSON, wrong types, bad base64, missing fields).",
        404: "Unknown anomaly model (the message lists the known ones).",
        413: "Body, image or series larger than the configured limits.",
        415: "Unsupported Content-Type, image format or Content-Encoding (bodies are sent uncompressed).",
        422: "Well-formed but unusable input (blank image, no gap-free part long enough...).",
        503: "Model server unreachable or model not loaded; see Retry-After.",
        504: "Model server did not answer within the deadline.",
    }
    return {str(status): _error(text[status]) for status in statuses}


def _schemas(config: GatewayConfig) -> dict[str, Any]:
    probability = {"type": "number", "minimum": 0, "maximum": 1}
    unit_or_null = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
    timestamp = {
        "oneOf": [
            {"type": "string", "description": "ISO 8601 (UTC when no offset is given)"},
            {"type": "number", "description": "seconds since 1970-01-01 UTC"},
        ]
    }
    sensor_values = {"type": "array", "maxItems": config.max_series_points, "items": {"type": ["number", "null"]}}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string", "description": "stable machine-readable code"},
                        "message": {"type": "string", "description": "what went wrong, for humans"},
                    },
                }
            },
        },
        "ModelRef": {
            "type": "object",
            "required": ["name", "version"],
            "properties": {"name": {"type": "string"}, "version": {"type": "integer"}},
        },
        "DigitInstance": {
            "type": "object",
            "description": "Exactly one of `b64` (an encoded image file) or `pixels` (28x28, ink high).",
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {
                "b64": {"type": "string", "description": "base64 PNG/JPEG/... file, or a data: URL"},
                "pixels": {
                    "type": "array",
                    "minItems": MNIST_SIDE,
                    "maxItems": MNIST_SIDE,
                    "description": f"{MNIST_SIDE} rows of {MNIST_SIDE} numbers, 0..255 (or 0..1), white ink on black, "
                    "centred",
                    "items": {
                        "type": "array",
                        "minItems": MNIST_SIDE,
                        "maxItems": MNIST_SIDE,
                        "items": {"type": "number", "minimum": 0, "maximum": 255},
                    },
                },
            },
        },
        "DigitsJsonRequest": {
            "type": "object",
            "required": ["instances"],
            "properties": {
                "instances": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": config.max_images,
                    "items": _ref("DigitInstance"),
                }
            },
        },
        "DigitPrediction": {
            "type": "object",
            "required": ["digit", "confidence", "probabilities"],
            "properties": {
                "digit": {"type": "integer", "minimum": 0, "maximum": 9},
                "confidence": {**probability, "description": "probability of `digit`"},
                "probabilities": {
                    "type": "array",
                    "minItems": 10,
                    "maxItems": 10,
                    "items": probability,
                    "description": "per digit 0-9; a photo's: the mean over seven views of it (docs/preprocessing.md)",
                },
            },
        },
        "DigitsResponse": {
            "type": "object",
            "required": ["predictions", "model"],
            "properties": {
                "predictions": {
                    "type": "array",
                    "items": _ref("DigitPrediction"),
                    "description": "one per image, in request order",
                },
                "model": _ref("ModelRef"),
            },
        },
        "SeriesJsonRequest": {
            "type": "object",
            "required": ["timestamps"],
            "description": "`timestamps` and exactly one of `values` (one sensor) or `series` (named).",
            **ONE_SERIES_SHAPE,
            **ONE_LIMIT,
            "properties": {
                "timestamps": {"type": "array", "maxItems": config.max_series_points, "items": timestamp},
                "values": sensor_values,
                "series": {"type": "object", "minProperties": 1, "additionalProperties": sensor_values},
                "threshold": {**OPTIONAL_UNIT, "description": "flag points with score > threshold"},
                "sensitivity": {
                    **OPTIONAL_UNIT,
                    "description": f"expected false alarms, {DEFAULT_SENSITIVITY} by default; see /docs",
                },
                "model": {**MODEL_NAME, "description": "the asset's anomaly model (default: anomaly)"},
            },
        },
        "AnomalyPoint": {
            "type": "object",
            "required": ["timestamp", "score", "is_anomaly", "alarm", "expected", "contribution"],
            "properties": {
                "timestamp": {"type": "string", "description": "the input time, ISO 8601 UTC"},
                "score": {**unit_or_null, "description": "null while the model warms up (see `unscored`)"},
                "is_anomaly": {"type": "boolean", "description": "score > threshold"},
                "alarm": {
                    "type": "boolean",
                    "description": "this point opens an event (or is the reading after the filled point that did)",
                },
                "unscored": {
                    "enum": ["warming_up", "after_gap", "sensor_gap"],
                    "description": "why `score` is null (absent when it is not)",
                },
                "expected": {
                    "type": "object",
                    "additionalProperties": {"type": ["number", "null"]},
                    "description": "the model's forecast per sensor",
                },
                "contribution": {
                    "type": "object",
                    "additionalProperties": unit_or_null,
                    "description": "each sensor's share of the squared residual",
                },
            },
        },
        "AnomalySegment": {
            "type": "object",
            "required": ["start", "end", "peak_score", "peak_at", "points"],
            "description": "an event: from its alarm to its last flagged point; `points` = flagged points",
            "properties": {
                "start": {"type": "string", "description": "the alarm"},
                "end": {"type": "string"},
                "peak_score": unit_or_null,
                "peak_at": {"type": "string"},
                "points": {"type": "integer", "minimum": 1},
            },
        },
        "AnomalyResponse": {
            "type": "object",
            "required": ["points", "anomalies", "threshold", "model"],
            "properties": {
                "points": {
                    "type": "array",
                    "items": _ref("AnomalyPoint"),
                    "description": "one per input timestamp, in input order",
                },
                "anomalies": {
                    "type": "array",
                    "items": _ref("AnomalySegment"),
                    "description": "events: flags within `event_gap_points` of an alarm join it",
                },
                "gaps": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["after", "before", "missing_points"],
                        "properties": {
                            "after": {"type": "string"},
                            "before": {"type": "string"},
                            "missing_points": {"type": "integer"},
                        },
                    },
                    "description": "outages longer than the fill limit: the series is scored around them",
                },
                "threshold": probability,
                "sensitivity": unit_or_null,
                "expected_false_alarms_per_1000": {
                    "type": "number",
                    "description": "normal points flagged per 1,000, by design",
                },
                "event_gap_points": {"type": "integer"},
                "sensors": {"type": "array", "items": {"type": "string"}},
                "interval_seconds": {"type": "number"},
                "history_length": {"type": "integer"},
                "filled_points": {"type": "integer", "description": "grid points filled by interpolation"},
                "model": _ref("ModelRef"),
            },
        },
        "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
        "Readiness": {
            "type": "object",
            "required": ["ready", "models"],
            "properties": {
                "ready": {"type": "boolean"},
                "models": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["ready", "available_versions", "reason"],
                        "properties": {
                            "ready": {"type": "boolean"},
                            "available_versions": {"type": "array", "items": {"type": "integer"}},
                            "reason": {"type": ["string", "null"]},
                        },
                    },
                },
                "error": _ref("Error/properties/error"),
            },
        },
        "ModelsResponse": {
            "type": "object",
            "required": ["models"],
            "properties": {
                "models": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "role", "versions"],
                        "properties": {
                            "name": {"type": "string"},
                            "role": {"enum": ["digits", "anomaly"]},
                            "error": {"type": "string"},
                            "versions": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["version", "state", "error"],
                                    "properties": {
                                        "version": {"type": "integer"},
                                        "state": {"enum": list(MODEL_STATES)},
                                        "error": {"type": ["string", "null"]},
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    }


def _digits_operation(config: GatewayConfig) -> dict[str, Any]:
    binary = {"type": "string", "format": "binary"}
    return {
        "operationId": "predictDigits",
        "summary": "Classify handwritten digits",
        "description": (
            "One or many images per request, answered in request order in one model call. Send "
            f"multipart files in field `image` (repeatable), one raw image body, or JSON instances. At "
            f"most {config.max_images} images. Photos and scans are converted MNIST-style (ink found "
            "against the paper's colour, cropped, fitted in 20x20, centred by mass in 28x28)."
        ),
        "tags": ["digits"],
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["image"],
                        "properties": {
                            "image": {"type": "array", "items": binary, "minItems": 1, "maxItems": config.max_images}
                        },
                    }
                },
                "image/png": {"schema": binary},
                "image/jpeg": {"schema": binary},
                JSON: {"schema": _ref("DigitsJsonRequest")},
            },
        },
        "responses": {
            "200": {
                "description": "One prediction per image.",
                "content": _json_content(
                    _ref("DigitsResponse"),
                    {
                        "predictions": [
                            {
                                "digit": 7,
                                "confidence": 0.998,
                                "probabilities": [0, 0, 0.001, 0, 0, 0, 0, 0.998, 0, 0.001],
                            }
                        ],
                        "model": {"name": config.mnist_model, "version": 1},
                    },
                ),
            },
            **_errors(400, 413, 415, 422, 503, 504),
        },
    }


def _anomaly_operation(config: GatewayConfig) -> dict[str, Any]:
    unit_param = {"type": "number", "minimum": 0, "maximum": 1}
    return {
        "operationId": "scoreSeries",
        "summary": "Score a sensor series for anomalies",
        "description": (
            "Timestamps (ISO 8601 or epoch seconds, any order) with one or more sensors, as JSON, a CSV "
            "body (`timestamp,<sensor>...` header) or a multipart CSV upload in field `file`. The series "
            "is put on the model's grid (duplicates averaged, short gaps interpolated; longer outages split "
            "it and are reported in `gaps`) and scored in one model call. Each input point gets a "
            "self-adapting score in [0, 1] (null while the model warms up, at the start and after a gap), "
            "`is_anomaly` = score > threshold, `alarm` where an event opens, the forecast and each sensor's "
            "share of the squared residual. `sensitivity` s (default "
            f"{DEFAULT_SENSITIVITY}) sets the threshold to "
            "1 - 10^(5s - 6): the share of normal points expected above it, from one in a million (s = 0) "
            "to one in ten (s = 1); `threshold` sets it directly. Give at most one, as a query parameter or "
            f"a JSON/form field; `model` picks the asset's model. At most {config.max_series_points} points."
        ),
        "tags": ["anomaly"],
        "parameters": [
            {
                "name": "threshold",
                "in": "query",
                "required": False,
                "schema": unit_param,
                "description": "score above which a point is anomalous",
            },
            {
                "name": "sensitivity",
                "in": "query",
                "required": False,
                "schema": unit_param,
                "description": f"0 (one normal point in a million flagged) .. {DEFAULT_SENSITIVITY} (default) .. 1 "
                "(one in ten)",
            },
            {
                "name": "model",
                "in": "query",
                "required": False,
                "schema": MODEL_NAME,
                "description": "the asset's anomaly model (default: anomaly); unknown names are 404",
            },
        ],
        "requestBody": {
            "required": True,
            "content": {
                JSON: {
                    "schema": _ref("SeriesJsonRequest"),
                    "example": {"timestamps": ["2014-04-01T00:00:00Z", "2014-04-01T00:05:00Z"], "values": [20.1, 21.3]},
                },
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "timestamp,value\n2014-04-01 00:00:00,20.1\n2014-04-01 00:05:00,21.3\n",
                },
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "threshold": unit_param,
                            "sensitivity": unit_param,
                            "model": MODEL_NAME,
                        },
                    }
                },
            },
        },
        "responses": {
            "200": {
                "description": "Scores per input point, events and outages.",
                "content": _json_content(_ref("AnomalyResponse")),
            },
            **_errors(400, 404, 413, 415, 422, 503, 504),
        },
    }


def _page(operation_id: str, summary: str) -> dict[str, Any]:
    html = {"text/html": {"schema": {"type": "string"}}}
    return {
        "get": {
            "tags": ["pages"],
            "operationId": operation_id,
            "summary": summary,
            "responses": {"200": {"description": "An HTML page (strict Content-Security-Policy).", "content": html}},
        }
    }


def openapi_document(config: GatewayConfig) -> dict[str, Any]:
    plain_get = {"tags": ["operations"]}
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Digits and sensors gateway",
            "version": "1.0.0",
            "description": (
                "HTTP/JSON front of the `mnist` digit classifier and the `anomaly` sensor model served by "
                'TensorFlow Serving. Every error is `{"error": {"code", "message"}}`.'
            ),
        },
        "tags": [
            {"name": "digits"},
            {"name": "anomaly"},
            {"name": "streams"},
            {"name": "operations"},
            {"name": "pages"},
        ],
        "paths": {
            "/v1/digits:predict": {"post": _digits_operation(config)},
            "/v1/anomaly:score": {"post": _anomaly_operation(config)},
            **stream_paths(config),
            "/v1/models": {
                "get": {
                    **plain_get,
                    "operationId": "listModels",
                    "summary": "Models and versions upstream",
                    "responses": {
                        "200": {
                            "description": "Every configured model with its versions' states.",
                            "content": _json_content(_ref("ModelsResponse")),
                        },
                        **_errors(503, 504),
                    },
                }
            },
            "/healthz": {
                "get": {
                    **plain_get,
                    "operationId": "healthz",
                    "summary": "Liveness (the gateway answers)",
                    "responses": {"200": {"description": "Alive.", "content": _json_content(_ref("Health"))}},
                }
            },
            "/readyz": {
                "get": {
                    **plain_get,
                    "operationId": "readyz",
                    "summary": "Readiness (every model AVAILABLE upstream)",
                    "responses": {
                        "200": {"description": "Ready.", "content": _json_content(_ref("Readiness"))},
                        "503": {
                            "description": "Not ready; `error.message` and `models` say why.",
                            "content": _json_content(_ref("Readiness")),
                        },
                    },
                }
            },
            "/": _page("webClient", "The web client (files under /static/)"),
            "/docs": _page("apiReference", "This reference, rendered from /openapi.json"),
            "/openapi.json": {
                "get": {
                    "tags": ["pages"],
                    "operationId": "openapiDocument",
                    "summary": "This document",
                    "responses": {
                        "200": {"description": "OpenAPI 3.1 document.", "content": _json_content({"type": "object"})}
                    },
                }
            },
            "/metrics": {
                "get": {
                    **plain_get,
                    "operationId": "metrics",
                    "summary": "Prometheus metrics (text format)",
                    "responses": {
                        "200": {
                            "description": "Prometheus exposition format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": {**_schemas(config), **stream_schemas(config)}},
    }
    for path, item in document["paths"].items():
        for method, operation in item.items():
            operation["x-codeSamples"] = code_samples(path, method)
    return document

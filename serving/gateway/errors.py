"""The one error type every gateway module raises for a request it cannot serve, and the table of its codes.

Handlers turn it into `{"error": {"code": ..., "message": ...}}` with the code's HTTP status. A code means one
status: ERROR_STATUS is the only place that pairs them (the convention: 400 a malformed request, 422 a
well-formed one whose content cannot be used, 413 over a limit, 503/504 the model server).
"""

from __future__ import annotations

ERROR_STATUS: dict[str, int] = {
    # 400: the request is malformed (wrong type, not JSON, missing part)
    "bad_request": 400,
    "conflicting_parameters": 400,
    "empty_body": 400,
    "incomplete_body": 400,
    "invalid_base64": 400,
    "invalid_encoding": 400,
    "invalid_image": 400,
    "invalid_instance": 400,
    "invalid_json": 400,
    "invalid_parameter": 400,
    "invalid_request": 400,
    "invalid_series": 400,
    "invalid_stream": 400,
    "invalid_stream_id": 400,
    "malformed_body": 400,
    "missing_file": 400,
    "no_images": 400,
    # 401, 403, 404, 405, 408, 411
    "unauthenticated": 401,
    "forbidden": 403,
    "not_found": 404,
    "unknown_model": 404,
    "unknown_stream": 404,
    "method_not_allowed": 405,
    "request_timeout": 408,
    "length_required": 411,
    # 409: the stream moved on (its end, or its model version)
    "model_version_gone": 409,
    "stream_conflict": 409,
    # 413: over a size limit
    "image_too_large": 413,
    "payload_too_large": 413,
    "request_too_many_pixels": 413,
    "series_too_large": 413,
    "series_too_long": 413,
    "too_many_images": 413,
    # 415: a format the route does not take
    "unsupported_content_encoding": 415,
    "unsupported_image_format": 415,
    "unsupported_media_type": 415,
    # 422: well-formed, but the content cannot be used
    "blank_image": 422,
    "duplicate_timestamps": 422,
    "gap_too_long": 422,
    "interval_mismatch": 422,
    "invalid_csv": 422,
    "invalid_pixels": 422,
    "invalid_timestamp": 422,
    "invalid_value": 422,
    "length_mismatch": 422,
    "missing_value": 422,
    "model_rejected_input": 422,
    "parameter_out_of_range": 422,
    "readings_too_close": 422,
    "sensor_mismatch": 422,
    "series_too_short": 422,
    # 429, 431
    "rate_limited": 429,
    "too_many_streams": 429,
    "headers_too_large": 431,
    # 5xx: the gateway or the model server failed
    "internal": 500,
    "busy": 503,
    "model_contract": 503,
    "model_not_available": 503,
    "store_unavailable": 503,
    "upstream_error": 503,
    "upstream_unavailable": 503,
    "upstream_timeout": 504,
}
# The codes Werkzeug's own HTTP errors (routing, body limits) are answered with; others as `http_<status>`.
HTTP_ERROR_CODES = (
    "bad_request",
    "not_found",
    "method_not_allowed",
    "length_required",
    "payload_too_large",
    "unsupported_media_type",
    "headers_too_large",
)
HTTP_CODE_PREFIX = "http_"


def status_of(code: str) -> int:
    """The HTTP status `code` is sent with; KeyError for a code missing from the table."""
    if code.startswith(HTTP_CODE_PREFIX):
        return int(code.removeprefix(HTTP_CODE_PREFIX))
    return ERROR_STATUS[code]


def code_for_status(status: int) -> str:
    """The code Werkzeug's HTTP error `status` is answered with: the table's generic one, or `http_<status>`."""
    return next((code for code in HTTP_ERROR_CODES if ERROR_STATUS[code] == status), f"{HTTP_CODE_PREFIX}{status}")


class ApiError(Exception):
    """A client-visible failure: a stable machine-readable code (its HTTP status from ERROR_STATUS) and a message."""

    def __init__(self, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status_of(code)
        self.code = code
        self.message = message
        self.headers = headers or {}

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}

"""The one error type every gateway module raises for a request it cannot serve.

Handlers turn it into `{"error": {"code": ..., "message": ...}}` with `status` as the HTTP status.
"""

from __future__ import annotations


class ApiError(Exception):
    """A client-visible failure: HTTP status, a stable machine-readable code and a human message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}

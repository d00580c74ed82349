"""Exceptions raised by the gateway client.

Every failure a caller may want to handle is a `GatewayError`: the gateway answered with an error status
(`status`, `code` and `message` come from its `{"error": {...}}` body), or, as `GatewayUnavailable`, it could
not be reached at all (connection refused, DNS failure, timeout).
"""

from __future__ import annotations


class GatewayError(Exception):
    """The gateway answered with an error status (4xx/5xx)."""

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if status is None else f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class GatewayUnavailable(GatewayError):
    """The gateway could not be reached: connection error or timeout, after all retries."""

    def __init__(self, message: str) -> None:
        super().__init__(None, "unavailable", message)

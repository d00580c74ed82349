"""HTTP with one reused session, retries on connection errors and 503, and JSON error mapping."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import requests

from client.errors import GatewayError, GatewayUnavailable

MAX_RETRY_AFTER_SECONDS = 10.0


class Transport:
    """Sends requests to one gateway.

    Only failures that a later attempt may fix are retried: a connection error or timeout, and 503
    (the gateway or model server is starting up or overloaded). The wait doubles from `backoff` seconds
    on each retry; a 503's Retry-After is honoured when longer (capped at 10 s).
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.session = session or requests.Session()

    def request(self, method: str, path: str, *, retry_503: bool = True, **kwargs: Any) -> requests.Response:
        """The successful (2xx) response; raises GatewayError / GatewayUnavailable otherwise."""
        url = f"{self.base_url}{path}"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.session.request(method, url, timeout=self.timeout, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if last:
                    raise GatewayUnavailable(f"{method} {url} failed: {exc}") from exc
                time.sleep(self._delay(attempt))
                continue
            if response.status_code == 503 and retry_503 and not last:
                time.sleep(self._delay(attempt, response.headers.get("Retry-After")))
                continue
            if response.status_code >= 400:
                raise error_from_response(response)
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _delay(self, attempt: int, retry_after: str | None = None) -> float:
        delay = self.backoff * 2**attempt
        if retry_after is not None:
            with contextlib.suppress(ValueError):  # an HTTP date: keep the exponential delay
                delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER_SECONDS))
        return delay

    def close(self) -> None:
        self.session.close()


def error_from_response(response: requests.Response) -> GatewayError:
    """The gateway's `{"error": {"code", "message"}}` as an exception (any other body as its text)."""
    try:
        error = response.json()["error"]
        return GatewayError(response.status_code, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:500] or response.reason or "no body"
        return GatewayError(response.status_code, f"http_{response.status_code}", text)

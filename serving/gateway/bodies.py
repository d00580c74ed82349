"""Request bodies read whole into memory, up to a per-route bound, before any route parses a byte.

Every POST body passes `read_bounded` in a `before_request` hook:
- a declared `Content-Length` over the route's limit is refused (413) without reading the body;
- a chunked body is read up to the limit plus one byte, and refused (413) when that byte arrives, never
  cut to the limit and processed;
- a body that stalls past the worker's read timeout is a 408, malformed chunked framing a 400;
- a route may also bound the number of `,` in its body: each JSON array item or CSV field after the first
  needs one, so counting them (at C speed, no allocation) bounds how many values a parser would build.
The body then replaces `wsgi.input` as an in-memory stream of known length. `InMemoryRequest` keeps
multipart files in memory too (Werkzeug spools files over 500 KB to disk; the body is already bounded).

A gevent worker reads any number of bodies at once, so each worker also has a `BodyBudget`: the bytes of
bodies it may hold together (`GATEWAY_MAX_INFLIGHT_BODY_BYTES`). A request reserves its declared length (a
chunked one: its route's limit, then keeps what arrived) before reading and frees it when answered; one that
finds no room within a few seconds gets 503 `busy` with Retry-After, so memory stays bounded under any load.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from flask import Flask, Request, g, request
from gunicorn.http.errors import NoMoreData, ParseException

from serving.gateway.errors import ApiError

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
CLOSE = {"Connection": "close"}  # the rest of a refused body is never read: the connection cannot be reused


@dataclass(frozen=True)
class BodyRule:
    """The largest body a route takes, and optionally the most `,` separators in it."""

    max_bytes: int
    max_separators: int | None = None


class BodyBudget:
    """Bytes of request bodies one worker process may hold at once (see the module docstring)."""

    def __init__(self, total: int, wait_seconds: float = 5.0) -> None:
        self.total = total
        self._free = total
        self._wait_seconds = wait_seconds
        self._room = threading.Condition()

    def reserve(self, size: int) -> None:
        with self._room:
            if not self._room.wait_for(lambda: self._free >= size, self._wait_seconds):
                raise ApiError(
                    "busy",
                    "the gateway is reading too many large bodies; retry shortly",
                    {"Retry-After": "1", **CLOSE},
                )
            self._free -= size

    def release(self, size: int) -> None:
        with self._room:
            self._free += size
            self._room.notify_all()


class InMemoryRequest(Request):
    """A Flask request whose multipart files stay in memory (see the module docstring)."""

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        return io.BytesIO()


def read_bounded(environ: dict[str, Any], rule: BodyRule) -> bytes:
    """The whole request body, or an ApiError (413, 408, 400) saying why it is refused."""
    declared = environ.get("CONTENT_LENGTH") or ""
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if not declared and not chunked:
        return b""
    if declared and int(declared) > rule.max_bytes:
        raise _too_large(rule.max_bytes)
    wanted = int(declared) if declared else rule.max_bytes + 1
    try:
        data = environ["wsgi.input"].read(wanted)
    except TimeoutError:
        raise ApiError("request_timeout", "the request body stalled; send it without pauses", CLOSE) from None
    except (ParseException, NoMoreData) as exc:
        raise ApiError("malformed_body", f"the request body is not well framed: {exc}", CLOSE) from None
    if len(data) > rule.max_bytes:
        raise _too_large(rule.max_bytes)
    if declared and len(data) < wanted:
        raise ApiError("incomplete_body", f"the body ended after {len(data)} of {wanted} bytes", CLOSE)
    if rule.max_separators is not None and data.count(b",") > rule.max_separators:
        raise ApiError(
            "series_too_large",
            f"the body holds more values than the limit allows (at most {rule.max_separators} comma-separated items)",
            CLOSE,
        )
    return data


def _too_large(limit: int) -> ApiError:
    return ApiError("payload_too_large", f"the request body is larger than the limit of {limit} bytes", CLOSE)


def install(app: Flask, default: BodyRule, per_route: Mapping[str, BodyRule], budget: BodyBudget) -> None:
    """Read every body under its route's rule and the worker's budget before the route runs."""
    app.request_class = InMemoryRequest

    @app.before_request
    def bound_body() -> None:
        if request.method not in BODY_METHODS:
            return
        rule = per_route.get(request.url_rule.rule if request.url_rule else "", default)
        environ = request.environ
        coding = environ.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if coding not in ("", "identity"):  # read as it is, a compressed body would be "not JSON" or "not an image"
            raise ApiError(
                "unsupported_content_encoding",
                f"the body is sent with Content-Encoding {coding!r}; send it uncompressed",
                {**CLOSE, "Accept-Encoding": "identity"},
            )
        declared = environ.get("CONTENT_LENGTH") or ""
        if declared and int(declared) > rule.max_bytes:
            raise _too_large(rule.max_bytes)  # before waiting for room in the budget
        reserved = int(declared) if declared else rule.max_bytes + 1
        budget.reserve(reserved)
        g.body_reserved = reserved
        data = read_bounded(environ, rule)
        budget.release(reserved - len(data))
        g.body_reserved = len(data)
        environ["wsgi.input"] = io.BytesIO(data)
        environ["CONTENT_LENGTH"] = str(len(data))
        environ.pop("HTTP_TRANSFER_ENCODING", None)

    @app.teardown_request
    def free_body(_exc: BaseException | None) -> None:
        budget.release(g.pop("body_reserved", 0))

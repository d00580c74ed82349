"""The stream routes: `PUT|GET|DELETE /v1/streams/<stream_id>` and `POST /v1/streams/<stream_id>:append`.

Streams belong to the API key that created them (with keys configured); without keys there is one owner.
"""

from __future__ import annotations

import time

from flask import Flask, Response, g, request

from serving.gateway.config import GatewayConfig
from serving.gateway.errors import ApiError
from serving.gateway.jsonio import is_json, json_response, read_json
from serving.gateway.streams.service import StreamService
from serving.gateway.timing import StageTimer

STREAM_ROUTE = "/v1/streams/<stream_id>"
APPEND_ROUTE = "/v1/streams/<stream_id>:append"


def register(app: Flask, config: GatewayConfig, streams: StreamService) -> None:
    @app.before_request
    def count_streams_for_a_scrape() -> None:
        # Each scrape counts the live streams and so also probes the store: an idle gateway whose store is
        # down shows store errors too (alert StreamStoreUnreachable).
        if request.path == "/metrics":
            streams.refresh_active()

    @app.put(STREAM_ROUTE)
    def create_stream(stream_id: str) -> Response:
        options = _json_body() if request.content_length else {}
        body = streams.create(_owner(), stream_id, options, time.monotonic() + config.deadline_seconds)
        return json_response(body, 201)

    @app.get(STREAM_ROUTE)
    def read_stream(stream_id: str) -> Response:
        return json_response(streams.read(_owner(), stream_id))

    @app.delete(STREAM_ROUTE)
    def delete_stream(stream_id: str) -> Response:
        streams.delete(_owner(), stream_id)
        return Response(status=204)

    @app.post(APPEND_ROUTE)
    def append_to_stream(stream_id: str) -> Response:
        deadline = time.monotonic() + config.deadline_seconds
        timer = StageTimer(APPEND_ROUTE)
        try:
            with timer.stage("decode"):
                payload = _json_body()
            answer = streams.append(_owner(), stream_id, payload, deadline, timer)
            return Response(answer, mimetype="application/json")
        finally:
            timer.report()


def _json_body() -> object:
    if not is_json(request):
        raise ApiError("unsupported_media_type", "send application/json")
    return read_json(request)


def _owner() -> str:
    """The API key's name (set by serving/gateway/apikeys.py), or "" when the gateway has no keys."""
    return g.get("api_key_name") or ""

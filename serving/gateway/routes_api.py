"""The prediction routes: one POST route per model type, each served by `endpoint.serve_request`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Flask, Response, request

from serving.gateway.config import GatewayConfig
from serving.gateway.endpoint import Endpoint, serve_request


def register(app: Flask, config: GatewayConfig, endpoints: Sequence[Endpoint[Any, Any]]) -> None:
    """`POST endpoint.route` for each endpoint (view names are the endpoint class names)."""
    for endpoint in endpoints:

        def view(endpoint: Endpoint[Any, Any] = endpoint) -> Response:
            return serve_request(endpoint, request, config.deadline_seconds)

        app.add_url_rule(endpoint.route, type(endpoint).__name__, view, methods=["POST"])

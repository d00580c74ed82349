"""The Flask application: error handling, request metrics, security headers and the route modules.

`create_app(config)` is called once per gunicorn worker, after the fork; nothing here opens a
connection at import or creation time (the gRPC channel is created on the first upstream call).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, g, request
from werkzeug.exceptions import HTTPException

from serving.gateway import apikeys, bodies, metrics, routes_api, routes_ops, routes_pages
from serving.gateway.anomaly import ANOMALY_ROUTE, AnomalyEndpoint
from serving.gateway.config import GatewayConfig
from serving.gateway.digits import DigitEndpoint
from serving.gateway.errors import ApiError, code_for_status
from serving.gateway.jsonio import error_response
from serving.gateway.model_registry import ModelRegistry
from serving.gateway.streams import routes as stream_routes
from serving.gateway.streams.service import StreamService
from serving.gateway.streams.store import open_store
from serving.gateway.upstream import UpstreamClient

log = logging.getLogger("serving.gateway")

UNMATCHED_ENDPOINT = "unmatched"
# Generous bytes per series point (an ISO timestamp, four sensor values, separators and indentation), and the
# most values a point brings (its timestamp and up to four sensors): together they bound a series body by its
# length and its separators before it is parsed.
SERIES_BYTES_PER_POINT = 256
SERIES_ITEMS_PER_POINT = 5
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class GatewayFlask(Flask):
    """Flask for a gateway whose views and hooks are all plain functions (tests/test_gateway_unit.py checks).

    Flask's `ensure_sync` asks `inspect.iscoroutinefunction` of every hook and view on every request (about ten
    times per request, a few microseconds each); with no `async def` among them, each one is returned as it is.
    """

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return func


def create_app(config: GatewayConfig) -> Flask:
    app = GatewayFlask("serving.gateway", static_folder="static", static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = config.max_request_bytes
    app.config["MAX_FORM_PARTS"] = config.max_images + 16
    app.json.sort_keys = False  # type: ignore[attr-defined]

    metrics.initialise(config.required_models, config.model_label_limit)
    upstream = UpstreamClient(config.upstream, retries=config.upstream_retries)
    registry = ModelRegistry(config.models_config, config.anomaly_model, config.mnist_model)
    anomaly = AnomalyEndpoint(upstream, registry, config)
    routes_api.register(app, config, [DigitEndpoint(upstream, config), anomaly])
    store = open_store(config.stream_store, timeout_seconds=config.stream_store_timeout_seconds)
    stream_routes.register(app, config, StreamService(store, anomaly, config))
    routes_ops.register(app, config, upstream, registry)
    routes_pages.register(app, config)
    _install_hooks(app)
    on_metrics_port = _metrics_port_guard(app, config)
    if config.api_keys_file:
        ring = apikeys.KeyRing.from_file(Path(config.api_keys_file), _shared_dir())
        apikeys.install(app, ring, exempt=on_metrics_port)
    bodies.install(
        app,
        bodies.BodyRule(config.max_request_bytes),
        {ANOMALY_ROUTE: _series_rule(config)},
        bodies.BodyBudget(config.max_inflight_body_bytes),
    )
    _install_error_handlers(app)
    return app


def _shared_dir() -> Path:
    """A folder all workers of this gateway share: the metrics one under gunicorn, else a fresh one."""
    shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(shared) if shared else Path(tempfile.mkdtemp(prefix="gateway-state-"))


def _metrics_port_guard(app: Flask, config: GatewayConfig) -> Callable[[], bool]:
    """With GATEWAY_METRICS_PORT, that port serves /metrics only, and the public port no /metrics.

    Returns whether the current request came in on the metrics port (reachable only inside the deployment's
    network, so it needs no key). gunicorn's SERVER_PORT is the listening socket's, not the Host header's.
    """

    def on_metrics_port() -> bool:
        return bool(config.metrics_port) and request.environ.get("SERVER_PORT") == str(config.metrics_port)

    def split_ports() -> None:
        if on_metrics_port() != (request.path == "/metrics"):
            abort(404)

    if config.metrics_port:
        app.before_request(split_ports)

    return on_metrics_port


def _series_rule(config: GatewayConfig) -> bodies.BodyRule:
    points = config.max_series_points
    return bodies.BodyRule(
        min(config.max_request_bytes, points * SERIES_BYTES_PER_POINT), max_separators=points * SERIES_ITEMS_PER_POINT
    )


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _endpoint_label() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED_ENDPOINT


def _method_label() -> str:
    """The request method, or OTHER: a client can send any token as a method, and each would be a new series."""
    return request.method if request.method in KNOWN_METHODS else "OTHER"


def _install_hooks(app: Flask) -> None:
    @app.before_request
    def start_request() -> None:
        g.started = time.perf_counter()
        metrics.INFLIGHT.inc()

    @app.after_request
    def finish_request(response: Response) -> Response:
        if response.mimetype == "text/html":
            response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        started = g.pop("started", None)
        if started is not None:
            metrics.INFLIGHT.dec()
            endpoint = _endpoint_label()
            metrics.labelled(metrics.REQUESTS, endpoint, _method_label(), str(response.status_code)).inc()
            metrics.labelled(metrics.REQUEST_DURATION, endpoint).observe(time.perf_counter() - started)
        return response

    @app.teardown_request
    def balance_inflight(_exc: BaseException | None) -> None:
        # after_request did not run (a failure while building the response): keep the gauge honest.
        if g.pop("started", None) is not None:
            metrics.INFLIGHT.dec()


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return error_response(error)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = code_for_status(status)
        message = error.description or error.name
        if status == 413:
            message = f"the request body is larger than the limit of {app.config['MAX_CONTENT_LENGTH']} bytes"
        headers = {"Allow": ", ".join(error.valid_methods)} if getattr(error, "valid_methods", None) else None
        return error_response(ApiError(code, message, headers))

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ApiError("internal", "internal error in the gateway; see its log"))

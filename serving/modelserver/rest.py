"""TF Serving's REST API on --rest_api_port, plus the Prometheus endpoint when monitoring is enabled.

GET  /v1/models/{model}[/versions/{v} | /labels/{l}]            model status
GET  /v1/models/{model}[/versions/{v} | /labels/{l}]/metadata   signatures
POST /v1/models/{model}[/versions/{v} | /labels/{l}]:predict    row or columnar predict
"""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from flask import Flask, Response, request
from google.protobuf import json_format
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from serving.contract import SERVING_SIGNATURE
from serving.modelserver import rest_json
from serving.modelserver.config import ConfigError
from serving.modelserver.errors import ServingError, invalid_argument, not_found
from serving.modelserver.inference import Inference, model_status_response, signature_def_map
from serving.modelserver.metrics import CONTENT_TYPE

MODEL_URL = re.compile(
    r"^/v1/models/(?P<model>[^/:]+)"
    r"(?:/versions/(?P<version>-?\d{1,18})|/labels/(?P<label>[^/:]+))?"
    r"(?:(?P<metadata>/metadata)|:(?P<verb>[a-z]+))?$"
)


# Request bodies above this are refused (413) before they are parsed: the largest request the gateway sends is
# a few megabytes as JSON, and parsing 64 MB of JSON took 5 s of CPU and hundreds of MB.
MAX_BODY_BYTES = 16 * 1024 * 1024


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, indent=None, allow_nan=False) + "\n", status=status, mimetype="application/json")


def _refuse_constant(name: str) -> Any:
    raise invalid_argument(f"{name} is not a JSON number; the request body must be strict JSON")


def _error(error: ServingError) -> Response:
    return _json({"error": error.message}, error.http_status)


def _proto_dict(message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def create_app(inference: Inference, metrics_path: str | None) -> Flask:
    app = Flask("serving.modelserver")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    @app.route("/v1/models/<path:rest>", methods=["GET", "POST"])
    def models(rest: str) -> Response:
        match = MODEL_URL.match(f"/v1/models/{rest}")
        try:
            if match is None:
                raise not_found(f"Malformed request: {request.method} {request.path}")
            return _dispatch(inference, match)
        except ServingError as error:
            return _error(error)

    if metrics_path:

        @app.get(metrics_path)
        def prometheus() -> Response:
            return Response(inference.metrics.render(), mimetype=CONTENT_TYPE)

    @app.errorhandler(404)
    def unknown_path(_error: Exception) -> Response:
        return _json({"error": f"Malformed request: {request.method} {request.path}"}, 404)

    @app.errorhandler(413)
    def too_large(_error: Exception) -> Response:
        return _json({"error": f"the request body is larger than the limit of {MAX_BODY_BYTES} bytes"}, 413)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        """Other HTTP-level refusals, e.g. a body that stalls past the deadline (Werkzeug: client disconnected)."""
        return _json({"error": f"{error.name}: {error.description}"}, error.code or 400)

    @app.errorhandler(405)
    def wrong_method(_error: Exception) -> Response:
        return _json({"error": f"Method not allowed: {request.method} {request.path}"}, 405)

    @app.errorhandler(Exception)
    def bug(error: Exception) -> Response:
        """A bug, not bad input: logged with its traceback, answered in TF Serving's JSON error shape."""
        app.logger.exception("unexpected error on %s %s", request.method, request.path)
        return _json({"error": f"Internal error: {type(error).__name__}"}, 500)

    return app


def _dispatch(inference: Inference, match: re.Match) -> Response:
    model, label = match["model"], match["label"] or ""
    version = int(match["version"]) if match["version"] is not None else None
    if request.method == "GET" and match["verb"] is None:
        if match["metadata"]:
            servable = inference.manager.servable(model, version, label)
            spec = {"name": servable.name, "signature_name": "", "version": str(servable.version)}
            signatures = _proto_dict(signature_def_map(servable))
            return _json({"model_spec": spec, "metadata": {"signature_def": signatures}})
        return _json(_proto_dict(model_status_response(inference.manager.status(model, version, label))))
    if request.method == "POST" and match["verb"] == "predict" and not match["metadata"]:
        with inference.recorded(model, "REST"):
            return _json(_predict(inference, model, version, label))
    raise not_found(f"Malformed request: {request.method} {request.path}")


def _predict(inference: Inference, model: str, version: int | None, label: str) -> dict[str, Any]:
    data = _body()  # TF Serving ignores Content-Type
    try:
        body = json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # not JSON, or nesting deeper than the JSON parser's stack
        body = None
    if body is None:
        raise invalid_argument("the request body is not valid JSON")
    signature_name, fmt, payload = rest_json.parse_predict_body(body)
    servable = inference.manager.servable(model, version, label)
    signature = servable.signature(signature_name or SERVING_SIGNATURE)
    inputs = rest_json.request_arrays(fmt, payload, signature.inputs)
    outputs = inference.run(servable, signature_name, inputs)
    return rest_json.response_body(fmt, outputs)


def _body() -> bytes:
    """The request body, refused (413) above MAX_BODY_BYTES: a declared length by Werkzeug before reading, a
    chunked body here as it arrives (Werkzeug would cut it at the limit and hand on the truncated JSON)."""
    if "chunked" not in request.environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return request.get_data(cache=False)
    data = request.environ["wsgi.input"].read(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    return data


class DeadlineRequestHandler(WSGIRequestHandler):
    """Every read and write of a connection has a deadline: a stalled client frees its thread after 10 s."""

    timeout = 10


class RestServer:
    """The Flask app on a threaded WSGI server, run in a background thread."""

    def __init__(self, inference: Inference, port: int, metrics_path: str | None) -> None:
        app = create_app(inference, metrics_path)
        try:
            self._server: BaseWSGIServer = make_server(
                "0.0.0.0", port, app, threaded=True, request_handler=DeadlineRequestHandler
            )
        except OSError as error:
            raise ConfigError(f"cannot listen for REST on port {port}: {error}") from error
        self._thread = threading.Thread(target=self._server.serve_forever, name="rest", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()

"""Pages: the web client at `/` (files in static/), the API reference at `/docs`, and `/openapi.json`."""

from __future__ import annotations

from pathlib import Path

import orjson
from flask import Flask, Response, send_from_directory

from serving.gateway.config import GatewayConfig
from serving.gateway.openapi import openapi_document

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
APIDOCS_DIR = HERE / "apidocs"


def register(app: Flask, config: GatewayConfig) -> None:
    document = orjson.dumps(openapi_document(config))

    @app.get("/")
    def index() -> Response:
        return send_from_directory(STATIC_DIR, "index.html")

    @app.get("/docs")
    def api_docs() -> Response:
        return send_from_directory(APIDOCS_DIR, "index.html")

    @app.get("/docs/<path:filename>")
    def api_docs_asset(filename: str) -> Response:
        return send_from_directory(APIDOCS_DIR, filename)

    @app.get("/openapi.json")
    def openapi_json() -> Response:
        return Response(document, mimetype="application/json")

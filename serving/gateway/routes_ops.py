"""Operational routes: liveness, readiness, the models upstream, and Prometheus metrics."""

from __future__ import annotations

import time
from typing import Any

import grpc
from flask import Flask, Response

from serving.gateway import metrics
from serving.gateway.config import GatewayConfig
from serving.gateway.jsonio import json_response
from serving.gateway.model_registry import ModelRegistry
from serving.gateway.upstream import RETRY_AFTER_SECONDS, ReportedVersion, UpstreamClient, UpstreamError

AVAILABLE = "AVAILABLE"
PROBE_DEADLINE_SECONDS = 2.0


def register(app: Flask, config: GatewayConfig, upstream: UpstreamClient, registry: ModelRegistry) -> None:
    probe_seconds = min(config.deadline_seconds, PROBE_DEADLINE_SECONDS)

    def readiness() -> dict[str, dict[str, Any]]:
        """Per required model: ready or not and why; also refreshes `gateway_model_ready`."""
        deadline = time.monotonic() + probe_seconds
        report = {}
        for name in config.required_models:
            try:
                states = upstream.status(name, deadline, retry=False)
                available = [s.version for s in states if s.state == AVAILABLE]
                reason = None if available else "no version is AVAILABLE yet"
            except UpstreamError as exc:
                available, reason = [], exc.message
            metrics.MODEL_READY.labels(name).set(1 if available else 0)
            report[name] = {"ready": bool(available), "available_versions": available, "reason": reason}
        return report

    @app.get("/healthz")
    def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Response:
        models = readiness()
        not_ready = [name for name, entry in models.items() if not entry["ready"]]
        if not not_ready:
            return json_response({"ready": True, "models": models})
        message = "; ".join(f"{name}: {models[name]['reason']}" for name in not_ready)
        body = {"ready": False, "models": models, "error": {"code": "not_ready", "message": message}}
        return json_response(body, 503, {"Retry-After": RETRY_AFTER_SECONDS})

    @app.get("/v1/models")
    def list_models() -> Response:
        deadline = time.monotonic() + config.deadline_seconds
        models = []
        roles = [("digits", config.mnist_model), *(("anomaly", name) for name in registry.anomaly_models())]
        for role, name in roles:
            entry: dict[str, Any] = {"name": name, "role": role}
            try:
                entry["versions"] = [_version_json(state) for state in upstream.status(name, deadline)]
            except UpstreamError as exc:
                if exc.grpc_code != grpc.StatusCode.NOT_FOUND:
                    raise
                entry["versions"], entry["error"] = [], exc.message
            models.append(entry)
        return json_response({"models": models})

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        readiness()
        body, content_type = metrics.exposition()
        return Response(body, content_type=content_type)


def _version_json(state: ReportedVersion) -> dict[str, Any]:
    return {"version": state.version, "state": state.state, "error": state.error or None}

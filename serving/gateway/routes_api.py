"""The prediction routes: `POST /v1/digits:predict` and `POST /v1/anomaly:score`."""

from __future__ import annotations

import time

from flask import Flask, Response, request

from serving.gateway.anomaly import AnomalyService
from serving.gateway.config import GatewayConfig
from serving.gateway.digits import DigitService
from serving.gateway.jsonio import json_response
from serving.gateway.timing import StageTimer

DIGITS_ROUTE = "/v1/digits:predict"
ANOMALY_ROUTE = "/v1/anomaly:score"


def register(app: Flask, config: GatewayConfig, digits: DigitService, anomaly: AnomalyService) -> None:
    @app.post(DIGITS_ROUTE)
    def predict_digits() -> Response:
        deadline = time.monotonic() + config.deadline_seconds
        timer = StageTimer(DIGITS_ROUTE)
        try:
            with digits.incoming():
                images = digits.read_images(request, timer)
            with timer.stage("upstream"):
                prediction = digits.predict(images, deadline)
            with timer.stage("postprocess"):
                return json_response(digits.response(images, prediction))
        finally:
            timer.report()

    @app.post(ANOMALY_ROUTE)
    def score_series() -> Response:
        deadline = time.monotonic() + config.deadline_seconds
        timer = StageTimer(ANOMALY_ROUTE)
        try:
            scoring = anomaly.read_request(request, timer)
            body = anomaly.score(scoring, deadline, timer)
            with timer.stage("postprocess"):
                return json_response(body)
        finally:
            timer.report()

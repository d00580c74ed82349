"""The one shape of every prediction route: read -> preprocess -> predict -> postprocess.

A model type is an `Endpoint` that writes those four steps; `serve_request` runs them for a request and owns what every
route shares: the request's deadline, the `gateway_stage_duration_seconds` timing of each step, the JSON
response, the model-version metric, the metrics each endpoint asks to be counted, and one retry when the model
version a request was prepared for vanished before the Predict (a rollout: prepare again for the new one).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
from flask import Request, Response
from prometheus_client import Counter, Histogram

from serving.gateway import metrics
from serving.gateway.jsonio import json_response
from serving.gateway.timing import StageTimer
from serving.gateway.upstream import Prediction, UpstreamError

Query = TypeVar("Query")  # what the client asked for, as read from the request
Prepared = TypeVar("Prepared")  # the model's inputs and whatever postprocess needs to map outputs back


class VersionGone(UpstreamError):
    """The pinned model version was unloaded between preprocess and predict; `serve_request` prepares once more."""


@dataclass(frozen=True)
class Count:
    """One metric update an answer asks for: a counter `inc(amount)` or, for an array, histogram observations."""

    metric: Counter | Histogram
    amount: float | np.ndarray
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answer:
    """The JSON body of a successful request, the model (metric label) and version that produced it."""

    body: dict[str, Any]
    model: str
    version: int
    counts: Sequence[Count] = ()


class Endpoint(ABC, Generic[Query, Prepared]):
    """One model type behind one route. Subclasses write the four steps; `serve_request` calls them in order."""

    route: str

    @abstractmethod
    def read(self, request: Request) -> Query:
        """Parse and validate the request (stage `decode`); raise ApiError for bad input."""

    @abstractmethod
    def preprocess(self, query: Query, deadline: float) -> Prepared:
        """Turn the query into the model's inputs (stage `preprocess`)."""

    @abstractmethod
    def predict(self, prepared: Prepared, deadline: float) -> Prediction:
        """Call the model (stage `upstream`); raise VersionGone when a pinned version has gone."""

    @abstractmethod
    def postprocess(self, query: Query, prepared: Prepared, prediction: Prediction) -> Answer:
        """Turn the model's outputs into the answer (stage `postprocess`)."""

    def reading(self) -> AbstractContextManager[object]:
        """Context around read and preprocess: lets a micro-batcher wait for requests still being read."""
        return nullcontext()


def serve_request(endpoint: Endpoint[Any, Any], request: Request, deadline_seconds: float) -> Response:
    """Run `endpoint`'s four steps for `request` within `deadline_seconds`, timed per stage."""
    deadline = time.monotonic() + deadline_seconds
    timer = StageTimer(endpoint.route)
    try:
        with endpoint.reading():
            with timer.stage("decode"):
                query = endpoint.read(request)
            with timer.stage("preprocess"):
                prepared = endpoint.preprocess(query, deadline)
        try:
            with timer.stage("upstream"):
                prediction = endpoint.predict(prepared, deadline)
        except VersionGone:  # once: a second VersionGone is answered as the upstream error it is
            with timer.stage("preprocess"):
                prepared = endpoint.preprocess(query, deadline)
            with timer.stage("upstream"):
                prediction = endpoint.predict(prepared, deadline)
        with timer.stage("postprocess"):
            answer = endpoint.postprocess(query, prepared, prediction)
            _count(answer)
            return json_response(answer.body)
    finally:
        timer.report()


def _count(answer: Answer) -> None:
    metrics.labelled(metrics.MODEL_VERSION_RESPONSES, answer.model, str(answer.version)).inc()
    for count in answer.counts:
        metric = metrics.labelled(count.metric, *count.labels) if count.labels else count.metric
        if isinstance(count.amount, np.ndarray):
            metrics.observe_many(metric, count.amount)
        else:
            metric.inc(count.amount)

"""gRPC client for TensorFlow Serving's PredictionService and ModelService, without TensorFlow.

One long-lived channel per worker process, created on first use in that process (gunicorn forks
workers; a gRPC channel must never cross a fork). Every call carries a deadline; only UNAVAILABLE is
retried, with exponential backoff, and only while the request's deadline leaves room. Failures map to
ApiError (503 with Retry-After, 504, or 422 when the model refuses the input) and are never cached:
the channel reconnects by itself (with a short reconnect backoff) when the server comes back.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from serving.gateway import metrics
from serving.gateway.errors import ApiError
from serving.protos import (
    GET_MODEL_METADATA,
    GET_MODEL_STATUS,
    PREDICT,
    tfs_lite_pb2,
    unpack_signature_def_map,
)
from serving.tensors import TensorProtoError, from_tensor_proto, to_tensor_proto

log = logging.getLogger("serving.gateway")

CHANNEL_OPTIONS = (
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    # Reconnect quickly after the model server restarts (gRPC's default backoff grows to 120 s).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.keepalive_time_ms", 30_000),
    # No bandwidth-delay probing: it sends a PING with each response read (and gets its ACK), extra syscalls and
    # wake-ups on both sides of every call that only tune flow-control windows for long, fat links.
    # 4 x 300 sequential single Predicts (bench/RESULTS.md, round 2): gateway CPU per call -6-11%.
    ("grpc.http2.bdp_probe", 0),
)
FIRST_BACKOFF_SECONDS = 0.05
RETRY_AFTER_SECONDS = "1"

_UNPROCESSABLE = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.OUT_OF_RANGE}


class UpstreamError(ApiError):
    """An ApiError caused by a failed gRPC call; `grpc_code` says which status the server returned."""

    def __init__(
        self, code: str, message: str, grpc_code: grpc.StatusCode, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(code, message, headers)
        self.grpc_code = grpc_code


@dataclass(frozen=True)
class Prediction:
    """A Predict response as arrays, with the version that produced it."""

    outputs: dict[str, np.ndarray]
    version: int


@dataclass(frozen=True)
class ReportedVersion:
    """One entry of GetModelStatus: version, state name (AVAILABLE, LOADING, ...) and error text."""

    version: int
    state: str
    error: str


def model_spec(
    name: str, *, version: int | None = None, label: str = "", signature: str = ""
) -> tfs_lite_pb2.ModelSpec:
    """A ModelSpec naming an explicit version, else a label, else the latest version."""
    spec = tfs_lite_pb2.ModelSpec(name=name, signature_name=signature)
    if version is not None:
        spec.version.value = version
    elif label:
        spec.version_label = label
    return spec


class UpstreamClient:
    """Calls to one model server; safe to share between the threads of a worker process."""

    def __init__(self, target: str, *, retries: int) -> None:
        self.target = target
        self.retries = retries
        self._lock = threading.Lock()
        self._pid = -1
        self._methods: dict[str, Callable[..., Any]] = {}

    def _method(self, path: str) -> Callable[..., Any]:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._connect()
        return self._methods[path]

    def _connect(self) -> None:
        channel = grpc.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        pairs = {
            PREDICT: (tfs_lite_pb2.PredictRequest, tfs_lite_pb2.PredictResponse),
            GET_MODEL_METADATA: (tfs_lite_pb2.GetModelMetadataRequest, tfs_lite_pb2.GetModelMetadataResponse),
            GET_MODEL_STATUS: (tfs_lite_pb2.GetModelStatusRequest, tfs_lite_pb2.GetModelStatusResponse),
        }
        self._methods = {
            path: channel.unary_unary(
                path, request_serializer=req.SerializeToString, response_deserializer=resp.FromString
            )
            for path, (req, resp) in pairs.items()
        }
        self._pid = os.getpid()

    def predict(
        self,
        spec: tfs_lite_pb2.ModelSpec,
        inputs: Mapping[str, np.ndarray],
        deadline: float,
        output_filter: Iterable[str] = (),
    ) -> Prediction:
        """Predict; `deadline` is a time.monotonic() value. Outputs are read-only arrays."""
        request = tfs_lite_pb2.PredictRequest(model_spec=spec, output_filter=list(output_filter))
        for key, array in inputs.items():
            to_tensor_proto(array, out=request.inputs[key])
        response = self._call(PREDICT, "Predict", request, spec.name, deadline)
        try:
            outputs = {key: from_tensor_proto(tensor) for key, tensor in response.outputs.items()}
        except TensorProtoError as exc:
            raise UpstreamError(
                "upstream_error", f"model {spec.name!r} sent an unreadable tensor: {exc}", grpc.StatusCode.INTERNAL
            ) from exc
        version = response.model_spec.version.value if response.model_spec.HasField("version") else 0
        return Prediction(outputs=outputs, version=version or spec.version.value)

    def metadata(self, spec: tfs_lite_pb2.ModelSpec, deadline: float) -> tuple[int, tfs_lite_pb2.SignatureDefMap]:
        """The version GetModelMetadata resolved `spec` to, and that version's signatures."""
        request = tfs_lite_pb2.GetModelMetadataRequest(model_spec=spec, metadata_field=["signature_def"])
        response = self._call(GET_MODEL_METADATA, "GetModelMetadata", request, spec.name, deadline)
        try:
            signatures = unpack_signature_def_map(response)
        except ValueError as exc:
            raise UpstreamError(
                "upstream_error", f"model {spec.name!r}: bad metadata: {exc}", grpc.StatusCode.INTERNAL
            ) from exc
        return response.model_spec.version.value, signatures

    def status(self, name: str, deadline: float, *, retry: bool = True) -> list[ReportedVersion]:
        """Every version the server knows of `name`, with its state.

        Probes pass `retry=False`: a health check must answer fast and report what it sees right now.
        """
        request = tfs_lite_pb2.GetModelStatusRequest(model_spec=model_spec(name))
        retries = self.retries if retry else 0
        response = self._call(GET_MODEL_STATUS, "GetModelStatus", request, name, deadline, retries)
        state_name = tfs_lite_pb2.ModelVersionStatus.State.Name
        return [
            ReportedVersion(version=item.version, state=state_name(item.state), error=redact(item.status.error_message))
            for item in response.model_version_status
        ]

    def _call(
        self, path: str, method: str, request: Any, model: str, deadline: float, retries: int | None = None
    ) -> Any:
        retries = self.retries if retries is None else retries
        backoff = FIRST_BACKOFF_SECONDS
        for attempt in range(retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                response = self._method(path)(request, timeout=remaining)
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
                _count(model, method, code)
                retry = (
                    code == grpc.StatusCode.UNAVAILABLE and attempt < retries and deadline - time.monotonic() > backoff
                )
                if not retry:
                    raise _api_error(model, method, code, _details(exc)) from exc
                time.sleep(backoff)
                backoff *= 2
            else:
                _count(model, method, grpc.StatusCode.OK)
                return response
        raise UpstreamError(
            "upstream_timeout",
            f"no answer from the model server for {model!r} in time",
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )


def _count(model: str, method: str, code: grpc.StatusCode) -> None:
    metrics.labelled(metrics.UPSTREAM_REQUESTS, model, method, code.name).inc()
    if code != grpc.StatusCode.OK:
        metrics.labelled(metrics.UPSTREAM_ERRORS, model, code.name).inc()


# Internal addresses and file paths in upstream messages (gRPC's "ipv4:10.0.0.7:8500", TF Serving's load errors
# naming /models/mnist/3/...) stay in the log: public answers get placeholders.
_ADDRESS = re.compile(r"\b(?:ipv4|ipv6|unix|dns):\S+|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")
_PATH = re.compile(r"(?<![\w:/])/(?:[\w.@+-]+/)*[\w.@+-]+")


def redact(text: str) -> str:
    """`text` without network addresses or absolute paths."""
    return _PATH.sub("<path>", _ADDRESS.sub("<address>", text))


def _details(exc: grpc.RpcError) -> str:
    details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)
    log.info("model server answered: %s", details)
    return redact(details)


def _api_error(model: str, method: str, code: grpc.StatusCode, details: str) -> UpstreamError:
    retry_after = {"Retry-After": RETRY_AFTER_SECONDS}
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UpstreamError(
            "upstream_timeout", f"model server did not answer {method} for {model!r} within the deadline", code
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return UpstreamError("upstream_unavailable", f"model server unreachable: {details}", code, retry_after)
    if code == grpc.StatusCode.NOT_FOUND:
        return UpstreamError("model_not_available", f"model {model!r} is not available: {details}", code, retry_after)
    if code in _UNPROCESSABLE:
        return UpstreamError("model_rejected_input", f"model {model!r} rejected the input: {details}", code)
    return UpstreamError(
        "upstream_error", f"model server failed {method} for {model!r} ({code.name}): {details}", code, retry_after
    )

"""Create, append to, read and delete streams; every append exactly once.

An append names the reading it extends (`after`: the stream's last timestamp, null for the first). The
state is read with its revision, the new points are scored without holding any lock, and the new state is
written only if the revision is unchanged (store.py). So:
- a retry of the last applied append (same `after`, same readings) gets the stored answer and changes nothing;
- an append whose `after` is not the stream's end (a lost race, an overlap, a step back) is 409 with the end;
- of two appends racing on one stream exactly one is applied; other streams never wait.
A stream is scored by the model version it was created with (docs/streams.md).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import grpc
import numpy as np
import orjson

from serving import anomaly_scoring
from serving.anomaly_scoring import ScoreParams
from serving.contract import ERROR_OUTPUT, FORECAST_OUTPUT, WINDOW_INPUT
from serving.gateway.alert_threshold import effective_threshold, read_threshold
from serving.gateway.anomaly import AnomalyEndpoint
from serving.gateway.config import GatewayConfig
from serving.gateway.errors import ApiError
from serving.gateway.segments import format_timestamp
from serving.gateway.series_input import RawSeries, parse_json_series
from serving.gateway.streams import engine, grid
from serving.gateway.streams import stream_metrics as metrics
from serving.gateway.streams.state import StreamState
from serving.gateway.streams.store import StoreUnavailable, StreamStore, TooManyStreams
from serving.gateway.timing import StageTimer
from serving.gateway.upstream import UpstreamError, model_spec

STREAM_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
ACTIVE_RECOUNT_SECONDS = 5.0


class StreamService:
    """The streams of one gateway worker, kept in a store every worker shares."""

    def __init__(self, store: StreamStore, anomaly: AnomalyEndpoint, config: GatewayConfig) -> None:
        self.store = store
        self.anomaly = anomaly
        self.config = config
        self._counted_at = 0.0
        metrics.initialise()

    # ------------------------------------------------------------ create, read, delete

    def create(self, owner: str, stream_id: str, options: Any, deadline: float) -> dict[str, Any]:
        """A new stream (or a fresh start of an existing one) pinned to the model's current version."""
        _check_id(stream_id)
        if not isinstance(options, dict):
            raise ApiError("invalid_stream", "the body must be a JSON object")
        model = options.get("model", self.config.anomaly_model)
        if not isinstance(model, str) or not model:
            raise ApiError("invalid_parameter", "model must be a non-empty string")
        info = self.anomaly.catalog(model).current(deadline)
        sensors = options.get("sensors", list(info.sensor_names))
        if not isinstance(sensors, list) or sorted(map(str, sensors)) != sorted(info.sensor_names):
            raise ApiError(
                "sensor_mismatch",
                f"model {model!r} expects sensors {list(info.sensor_names)}; the stream names {sensors!r}"[:300],
            )
        interval = options.get("interval_seconds", info.interval_seconds)
        if interval != info.interval_seconds:
            raise ApiError(
                "interval_mismatch",
                f"model {model!r} v{info.version} works at an interval of "
                f"{info.interval_seconds:g} s, not {str(interval)[:40]}",
            )
        sent = read_threshold(options.get("threshold"), options.get("sensitivity"))
        threshold, sensitivity = effective_threshold(*sent)
        state = StreamState(
            model=model,
            version=info.version,
            sensors=list(info.sensor_names),
            interval_seconds=info.interval_seconds,
            history_length=info.history_length,
            chunk_points=max(self.config.anomaly_chunk_points, info.history_length + 1),
            max_gap_steps=self.config.max_gap_steps,
            history_points=_history_points(info.score, self.config),
            score=info.score,
            seasonal_spread=info.seasonal_scale,
            threshold=threshold,
            sensitivity=sensitivity,
            created=time.time(),
        )
        with self._store("create"):
            try:
                self.store.create(
                    owner, stream_id, state.to_blob(), self.config.stream_ttl_seconds, self.config.stream_max_per_key
                )
            except TooManyStreams as exc:
                raise ApiError(
                    "too_many_streams",
                    f"{exc}; delete streams you no longer need (idle ones "
                    f"expire after {self.config.stream_ttl_seconds:g} s)",
                ) from None
        self._recount(force=True)
        return {"stream": stream_id, **state.summary()}

    def read(self, owner: str, stream_id: str) -> dict[str, Any]:
        state, _ = self._load(owner, stream_id)
        return {"stream": stream_id, **state.summary()}

    def delete(self, owner: str, stream_id: str) -> None:
        _check_id(stream_id)
        with self._store("delete"):
            deleted = self.store.delete(owner, stream_id)
        if not deleted:
            raise _unknown(stream_id)
        self._recount(force=True)

    # ------------------------------------------------------------ append

    def append(self, owner: str, stream_id: str, payload: Any, deadline: float, timer: StageTimer) -> bytes:
        """The JSON answer to one append (the stored one for a retry of the last applied append)."""
        with timer.stage("decode"):
            if not isinstance(payload, dict) or "after" not in payload:
                raise ApiError(
                    "invalid_series",
                    'an append is {"after": <the stream\'s last timestamp, null '
                    'at first>, "timestamps": [...], "values" or "series": ...}',
                )
            after = _after(payload["after"])
            raw = parse_json_series(
                {k: v for k, v in payload.items() if k != "after"}, max_points=self.config.stream_max_append_points
            )
        with timer.stage("store_read"):
            state, revision = self._load(owner, stream_id)
        matrix = _sensor_matrix(raw, state.sensors)
        digest = _digest(after, raw.timestamps, matrix)
        replay = _replay(state, after, digest)
        if replay is not None:
            metrics.APPENDS.labels("replayed").inc()
            return replay
        _check_extends(state, after, raw.timestamps)
        answer = self._advance(state, raw.timestamps, matrix, deadline, timer)
        state.last_append = {"after": after, "digest": digest, "response": answer.decode()}
        with timer.stage("store_write"), self._store("replace"):
            written = self.store.replace(owner, stream_id, revision, state.to_blob(), self.config.stream_ttl_seconds)
        if not written:  # another append (or a PUT / DELETE) got there first
            current, _ = self._load(owner, stream_id)
            replay = _replay(current, after, digest)
            if replay is not None:
                metrics.APPENDS.labels("replayed").inc()
                return replay
            _check_extends(current, after, raw.timestamps)
            raise _conflict(current, "the stream changed while this append was scored; send it again")
        metrics.APPENDS.labels("applied").inc()
        metrics.POINTS.inc(raw.timestamps.size)
        self._recount()
        return answer

    def _advance(
        self, state: StreamState, times: np.ndarray, matrix: np.ndarray, deadline: float, timer: StageTimer
    ) -> bytes:
        order = np.argsort(times, kind="stable")
        times, matrix = times[order], matrix[order]
        with timer.stage("preprocess"):
            new = grid.place(state, times, matrix)
        with timer.stage("upstream"):
            forecasts, errors = engine.forecast(state, new, self._forecaster(state, deadline))
        with timer.stage("score"):
            scores, flags = engine.score(state, new, errors)
            alarms, events = engine.group(state, new, scores, flags)
            scored = engine.Scored(forecasts, scores, flags, alarms, events)
            points = engine.points_json(state, new, times, scored)
        state.readings += int(times.size)
        state.appends += 1
        metrics.EVENTS.labels("opened").inc(int(alarms.sum()))
        metrics.EVENTS.labels("closed").inc(sum(event["status"] == "closed" for event in events))
        return orjson.dumps(
            {
                "points": points,
                "events": events,
                "end": format_timestamp(state.end),
                "appends": state.appends,
                "model": {"name": state.model, "version": state.version},
            }
        )

    def _forecaster(self, state: StreamState, deadline: float) -> engine.Forecaster:
        spec = model_spec(state.model, version=state.version)

        def predict(windows: np.ndarray) -> dict[str, np.ndarray]:
            try:
                return self.anomaly.upstream.predict(
                    spec, {WINDOW_INPUT: windows}, deadline, (FORECAST_OUTPUT, ERROR_OUTPUT)
                ).outputs
            except UpstreamError as exc:
                if exc.grpc_code == grpc.StatusCode.NOT_FOUND:
                    raise ApiError(
                        "model_version_gone",
                        f"version {state.version} of model {state.model!r}, "
                        "which this stream started with, is no longer served; PUT the stream again to "
                        "start it on the current version",
                    ) from None
                raise

        return predict

    # ------------------------------------------------------------ store access

    def _load(self, owner: str, stream_id: str) -> tuple[StreamState, int]:
        _check_id(stream_id)
        with self._store("get"):
            record = self.store.get(owner, stream_id)
        if record is None:
            raise _unknown(stream_id)
        return StreamState.from_blob(record.blob), record.revision

    @contextmanager
    def _store(self, operation: str) -> Iterator[None]:
        metrics.STORE_OPERATIONS.labels(operation).inc()
        try:
            yield
        except StoreUnavailable as exc:
            metrics.STORE_ERRORS.labels(operation).inc()
            retry = str(max(1, round(self.config.stream_store_retry_seconds)))
            raise ApiError(
                "store_unavailable",
                f"the stream store is unavailable ({exc}); retry later",
                {"Retry-After": retry},
            ) from None

    def refresh_active(self) -> None:
        """Recount the active-streams gauge now; a store that is down counts as a store error, nothing more."""
        with suppress(ApiError):
            self._recount(force=True)

    def _recount(self, force: bool = False) -> None:
        """Refresh the active-streams gauge (at most every few seconds from appends: it costs a round trip)."""
        now = time.monotonic()
        if force or now - self._counted_at > ACTIVE_RECOUNT_SECONDS:
            self._counted_at = now
            with self._store("count"):
                metrics.ACTIVE.set(self.store.count())


def _history_points(score: ScoreParams, config: GatewayConfig) -> int:
    """Errors a stream keeps: what the tails of its next point read (`anomaly_scoring.history_points`), within
    the configured cap."""
    return min(anomaly_scoring.history_points(score), config.stream_history_points)


def _check_id(stream_id: str) -> None:
    if not STREAM_ID.fullmatch(stream_id):
        raise ApiError("invalid_stream_id", "a stream id is 1 to 128 letters, digits, '.', '_' or '-'")


def _unknown(stream_id: str) -> ApiError:
    return ApiError(
        "unknown_stream", f"no stream {stream_id!r} (never created, deleted, or idle past its TTL); PUT it first"
    )


def _conflict(state: StreamState, message: str) -> ApiError:
    end = "no reading yet (send after: null)" if state.end is None else format_timestamp(state.end)
    return ApiError(
        "stream_conflict",
        f"{message}; the stream ends at {end}",
        {"X-Stream-End": "" if state.end is None else format_timestamp(state.end)},
    )


def _after(value: Any) -> float | None:
    """`after` in epoch seconds (to the millisecond: what the answer's ISO `end` keeps); None at first."""
    if value is None:
        return None
    parsed = parse_json_series({"timestamps": [value], "values": [0.0]}).timestamps[0]  # the series' own rules
    return round(float(parsed), 3)


def _check_extends(state: StreamState, after: float | None, times: np.ndarray) -> None:
    if after != (None if state.end is None else round(state.end, 3)):
        raise _conflict(state, f"this append extends {after!r}, which is not the stream's end")
    if state.end is not None and times.min() <= state.end:
        raise _conflict(state, "this append has readings at or before the stream's end")


def _replay(state: StreamState, after: float | None, digest: str) -> bytes | None:
    last = state.last_append
    if last is not None and last["after"] == after and last["digest"] == digest:
        return last["response"].encode()
    return None


def _digest(after: float | None, times: np.ndarray, matrix: np.ndarray) -> str:
    return hashlib.sha256(repr(after).encode() + times.tobytes() + matrix.tobytes()).hexdigest()


def _sensor_matrix(raw: RawSeries, sensors: list[str]) -> np.ndarray:
    """[n, F] in the stream's sensor order."""
    if raw.univariate and len(sensors) == 1:
        return next(iter(raw.values.values())).reshape(-1, 1)
    if sorted(raw.values) != sorted(sensors):
        raise ApiError("sensor_mismatch", f"the stream has sensors {sensors}; the append has {list(raw.values)}")
    return np.stack([raw.values[name] for name in sensors], axis=1)

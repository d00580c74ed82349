"""`POST /v1/anomaly:score`: a sensor series in, a score per point, the events and the gaps out.

The request names a model (one per asset; default `anomaly`). The series is put on that model's grid
(gaps split it into parts; serving/gateway/series_prepare.py), each part is cut into equal-length chunks that
overlap by `history_length` (series_chunks.py), and all chunks go to the model in ONE Predict call
([n_chunks, chunk_len, F]) with the version whose constants were used to prepare them. The model's per-step
errors become self-adapting scores, flags and events in serving/anomaly_scoring.py (docs/anomaly.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from flask import Request

from serving import anomaly_scoring
from serving import contract as c
from serving.gateway import metrics
from serving.gateway.alert_threshold import effective_threshold, read_threshold
from serving.gateway.catalog import AnomalyCatalog, AnomalyModelInfo
from serving.gateway.config import GatewayConfig
from serving.gateway.endpoint import Answer, Count, Endpoint, VersionGone
from serving.gateway.errors import ApiError
from serving.gateway.jsonio import is_json, read_json
from serving.gateway.model_registry import ModelRegistry
from serving.gateway.segments import format_timestamps
from serving.gateway.series_chunks import Chunk, chunk_windows, plan_chunks, stitch
from serving.gateway.series_input import RawSeries, parse_csv_series, parse_json_series
from serving.gateway.series_prepare import PreparedSeries, prepare_series
from serving.gateway.upstream import Prediction, UpstreamClient, UpstreamError, model_spec
from serving.series_grid import alarm_readings

ANOMALY_ROUTE = "/v1/anomaly:score"
CSV_FIELD = "file"  # the multipart field of the HTTP API
DECIMALS = 6  # for forecasts and contributions (keeps a 10,000-point answer small)


@dataclass(frozen=True)
class ScoringRequest:
    """What a client asked for: the model, the raw series and at most one of threshold / sensitivity."""

    model: str
    series: RawSeries
    threshold: float | None
    sensitivity: float | None


@dataclass(frozen=True)
class ChunkedSeries:
    """A series on one model version's grid, cut into the chunks of one Predict ([n_chunks, chunk_len, F])."""

    info: AnomalyModelInfo
    prepared: PreparedSeries
    chunks: list[Chunk]
    windows: np.ndarray


@dataclass(frozen=True)
class GridScores:
    """The scores, flags, alarms and events of every grid point, at one threshold."""

    scores: np.ndarray
    flags: np.ndarray
    alarms: np.ndarray
    events: list[anomaly_scoring.Event]


class AnomalyEndpoint(Endpoint[ScoringRequest, ChunkedSeries]):
    """A series in, scored against the current version of the model the request names (one per asset)."""

    route = ANOMALY_ROUTE

    def __init__(self, upstream: UpstreamClient, registry: ModelRegistry, config: GatewayConfig) -> None:
        self.upstream = upstream
        self.registry = registry
        self.config = config
        self._catalogs: dict[str, AnomalyCatalog] = {}

    def read(self, request: Request) -> ScoringRequest:
        """The series from JSON, a text/csv body or a multipart `file`, and the threshold options."""
        max_points = self.config.max_series_points
        options: dict[str, Any] = {}
        mimetype = request.mimetype
        if is_json(request):
            payload = read_json(request)
            series = parse_json_series(payload, max_points=max_points)
            options = payload
        elif mimetype in ("text/csv", "text/plain", "application/csv"):
            series = parse_csv_series(_text(request.get_data(cache=False), "body"), max_points=max_points)
        elif mimetype == "multipart/form-data":
            upload = request.files.get(CSV_FIELD)
            if upload is None:
                raise ApiError("missing_file", f"multipart body has no file in field {CSV_FIELD!r}")
            series = parse_csv_series(_text(upload.read(), CSV_FIELD), max_points=max_points)
            options = request.form.to_dict()
        else:
            raise ApiError(
                "unsupported_media_type",
                "send application/json, text/csv, or multipart/form-data with a CSV in field "
                f"{CSV_FIELD!r}; got {mimetype or 'no Content-Type'}",
            )
        threshold, sensitivity = read_threshold(
            *(request.args.get(name, options.get(name)) for name in ("threshold", "sensitivity"))
        )
        model = request.args.get("model", options.get("model", self.config.anomaly_model))
        if not isinstance(model, str) or not model:
            raise ApiError("invalid_parameter", "model must be a non-empty string")
        return ScoringRequest(model, series, threshold, sensitivity)

    def preprocess(self, scoring: ScoringRequest, deadline: float) -> ChunkedSeries:
        """The series on the grid of the version served now, cut into overlapping chunks."""
        info = self.catalog(scoring.model).current(deadline)
        prepared = prepare_series(
            scoring.series,
            interval_seconds=info.interval_seconds,
            sensor_names=info.sensor_names,
            history_length=info.history_length,
            max_points=self.config.max_series_points,
            max_gap_steps=self.config.max_gap_steps,
            duplicate_policy=self.config.duplicate_policy,
        )
        chunk_len = max(self.config.anomaly_chunk_points, info.history_length + 1)
        chunks, length = plan_chunks(prepared.parts, info.history_length, chunk_len)
        return ChunkedSeries(info, prepared, chunks, chunk_windows(prepared.values, chunks, length))

    def predict(self, job: ChunkedSeries, deadline: float) -> Prediction:
        """All chunks in one Predict, pinned to the version whose constants prepared them."""
        info = job.info
        metrics.labelled(metrics.BATCH_SIZE, metrics.model_label(info.name)).observe(len(job.chunks))
        spec = model_spec(info.name, version=info.version)
        try:
            prediction = self.upstream.predict(spec, {c.WINDOW_INPUT: job.windows}, deadline, c.ANOMALY_OUTPUTS)
        except UpstreamError as exc:
            if exc.grpc_code != grpc.StatusCode.NOT_FOUND:
                raise
            self.catalog(info.name).forget(info.version)
            raise VersionGone(exc.code, exc.message, exc.grpc_code, exc.headers) from exc
        _check_outputs(info, prediction.outputs, job.windows.shape)
        return prediction

    def postprocess(self, scoring: ScoringRequest, job: ChunkedSeries, prediction: Prediction) -> Answer:
        """Scores on the grid, then each input point's score, expected value and contributions, and the events."""
        info, prepared = job.info, job.prepared
        grid = {key: stitch(job.chunks, prediction.outputs[key], len(prepared.values)) for key in c.ANOMALY_OUTPUTS}
        threshold, sensitivity = effective_threshold(scoring.threshold, scoring.sensitivity)
        scored_grid = _score_grid(grid[c.ERROR_OUTPUT], prepared, info, threshold)
        at = prepared.input_to_grid
        placed = at >= 0
        pick = np.where(placed, at, 0)
        scores = np.where(placed, scored_grid.scores[pick], np.nan)
        flags = placed & scored_grid.flags[pick]
        alarms = alarm_readings(at, np.flatnonzero(scored_grid.alarms))
        contribution = _contributions(grid[c.RESIDUAL_OUTPUT][pick])
        contribution[np.isnan(scores)] = np.nan
        expected = np.round(grid[c.FORECAST_OUTPUT][pick].astype(np.float64), DECIMALS)
        expected[~placed] = np.nan
        reasons = _unscored_reasons(prepared, info.history_length, placed, pick, scores)
        names = info.sensor_names
        points = [
            {
                "timestamp": stamp,
                "score": score,
                "is_anomaly": flag,
                "alarm": alarm,
                "expected": forecast,
                "contribution": share,
                **({"unscored": reason} if reason else {}),
            }
            for stamp, score, flag, alarm, forecast, share, reason in zip(
                format_timestamps(scoring.series.timestamps),
                scores.tolist(),
                flags.tolist(),
                alarms.tolist(),
                _by_sensor(names, expected),
                _by_sensor(names, np.round(contribution, DECIMALS)),
                reasons,
                strict=True,
            )
        ]
        body = {
            "points": points,
            "anomalies": _events_json(prepared, scored_grid),
            "gaps": _gaps_json(prepared),
            "threshold": threshold,
            "sensitivity": sensitivity,
            "expected_false_alarms_per_1000": round(1000.0 * (1.0 - threshold), 6),
            "event_gap_points": info.score.event_gap_points,
            "sensors": list(names),
            "interval_seconds": info.interval_seconds,
            "history_length": info.history_length,
            "filled_points": int(prepared.filled.sum()),
            "model": {"name": info.name, "version": info.version},
        }
        label = metrics.model_label(info.name)
        scored = scores[~np.isnan(scores)]
        counts = (
            Count(metrics.ANOMALY_POINTS_SCORED, int(scored.size), (label,)),
            Count(metrics.ANOMALY_POINTS_FLAGGED, int(flags.sum()), (label,)),
            Count(metrics.ANOMALY_EVENTS, len(scored_grid.events), (label,)),
            Count(metrics.ANOMALY_SCORE, scored),
        )
        return Answer(body, label, info.version, counts)

    def catalog(self, name: str) -> AnomalyCatalog:
        """The version catalog of a known model; 404 `unknown_model` with the known names otherwise."""
        known = self.registry.anomaly_models()
        if name not in known:
            listed = ", ".join(known[:50]) + (f" and {len(known) - 50} more" if len(known) > 50 else "")
            raise ApiError("unknown_model", f"no anomaly model {name[:80]!r}; known models: {listed}")
        catalog = self._catalogs.get(name)
        if catalog is None:
            catalog = self._catalogs.setdefault(
                name,
                AnomalyCatalog(
                    self.upstream, name, label=self.config.model_label, version_ttl=self.config.version_cache_seconds
                ),
            )
        return catalog


def _score_grid(errors: np.ndarray, prepared: PreparedSeries, info: AnomalyModelInfo, threshold: float) -> GridScores:
    seasonal = None
    if info.score.seasonal:
        residuals = anomaly_scoring.seasonal_residuals(prepared.grid_timestamps, prepared.values, info.interval_seconds)
        seasonal = anomaly_scoring.seasonal_errors(residuals, info.seasonal_scale)
    scores = anomaly_scoring.adaptive_scores(errors, info.score, seasonal)
    scores = anomaly_scoring.with_range(scores, prepared.values)
    flags = np.nan_to_num(scores, nan=-1.0) > threshold
    events = anomaly_scoring.group_events(flags, scores, info.score.event_gap_points)
    alarms = np.zeros(len(scores), dtype=bool)
    alarms[[event.start for event in events]] = True
    return GridScores(scores, flags, alarms, events)


def _contributions(residuals: np.ndarray) -> np.ndarray:
    """Each sensor's share of a point's squared residual, [n, F] (equal shares where all residuals are 0)."""
    squared = np.square(residuals.astype(np.float64))
    totals = squared.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, squared / totals, 1.0 / squared.shape[1])


def _unscored_reasons(
    prepared: PreparedSeries, history_length: int, placed: np.ndarray, pick: np.ndarray, scores: np.ndarray
) -> list[str | None]:
    """Why a point has no score: left out by a sensor gap, or still warming up (at the start or after a gap)."""
    after_gap = np.zeros(len(prepared.values), dtype=bool)
    for start, stop in prepared.parts[1:]:
        after_gap[start : min(stop, start + history_length)] = True
    reasons: list[str | None] = [None] * len(scores)
    for i in np.flatnonzero(np.isnan(scores)).tolist():
        if not placed[i]:
            reasons[i] = "sensor_gap"
        else:
            reasons[i] = "after_gap" if after_gap[pick[i]] else "warming_up"
    return reasons


def _gaps_json(prepared: PreparedSeries) -> list[dict[str, Any]]:
    stamps = format_timestamps(np.array([t for gap in prepared.gaps for t in (gap.after, gap.before)]))
    return [
        {"after": stamps[2 * k], "before": stamps[2 * k + 1], "missing_points": gap.missing_steps}
        for k, gap in enumerate(prepared.gaps)
    ]


def _events_json(prepared: PreparedSeries, grid: GridScores) -> list[dict[str, Any]]:
    """Events as {start, end, peak_score, peak_at, points}: `start` is the alarm, `points` the flagged ones."""
    events, scores, flags = grid.events, grid.scores, grid.flags
    if not events:
        return []
    places = np.array([[e.start, e.end, e.peak] for e in events]).ravel()
    stamps = format_timestamps(prepared.grid_timestamps[places])
    return [
        {
            "start": stamps[3 * k],
            "end": stamps[3 * k + 1],
            "peak_score": float(scores[e.peak]),
            "peak_at": stamps[3 * k + 2],
            "points": int(flags[e.start : e.end + 1].sum()),
        }
        for k, e in enumerate(events)
    ]


def _by_sensor(names: tuple[str, ...], rows: np.ndarray) -> list[dict[str, float]]:
    """`{sensor: value}` per row of [n, F] (the one-sensor case without zip: it is the common one)."""
    if len(names) == 1:
        name = names[0]
        return [{name: value} for value in rows[:, 0].tolist()]
    return [dict(zip(names, row, strict=True)) for row in rows.tolist()]


def _check_outputs(info: AnomalyModelInfo, outputs: dict[str, np.ndarray], shape: tuple[int, ...]) -> None:
    expected = {c.FORECAST_OUTPUT: shape, c.RESIDUAL_OUTPUT: shape, c.ERROR_OUTPUT: shape[:2]}
    for key, want in expected.items():
        if key not in outputs or outputs[key].shape != want:
            got = outputs[key].shape if key in outputs else "nothing"
            raise UpstreamError(
                "model_contract",
                f"model {info.name!r} v{info.version} returned {got} for {key!r}, expected {want}",
                grpc.StatusCode.INTERNAL,
            )


def _text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError("invalid_encoding", f"{where} is not UTF-8 text") from None

"""`POST /v1/anomaly:score`: a sensor series in, a score per point and the anomalous segments out.

The series is put on the model's grid, cut into equal-length chunks that overlap by
`history_length` (serving/gateway/series.py), and all chunks go to the model in ONE Predict call
([n_chunks, chunk_len, F]) with the version whose constants were used to prepare them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from flask import Request

from serving.gateway import metrics
from serving.gateway.catalog import WINDOW_INPUT, AnomalyCatalog, AnomalyModelInfo
from serving.gateway.config import GatewayConfig
from serving.gateway.errors import ApiError
from serving.gateway.jsonio import is_json, read_json
from serving.gateway.series import (
    PreparedSeries,
    RawSeries,
    anomaly_segments,
    format_timestamps,
    make_chunks,
    parse_csv_series,
    parse_json_series,
    prepare_series,
    stitch,
)
from serving.gateway.timing import StageTimer
from serving.gateway.upstream import UpstreamClient, UpstreamError, model_spec

CSV_FIELD = "file"
OUTPUTS = ("forecast", "residual", "score")
DECIMALS = 6  # for forecasts and contributions (keeps a 10,000-point answer small)


@dataclass(frozen=True)
class ScoringRequest:
    """What a client asked for: the raw series and at most one of threshold / sensitivity."""

    series: RawSeries
    threshold: float | None
    sensitivity: float | None


def threshold_for(default: float, sensitivity: float) -> float:
    """Map sensitivity in [0, 1] onto the score threshold, piecewise linearly through the default.

    0.5 keeps the model's default threshold; 1 lowers it to 0 (every scored point is flagged);
    0 raises it to 1 (nothing is flagged). Between those the threshold moves linearly.
    """
    if sensitivity >= 0.5:
        return default * (1.0 - sensitivity) * 2.0
    return default + (1.0 - default) * (0.5 - sensitivity) * 2.0


class AnomalyService:
    """Scores series against the current version of the anomaly model."""

    def __init__(self, upstream: UpstreamClient, catalog: AnomalyCatalog, config: GatewayConfig) -> None:
        self.upstream = upstream
        self.catalog = catalog
        self.config = config

    def read_request(self, request: Request, timer: StageTimer) -> ScoringRequest:
        """The series from JSON, a text/csv body or a multipart `file`, and the threshold options."""
        max_points = self.config.max_series_points
        options: dict[str, Any] = {}
        with timer.stage("decode"):
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
                    raise ApiError(400, "missing_file", f"multipart body has no file in field {CSV_FIELD!r}")
                series = parse_csv_series(_text(upload.read(), CSV_FIELD), max_points=max_points)
                options = request.form.to_dict()
            else:
                raise ApiError(415, "unsupported_media_type",
                               "send application/json, text/csv, or multipart/form-data with a CSV in field "
                               f"{CSV_FIELD!r}; got {mimetype or 'no Content-Type'}")
        threshold, sensitivity = (_unit_interval(request.args.get(name, options.get(name)), name)
                                  for name in ("threshold", "sensitivity"))
        if threshold is not None and sensitivity is not None:
            raise ApiError(400, "conflicting_parameters", "send threshold or sensitivity, not both")
        return ScoringRequest(series, threshold, sensitivity)

    def score(self, scoring: ScoringRequest, deadline: float, timer: StageTimer) -> dict[str, Any]:
        """Prepare, predict (retrying once if the version vanished meanwhile) and build the response."""
        for attempt in range(2):
            info = self.catalog.current(deadline)
            with timer.stage("preprocess"):
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
                chunks = make_chunks(len(prepared.values), info.history_length, chunk_len)
                windows = np.stack([prepared.values[c.start:c.stop] for c in chunks])
            try:
                with timer.stage("upstream"):
                    metrics.labelled(metrics.BATCH_SIZE, info.name).observe(len(chunks))
                    spec = model_spec(info.name, version=info.version)
                    outputs = self.upstream.predict(spec, {WINDOW_INPUT: windows}, deadline, OUTPUTS).outputs
                break
            except UpstreamError as exc:
                if exc.grpc_code != grpc.StatusCode.NOT_FOUND or attempt:
                    raise
                self.catalog.forget(info.version)
        with timer.stage("postprocess"):
            _check_outputs(info, outputs, windows.shape)
            n_grid = len(prepared.values)
            grid = {key: stitch(chunks, outputs[key], n_grid) for key in OUTPUTS}
            return self._response(scoring, info, prepared, grid)

    def _response(self, scoring: ScoringRequest, info: AnomalyModelInfo, prepared: PreparedSeries,
                  grid: dict[str, np.ndarray]) -> dict[str, Any]:
        if scoring.threshold is not None:
            threshold = scoring.threshold
        elif scoring.sensitivity is not None:
            threshold = threshold_for(info.threshold, scoring.sensitivity)
        else:
            threshold = info.threshold
        grid_scores = grid["score"].astype(np.float64)
        grid_flags = np.nan_to_num(grid_scores, nan=-1.0) > threshold
        segments = anomaly_segments(prepared.grid_timestamps, grid_scores, grid_flags)

        at = prepared.input_to_grid
        scores = grid_scores[at]  # not rounded: calibrated scores crowd just below 1
        flags = grid_flags[at]
        squared = np.square(grid["residual"][at].astype(np.float64))
        totals = squared.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            contribution = np.where(totals > 0, squared / totals, 1.0 / squared.shape[1])
        contribution[np.isnan(scores)] = np.nan
        expected = np.round(grid["forecast"][at].astype(np.float64), DECIMALS)
        names = info.sensor_names
        points = [
            {"timestamp": stamp, "score": score, "is_anomaly": flag, "expected": forecast, "contribution": share}
            for stamp, score, flag, forecast, share in zip(
                format_timestamps(scoring.series.timestamps), scores.tolist(), flags.tolist(),
                _by_sensor(names, expected), _by_sensor(names, np.round(contribution, DECIMALS)), strict=True)
        ]
        scored = scores[~np.isnan(scores)]
        metrics.labelled(metrics.MODEL_VERSION_RESPONSES, info.name, str(info.version)).inc()
        metrics.ANOMALY_POINTS_SCORED.inc(int(scored.size))
        metrics.ANOMALY_POINTS_FLAGGED.inc(int(flags.sum()))
        metrics.ANOMALY_SEGMENTS.inc(len(segments))
        metrics.observe_many(metrics.ANOMALY_SCORE, scored)
        return {
            "points": points,
            "anomalies": segments,
            "threshold": threshold,
            "sensitivity": scoring.sensitivity,
            "sensors": list(names),
            "interval_seconds": info.interval_seconds,
            "history_length": info.history_length,
            "filled_points": int(prepared.filled.sum()),
            "model": {"name": info.name, "version": info.version},
        }


def _by_sensor(names: tuple[str, ...], rows: np.ndarray) -> list[dict[str, float]]:
    """`{sensor: value}` per row of [n, F] (the one-sensor case without zip: it is the common one)."""
    if len(names) == 1:
        name = names[0]
        return [{name: value} for value in rows[:, 0].tolist()]
    return [dict(zip(names, row, strict=True)) for row in rows.tolist()]


def _check_outputs(info: AnomalyModelInfo, outputs: dict[str, np.ndarray], shape: tuple[int, ...]) -> None:
    expected = {"forecast": shape, "residual": shape, "score": shape[:2]}
    for key, want in expected.items():
        if key not in outputs or outputs[key].shape != want:
            got = outputs[key].shape if key in outputs else "nothing"
            raise UpstreamError(503, "model_contract", f"model {info.name!r} v{info.version} returned "
                                f"{got} for {key!r}, expected {want}", grpc.StatusCode.INTERNAL)


def _text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_encoding", f"{where} is not UTF-8 text") from None


def _unit_interval(value: Any, name: str) -> float | None:
    """A float in [0, 1] from a query/form string or a JSON number; None when absent."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ApiError(400, "invalid_parameter", f"{name} must be a number in [0, 1]")
    try:
        number = float(value)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name}={str(value)[:40]!r} is not a number") from None
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise ApiError(422, "invalid_parameter", f"{name} must be in [0, 1], got {number}")
    return number

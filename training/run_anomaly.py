"""`python -m training anomaly`: load or generate sensor data, train and calibrate the LSTM, export a version."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from training.mnist_data import DataError
from training.reporting import card_facts, finish, report_base

QUICK_ANOMALY_EPOCHS = 12
SYNTHETIC_POINTS = 20_160  # two weeks at one-minute resolution


def load_series(args: argparse.Namespace, data: str | None, params):
    from training.anomaly_model import AnomalyParams
    from training.series_data import read_sensor_csv
    from training.synthetic import synthetic_series

    assert isinstance(params, AnomalyParams)
    if data is None:
        series = synthetic_series(SYNTHETIC_POINTS // (2 if args.quick else 1), args.seed)
    else:
        series = read_sensor_csv(Path(data), min_rows=2)
    rows = len(series.values)
    if args.train_rows is not None:
        rows = min(rows, args.train_rows)
    elif args.train_fraction is not None:
        rows = int(rows * args.train_fraction)
    needed = int((params.window_steps + 1) / (1 - params.validation_fraction)) + params.history_length + 2
    if rows < needed:
        raise DataError(
            f"{series.source}: {rows} usable points at a {series.interval_seconds:g}s interval; the anomaly model "
            f"needs at least {needed} (a training window of {params.window_steps + 1} plus held-out data)"
        )
    return series.head(rows) if rows < len(series.values) else series


def train_anomaly(args: argparse.Namespace, data: str | None, devices) -> None:
    from training import anomaly_export, anomaly_model
    from training.model_card import write_model_card

    started = time.time()
    epochs = args.epochs or (QUICK_ANOMALY_EPOCHS if args.quick else anomaly_model.AnomalyParams.epochs)
    params = anomaly_model.AnomalyParams(epochs=epochs, seed=args.seed)
    series = load_series(args, data, params)
    print(
        f"[anomaly] {len(series.values)} points x {len(series.sensor_names)} sensors {series.sensor_names} "
        f"every {series.interval_seconds:g}s from {series.source}"
    )
    for note in series.notes:
        print(f"[anomaly] {note}")
    try:
        model, scaler, calibration, metrics = anomaly_model.train(series, params, devices.strategy)
    except ValueError as exc:
        raise DataError(f"{series.source}: {exc}") from None
    metrics["wall_seconds"] = round(time.time() - started, 2)
    metrics["threshold"] = calibration.threshold
    print(
        f"[anomaly] calibrated on {calibration.validation_points} held-out points: threshold "
        f"{calibration.threshold:.7f}, highest held-out score {calibration.validation_max_score:.7f}"
    )
    report = report_base("anomaly", args, devices, params, started)
    facts = {
        "sensor_names": series.sensor_names,
        "interval_seconds": series.interval_seconds,
        "history_length": params.history_length,
        "smoothing_steps": params.smoothing_steps,
        "threshold": calibration.threshold,
        "scaler_mean": scaler.mean.tolist(),
        "scaler_std": scaler.std.tolist(),
        "residual_std": calibration.residual_std.tolist(),
        "log_error_mean": calibration.log_error_mean,
        "log_error_std": calibration.log_error_std,
    }
    report.update(
        metrics=metrics,
        calibration=facts,
        data={
            "source": series.source,
            "sha256": series.fingerprint(),
            "points": len(series.values),
            "notes": series.notes,
        },
    )
    example = series.segments(params.history_length + 2)[-1][: params.window_steps * 4]

    def card(path: Path, rep: dict) -> None:
        write_model_card(
            path,
            "anomaly: LSTM sensor anomaly detector",
            "One-step-ahead LSTM forecaster; scores are the calibrated tail probability of the smoothed squared "
            "forecast residual (see docs/contract.md). Scores at the first history_length points of a sequence "
            "are not meaningful.",
            {
                **facts,
                **card_facts(rep, epochs),
            },
            f"serving_default: window float32 [-1,-1,{len(series.sensor_names)}] -> forecast, residual "
            f"[-1,-1,{len(series.sensor_names)}], score [-1,-1]\nmodel_info: window -> history_length, "
            "interval_seconds, threshold, smoothing_steps, sensor_names",
        )

    finish("anomaly", args, report, lambda tmp: anomaly_export.save_anomaly(
            model, scaler, calibration, params, series.sensor_names, series.interval_seconds, tmp, example
        ), card)

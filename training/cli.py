"""`python -m training {mnist,anomaly,all}`: train, calibrate and export the models as TF Serving versions."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from training.export import existing_versions, publish_version, write_json
from training.mnist_data import DataError

QUICK_MNIST_EPOCHS = 6
QUICK_ANOMALY_EPOCHS = 12
SYNTHETIC_POINTS = 20_160  # two weeks at one-minute resolution


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train the MNIST digit classifier and/or the LSTM sensor anomaly detector and export them as "
        "TensorFlow Serving versions (models/<name>/<version>/). Uses every visible GPU, else the CPU.",
    )
    parser.add_argument("model", choices=["mnist", "anomaly", "all"])
    parser.add_argument(
        "--out", type=Path, default=Path("models"), help="model root folder (default: models)"
    )
    parser.add_argument(
        "--data",
        help="mnist: a Keras-format .npz or a folder with the four IDX .gz files (default: download with Keras); "
        "anomaly: a CSV 'timestamp,<sensor>...' (default: built-in synthetic multi-sensor data)",
    )
    parser.add_argument("--mnist-data", help="with 'all': the MNIST data (as --data for mnist)")
    parser.add_argument("--anomaly-data", help="with 'all': the sensor CSV (as --data for anomaly)")
    parser.add_argument("--epochs", type=int, help="training epochs (default: 12 mnist, 30 anomaly)")
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed; CPU runs are deterministic (default 0)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer epochs: a usable model in about a minute")
    rows = parser.add_mutually_exclusive_group()
    rows.add_argument("--train-rows", type=int, help="anomaly: learn from the first N rows only")
    rows.add_argument(
        "--train-fraction",
        type=float,
        help="anomaly: learn from the first fraction of rows only (NAB's probationary period: min(0.15, 750 rows))",
    )
    parser.add_argument(
        "--mixed-precision",
        choices=["auto", "on", "off"],
        default="auto",
        help="float16 mixed precision: auto = on when training on a GPU (never used on the CPU)",
    )
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing for a model that already has a version under --out (for 'docker compose up' re-runs)",
    )
    args = parser.parse_args(argv)
    if args.model == "all" and args.data:
        parser.error("with 'all', use --mnist-data and --anomaly-data instead of --data")
    if args.model != "all" and (args.mnist_data or args.anomaly_data):
        parser.error("--mnist-data/--anomaly-data go with 'all'; use --data")
    if args.epochs is not None and args.epochs < 1:
        parser.error("--epochs must be at least 1")
    if args.train_rows is not None and args.train_rows < 2:
        parser.error("--train-rows must be at least 2")
    if args.train_fraction is not None and not 0 < args.train_fraction <= 1:
        parser.error("--train-fraction must be in (0, 1]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    names = ["mnist", "anomaly"] if args.model == "all" else [args.model]
    todo = [name for name in names if not (args.if_missing and existing_versions(args.out / name))]
    for name in sorted(set(names) - set(todo)):
        print(f"[{name}] versions {existing_versions(args.out / name)} already in {args.out / name}; skipped")
    if not todo:
        return 0
    from training.devices import seed_everything, setup_devices

    seed_everything(args.seed)
    mixed = None if args.mixed_precision == "auto" else args.mixed_precision == "on"
    devices = setup_devices(mixed)
    print(f"training on {devices.describe()}", flush=True)
    try:
        for name in todo:
            data = args.data or (args.mnist_data if name == "mnist" else args.anomaly_data)
            trainer = train_mnist if name == "mnist" else train_anomaly
            trainer(args, data, devices)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def report_base(name: str, args: argparse.Namespace, devices, params: object, started: float) -> dict:
    import keras
    import tensorflow as tf

    return {
        "model": name,
        "trained_at": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "device": devices.describe(),
        "mixed_precision": devices.mixed_precision,
        "seed": args.seed,
        "quick": args.quick,
        "parameters": dataclasses.asdict(params),
        "software": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "host": platform.node(),
    }


def finish(name: str, args: argparse.Namespace, report: dict, write_model, card) -> None:
    """Export atomically, then print the report (also written as JSON next to the model)."""

    def write(tmp: Path) -> None:
        write_model(tmp)
        card(tmp / "model_card.md", report)
        write_json(tmp / "training_report.json", report)

    export_started = time.perf_counter()
    version, path = publish_version(args.out / name, write)
    report["version"] = version
    report["export_seconds"] = round(time.perf_counter() - export_started, 2)
    write_json(path / "training_report.json", report)
    print(f"[{name}] exported version {version} to {path}")
    print(json.dumps(report["metrics"], indent=2))


def train_mnist(args: argparse.Namespace, data: str | None, devices) -> None:
    from training import mnist_export, mnist_model
    from training.mnist_data import load_mnist
    from training.model_card import write_model_card

    started = time.time()
    dataset = load_mnist(data)
    print(
        f"[mnist] {len(dataset.x_train)} training and {len(dataset.x_test)} test images from {dataset.source}"
    )
    epochs = args.epochs or (QUICK_MNIST_EPOCHS if args.quick else mnist_model.MnistParams.epochs)
    params = mnist_model.MnistParams(epochs=epochs, seed=args.seed)
    model, metrics = mnist_model.train(dataset, params, devices.strategy)
    metrics["wall_seconds"] = round(time.time() - started, 2)
    print(
        f"[mnist] test accuracy {metrics['test_accuracy']:.4f} on {metrics['test_images']} images, "
        f"{metrics['wall_seconds']:.1f}s wall"
    )
    report = report_base("mnist", args, devices, params, started)
    report.update(metrics=metrics, data={"source": dataset.source, "sha256": dataset.fingerprint()})

    def card(path: Path, rep: dict) -> None:
        write_model_card(
            path,
            "mnist: handwritten digit classifier",
            "VGG-style CNN (2x[2 conv 3x3 + BN + ReLU] + max-pool, dense 128, dropout 0.4) trained with "
            "rotation/zoom/shift augmentation. Input: MNIST-style digits (white ink on black, 28x28, centred by "
            "mass); scaling to [0, 1] is inside the graph.",
            {
                "test accuracy": rep["metrics"]["test_accuracy"],
                "test images": rep["metrics"]["test_images"],
                "training images": rep["metrics"]["train_images"],
                "data": rep["data"]["source"],
                "data sha256": rep["data"]["sha256"],
                "device": rep["device"],
                "epochs": epochs,
                "seed": args.seed,
                "trained at": rep["trained_at"],
            },
            "serving_default: image uint8 [-1,28,28,1] -> probabilities float32 [-1,10], digit int64 [-1]",
        )

    finish("mnist", args, report, lambda tmp: mnist_export.save_mnist(model, tmp, dataset.x_test), card)


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
                "data": rep["data"]["source"],
                "data sha256": rep["data"]["sha256"],
                "device": rep["device"],
                "epochs": epochs,
                "seed": args.seed,
                "trained at": rep["trained_at"],
            },
            f"serving_default: window float32 [-1,-1,{len(series.sensor_names)}] -> forecast, residual "
            f"[-1,-1,{len(series.sensor_names)}], score [-1,-1]\nmodel_info: window -> history_length, "
            "interval_seconds, threshold, smoothing_steps, sensor_names",
        )

    finish("anomaly", args, report, lambda tmp: anomaly_export.save_anomaly(
            model, scaler, calibration, params, series.sensor_names, series.interval_seconds, tmp, example
        ), card)

"""`python -m bench.train`: training speed on this machine's CPU.

MNIST: time-to-accuracy of the project's CNN (training.mnist_model, same parameters as `python -m
training mnist`) on the 5k-image subset, with the 10k test set scored after every epoch; reports the
training seconds (scoring excluded) to reach 97%, 98%, 98.5% and 99% and the images per second.
Anomaly: the LSTM (training.anomaly_model) on a sensor CSV (or the built-in synthetic series), reported
as training seconds per 10,000 points seen. Writes bench-results/train.json and prints a table.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.machine import machine_facts, machine_load, save_json
from bench.training_job import time_training_job
from training.mnist_model import QUICK_EPOCHS, MnistParams
from training.run_anomaly import QUICK_ANOMALY_EPOCHS, SYNTHETIC_POINTS

ACCURACY_MARKS = (0.97, 0.98, 0.985, 0.99)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="MNIST .npz or IDX folder (default: download with Keras, as the training job)")
    parser.add_argument("--anomaly-data", help="sensor CSV (default: built-in synthetic series)")
    parser.add_argument(
        "--epochs",
        type=int,
        default=MnistParams.epochs,
        help=f"MNIST epochs (default {MnistParams.epochs}, a full training run; the learning-rate "
        f"schedule spans them all; {QUICK_EPOCHS} is --quick's count, with a narrower network)",
    )
    parser.add_argument(
        "--anomaly-epochs",
        type=int,
        default=QUICK_ANOMALY_EPOCHS // 3,
        help=f"anomaly epochs (default {QUICK_ANOMALY_EPOCHS // 3}; the rate per point is what counts)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", choices=["mnist", "anomaly"], help="leave one model out")
    parser.add_argument(
        "--job-runs",
        type=int,
        default=1,
        help="also time the MNIST training job end to end (`python -m training mnist --epochs` as above) "
        "this many times in fresh processes; 0 skips it (default 1)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/train.json"))
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.anomaly_epochs < 1:
        parser.error("--epochs and --anomaly-epochs must be at least 1")
    return args


def accuracy_callback(x_test: np.ndarray, y_test: np.ndarray, history: list[dict]):
    """A Keras callback that scores the test set after each epoch, keeping its own time out of the clock."""
    import keras

    images = x_test[..., np.newaxis].astype(np.float32)

    class TestAccuracy(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.started = time.perf_counter()
            self.scoring_seconds = 0.0

        def on_epoch_end(self, epoch, logs=None):
            scoring_started = time.perf_counter()
            predicted = np.argmax(self.model.predict(images, batch_size=1000, verbose=0), axis=-1)
            accuracy = float(np.mean(predicted == y_test))
            self.scoring_seconds += time.perf_counter() - scoring_started
            train_seconds = time.perf_counter() - self.started - self.scoring_seconds
            history.append(
                {
                    "epoch": epoch + 1,
                    "train_seconds": round(train_seconds, 2),
                    "test_accuracy": round(accuracy, 4),
                    "loss": round(float((logs or {})["loss"]), 4),
                }
            )
            print(
                f"[mnist] epoch {epoch + 1}: test accuracy {accuracy:.4f} after {train_seconds:.1f}s of training",
                flush=True,
            )

    return TestAccuracy()


def bench_mnist(args: argparse.Namespace, strategy) -> dict:
    from training import mnist_model
    from training.mnist_data import load_mnist

    data = load_mnist(args.data)
    params = mnist_model.MnistParams(epochs=args.epochs, seed=args.seed)
    history: list[dict] = []
    started = time.perf_counter()
    _, metrics = mnist_model.train(
        data, params, strategy, callbacks=[accuracy_callback(data.x_test, data.y_test, history)]
    )
    wall = time.perf_counter() - started
    train_seconds = history[-1]["train_seconds"]
    reached = {
        f"{mark:.1%}": next((row["train_seconds"] for row in history if row["test_accuracy"] >= mark), None)
        for mark in ACCURACY_MARKS
    }
    return {
        "data": data.source,
        "train_images": len(data.x_train),
        "test_images": len(data.x_test),
        "parameters": {"epochs": params.epochs, "batch_size": params.batch_size, "augment": params.augment},
        "epochs": history,
        "seconds_to_accuracy": reached,
        "final_test_accuracy": round(metrics["test_accuracy"], 4),
        "train_seconds": train_seconds,
        "wall_seconds_with_scoring": round(wall, 2),
        "images_per_second": round(len(data.x_train) * params.epochs / train_seconds, 1),
    }


def bench_anomaly(args: argparse.Namespace, strategy) -> dict:
    from training import anomaly_model
    from training.series_data import read_sensor_csv
    from training.synthetic import synthetic_series

    if args.anomaly_data:
        series = read_sensor_csv(Path(args.anomaly_data))
    else:
        series = synthetic_series(SYNTHETIC_POINTS, args.seed)
    params = anomaly_model.AnomalyParams(epochs=args.anomaly_epochs, seed=args.seed)
    started = time.perf_counter()
    _, _, _, metrics = anomaly_model.train(series, params, strategy)
    wall = time.perf_counter() - started
    points_seen = params.epochs * params.windows_per_epoch * metrics["training_window_steps"]
    return {
        "data": series.source,
        "series_points": len(series.values),
        "sensors": len(series.sensor_names),
        "parameters": {
            "epochs": params.epochs,
            "windows_per_epoch": params.windows_per_epoch,
            "window_steps": metrics["training_window_steps"],
            "units": params.units,
        },
        "points_seen": points_seen,
        "fit_seconds": metrics["fit_seconds"],
        "seconds_per_10k_points": round(metrics["fit_seconds"] / points_seen * 10_000, 3),
        "wall_seconds_with_calibration": round(wall, 2),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from training.devices import seed_everything, setup_devices

    seed_everything(args.seed)
    devices = setup_devices(False)
    results: dict = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": devices.describe(),
        **machine_facts(),
    }
    if args.skip != "mnist":
        results["mnist"] = bench_mnist(args, devices.strategy)
        if args.job_runs:
            results["mnist_job"] = time_training_job(args.data, args.seed, args.job_runs, args.epochs)
    if args.skip != "anomaly":
        results["anomaly"] = bench_anomaly(args, devices.strategy)
    results["load_average_after"] = machine_load()
    save_json(args.out, results)
    print_table(results)
    print(f"wrote {args.out}")
    return 0


def print_table(results: dict) -> None:
    print(
        f"\ndevice: {results['device']}, {results['cpus']} CPUs, load average before "
        f"{results['load_average_before']}, after {results['load_average_after']}"
    )
    mnist = results.get("mnist")
    if mnist:
        print(f"MNIST CNN, {mnist['train_images']} training images, accuracy on {mnist['test_images']} test images")
        print("  epoch  train s  test accuracy")
        for row in mnist["epochs"]:
            print(f"  {row['epoch']:>5}  {row['train_seconds']:>7.1f}  {row['test_accuracy']:.4f}")
        for mark, seconds in mnist["seconds_to_accuracy"].items():
            print(
                f"  time to {mark}: "
                + (f"{seconds:.1f} s" if seconds is not None else f"not reached in {len(mnist['epochs'])} epochs")
            )
        print(f"  {mnist['images_per_second']} training images/s")
    job = results.get("mnist_job")
    if job:
        for run in job["runs"]:
            print(
                f"  training job: {run['test_accuracy']:.4f} in {run['wall_seconds']:.1f} s wall (load "
                f"{run['load_average_before']} before), {run['after_last_epoch_seconds']:.1f} s from the last epoch "
                f"to the next line, longest silence {run['longest_silence_seconds']:.1f} s"
            )
        print(f"  training job median: {job['median_test_accuracy']:.4f} in {job['median_wall_seconds']:.1f} s wall")
    anomaly = results.get("anomaly")
    if anomaly:
        print(
            f"anomaly LSTM: {anomaly['points_seen']} points seen in {anomaly['fit_seconds']} s: "
            f"{anomaly['seconds_per_10k_points']} s per 10,000 points ({anomaly['data']})"
        )


if __name__ == "__main__":
    raise SystemExit(main())

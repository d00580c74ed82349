"""`python -m training {mnist,anomaly,all}`: train, calibrate and export the models as TF Serving versions."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from training.anomaly_model import AnomalyParams
from training.common import DataError
from training.export import existing_versions
from training.mnist_model import QUICK_EPOCHS, QUICK_FILTERS, MnistParams
from training.settings import AnomalySettings, MnistSettings, RunSettings

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train the MNIST digit classifier and/or the LSTM sensor anomaly detector and export them as "
        "TensorFlow Serving versions (models/<name>/<version>/). Uses every visible GPU, else the CPU.",
    )
    parser.add_argument("model", choices=["mnist", "anomaly", "all"])
    parser.add_argument("--out", type=Path, default=Path("models"), help="model root folder (default: models)")
    parser.add_argument(
        "--data",
        help="mnist: a Keras-format .npz or a folder with the four IDX .gz files (default: download with Keras); "
        "anomaly: a CSV 'timestamp,<sensor>...' (default: built-in synthetic multi-sensor data)",
    )
    parser.add_argument("--mnist-data", help="with 'all': the MNIST data (as --data for mnist)")
    parser.add_argument("--anomaly-data", help="with 'all': the sensor CSV (as --data for anomaly)")
    parser.add_argument(
        "--epochs",
        type=int,
        help=f"training epochs (default: {MnistParams.epochs} mnist, {AnomalyParams.epochs} anomaly; --quick: fewer)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; CPU runs are deterministic (default 0)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a usable model in about a minute: fewer epochs (mnist: {QUICK_EPOCHS}, and {QUICK_FILTERS[0]} then "
        f"{QUICK_FILTERS[1]} filters instead of {MnistParams.filters[0]} then {MnistParams.filters[1]})",
    )
    parser.add_argument(
        "--name", help="anomaly: the model's name (default 'anomaly'); a --data folder names each model after its file"
    )
    rows = parser.add_mutually_exclusive_group()
    rows.add_argument("--train-rows", type=int, help="anomaly: learn from the first N rows only")
    rows.add_argument("--train-fraction", type=float, help="anomaly: learn from the first fraction of rows only")
    parser.add_argument(
        "--max-train-rows",
        type=int,
        help="anomaly: learn from at most N rows "
        "(NAB's probationary period: --train-fraction 0.15 --max-train-rows 750)",
    )
    parser.add_argument(
        "--shard",
        default=None,
        help="anomaly with a --data folder: 'INDEX/COUNT' trains every COUNT-th file from INDEX "
        "(default: $JOB_COMPLETION_INDEX/$SHARD_COUNT when set, as in a Kubernetes Indexed Job, else 0/1)",
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
    if args.max_train_rows is not None and args.max_train_rows < 2:
        parser.error("--max-train-rows must be at least 2")
    if args.name is not None and not NAME_PATTERN.fullmatch(args.name):
        parser.error("--name must be 1-64 characters of a-z, 0-9, '_' and '-', starting with a letter or digit")
    args.shard = _shard(parser, args.shard)
    return args


def settings_for(model: str, args: argparse.Namespace) -> MnistSettings | AnomalySettings:
    """The typed settings of one training command, from the parsed flags."""
    run = RunSettings(out=args.out, seed=args.seed, quick=args.quick, epochs=args.epochs)
    if model == "mnist":
        return MnistSettings(**vars(run), data=args.data or args.mnist_data)
    data = args.data or args.anomaly_data
    return AnomalySettings(
        **vars(run),
        data=Path(data) if data else None,
        name=args.name,
        train_rows=args.train_rows,
        train_fraction=args.train_fraction,
        max_train_rows=args.max_train_rows,
        shard=args.shard,
    )


def _shard(parser: argparse.ArgumentParser, text: str | None) -> tuple[int, int]:
    """(index, count) from --shard or the Indexed Job's environment."""
    if text is None:
        index, count = os.environ.get("JOB_COMPLETION_INDEX"), os.environ.get("SHARD_COUNT")
        text = f"{index}/{count}" if index is not None and count is not None else "0/1"
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not 0 <= int(match[1]) < int(match[2]):
        parser.error(f"--shard must be INDEX/COUNT with 0 <= INDEX < COUNT, got {text!r}")
    return int(match[1]), int(match[2])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    names = ["mnist", "anomaly"] if args.model == "all" else [args.model]
    folder = {"mnist": "mnist", "anomaly": args.name or "anomaly"}
    todo = [name for name in names if not (args.if_missing and existing_versions(args.out / folder[name]))]
    for name in sorted(set(names) - set(todo)):
        path = args.out / folder[name]
        print(f"[{name}] versions {existing_versions(path)} already in {path}; skipped")
    if not todo:
        return 0
    print("loading TensorFlow ...", flush=True)  # several seconds on a busy CPU
    from training.devices import seed_everything, setup_devices

    seed_everything(args.seed)
    mixed = None if args.mixed_precision == "auto" else args.mixed_precision == "on"
    devices = setup_devices(mixed)
    print(f"training on {devices.describe()}", flush=True)
    try:
        for name in todo:
            settings = settings_for(name, args)
            if isinstance(settings, MnistSettings):
                from training.run_mnist import train_mnist

                train_mnist(settings, devices)
            else:
                from training.run_anomaly import train_anomaly

                train_anomaly(settings, devices)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from training.models_config import write_models_config

    print(f"model server config: {write_models_config(args.out)}")
    return 0

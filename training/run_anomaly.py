"""`python -m training anomaly`: one LSTM per asset, from a CSV, a folder of CSVs, or built-in synthetic data."""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path

from serving import contract as c
from training.common import DataError
from training.devices import DeviceSetup
from training.reporting import card_facts, finish, report_base
from training.settings import AnomalySettings

QUICK_ANOMALY_EPOCHS = 6
SYNTHETIC_POINTS = 20_160  # two weeks at one-minute resolution
DEFAULT_NAME = "anomaly"


def model_name_for(path: Path) -> str:
    """A TF Serving model name from a file name: `Twitter_volume_AAPL.csv` -> `twitter_volume_aapl`."""
    return re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-") or "anomaly"


def learning_rows(total: int, settings: AnomalySettings) -> int:
    """Rows to learn from: train_rows, or train_fraction of the file capped at max_train_rows, or all."""
    rows = total
    if settings.train_rows is not None:
        rows = settings.train_rows
    elif settings.train_fraction is not None:
        rows = int(total * settings.train_fraction)
    if settings.max_train_rows is not None:
        rows = min(rows, settings.max_train_rows)
    return min(rows, total)


def count_rows(path: Path) -> int:
    with path.open("rb") as handle:
        return max(sum(1 for line in handle if line.strip()) - 1, 0)


def load_series(settings: AnomalySettings, data: Path | None):
    from training.series_data import read_sensor_csv
    from training.synthetic import synthetic_series

    if data is None:
        return synthetic_series(SYNTHETIC_POINTS // (2 if settings.quick else 1), settings.seed)
    return read_sensor_csv(data, learning_rows(count_rows(data), settings))


def asset_files(data: Path, shard: tuple[int, int]) -> list[Path]:
    """The CSVs of a folder (recursively, in name order) that belong to shard (index, count)."""
    files = sorted(p for p in data.rglob("*.csv") if p.is_file())
    if not files:
        raise DataError(f"{data}: no .csv files in this folder")
    names: dict[str, Path] = {}
    for path in files:
        clash = names.setdefault(model_name_for(path), path)
        if clash != path:
            raise DataError(f"{path} and {clash} would both be model {model_name_for(path)!r}; rename one")
    index, count = shard
    return files[index::count]


def train_anomaly(settings: AnomalySettings, devices: DeviceSetup) -> None:
    """One model from a CSV (named settings.name) or synthetic data, or one model per CSV of a folder."""
    source = settings.data
    if source is None or not source.is_dir():
        train_one(settings, source, settings.name or DEFAULT_NAME, devices)
        return
    if settings.name:
        raise DataError("--name names one model; a folder trains one model per file, named after the file")
    files = asset_files(source, settings.shard)
    started = time.time()
    failed = []
    for done, path in enumerate(files):
        name = model_name_for(path)
        elapsed = time.time() - started
        eta = f", about {elapsed / done * (len(files) - done):.0f}s left" if done else ""
        print(f"[assets {done}/{len(files)}{eta}] {name} <- {path}", flush=True)
        try:
            train_one(settings, path, name, devices)
        except DataError as exc:
            failed.append(name)
            print(f"[assets] {name}: skipped: {exc}", flush=True)
    print(
        f"[assets {len(files)}/{len(files)}] done in {time.time() - started:.0f}s; "
        f"{len(files) - len(failed)} models, {len(failed)} skipped {failed if failed else ''}".rstrip()
    )


def train_one(settings: AnomalySettings, data: Path | None, name: str, devices: DeviceSetup) -> None:
    """Train one model on `data` (None: synthetic sensors) and export a version under settings.out/name/."""
    from training import anomaly_export, anomaly_model

    started = time.time()
    epochs = settings.epochs or (QUICK_ANOMALY_EPOCHS if settings.quick else anomaly_model.AnomalyParams.epochs)
    params = anomaly_model.AnomalyParams(epochs=epochs, seed=settings.seed)
    series = load_series(settings, data)
    print(
        f"[{name}] {len(series.values)} points x {len(series.sensor_names)} sensors {series.sensor_names} "
        f"every {series.interval_seconds:g}s from {series.source}"
    )
    for note in series.notes:
        print(f"[{name}] {note}")
    try:
        model, scaler, calibration, metrics = anomaly_model.train(series, params, devices.strategy)
    except ValueError as exc:
        raise DataError(f"{series.source}: {exc}") from None
    metrics["wall_seconds"] = round(time.time() - started, 2)
    print(
        f"[{name}] learnt from {calibration.learning_points} points; error prior "
        f"{calibration.score.prior_mean:.3f} +- {calibration.score.prior_std:.3f}; "
        + (
            f"seasonal prior {calibration.score.seasonal_prior_mean:.3f} +- {calibration.score.seasonal_prior_std:.3f}"
            if calibration.score.seasonal
            else "no seasonal evidence (under 100 readings with an earlier day, or more than one a minute)"
        )
    )
    report = report_base(name, settings, devices, params, started)
    facts = {
        "sensor_names": series.sensor_names,
        "interval_seconds": series.interval_seconds,
        "history_length": params.history_length,
        "learning_points": calibration.learning_points,
        "scaler_mean": scaler.mean.tolist(),
        "scaler_std": scaler.std.tolist(),
        "residual_std": calibration.residual_std.tolist(),
        "seasonal_spread": calibration.seasonal_scale.tolist(),
        "score": vars(calibration.score),
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
    example = max(series.segments(params.min_points), key=len)[: params.window_steps * 4]

    card = functools.partial(write_card, name=name, epochs=epochs)
    finish(
        name,
        settings.out,
        report,
        lambda tmp: anomaly_export.save_anomaly(
            model, scaler, calibration, params, name, series.sensor_names, series.interval_seconds, tmp, example
        ),
        card,
    )


def write_card(path: Path, rep: dict, name: str, epochs: int) -> None:
    """The version's model_card.md from its training report."""
    from training.model_card import write_model_card

    facts = rep["calibration"]
    learning_points = facts["learning_points"]
    features = len(facts["sensor_names"])
    confidence = (
        "short history: scores lean on the learnt prior until the series' own history takes over"
        if learning_points < 1000
        else "learnt from a long history"
    )
    write_model_card(
        path,
        f"{name}: LSTM sensor anomaly detector",
        "LSTM forecaster of each sensor's next change; its per-step error is turned into a self-adapting "
        f"score by the gateway (docs/anomaly.md). Learnt from {learning_points} grid points "
        f"({confidence}). Points in the first history_length steps of a sequence get no score.",
        {**facts, **card_facts(rep, epochs)},
        f"{c.SERVING_SIGNATURE}: {c.WINDOW_INPUT} float32 [-1,-1,{features}] -> "
        f"{c.FORECAST_OUTPUT}, {c.RESIDUAL_OUTPUT} [-1,-1,{features}], {c.ERROR_OUTPUT} [-1,-1]\n"
        f"{c.INFO_SIGNATURE}: {c.WINDOW_INPUT} -> " + ", ".join(c.INFO_OUTPUTS),
    )

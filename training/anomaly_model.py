"""The anomaly detector: an LSTM one-step-ahead forecaster over sensor sequences, plus its calibration.

The network reads a standardised sequence [batch, T, F] and, at every step t, predicts step t+1. Trained on
random windows of normal data, it learns the usual shape of the series (daily/weekly cycles, how sensors move
together). At serving time the whole sequence goes through in one call; the residual between each point and
its forecast, in units of the residual spread seen on held-out normal data, measures surprise.

Calibration turns residuals into a score in [0, 1]: the mean squared standardised residual over the sensors is
smoothed by a causal moving average (one odd point is noise; several in a row are an event), and the log of that
is compared with its distribution on held-out normal data (a normal fit): score = Phi((log e - mu) / sigma).
The default threshold sits above every held-out normal point, so the model's own validation data is not flagged.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from training.mnist_model import EpochLog
from training.series_data import SensorSeries, training_windows

EPSILON = 1e-6


@dataclass(frozen=True)
class AnomalyParams:
    epochs: int = 30
    warmup_steps: int = 32  # steps of history before a forecast counts (loss and scores)
    smoothing_steps: int = 6
    window_steps: int = 128  # training sequence length
    windows_per_epoch: int = 512
    batch_size: int = 64
    units: int = 64
    learning_rate: float = 3e-3
    validation_fraction: float = 0.2
    seed: int = 0

    @property
    def history_length(self) -> int:
        return self.warmup_steps + self.smoothing_steps - 1


@dataclass(frozen=True)
class Scaler:
    mean: np.ndarray  # [F]
    std: np.ndarray  # [F]


@dataclass(frozen=True)
class Calibration:
    residual_std: np.ndarray  # [F], raw units
    log_error_mean: float
    log_error_std: float
    threshold: float
    validation_max_score: float
    validation_points: int


def build_forecaster(features: int, units: int):  # -> keras.Model
    import keras
    from keras import layers

    inputs = keras.Input((None, features), dtype="float32", name="scaled_window")
    x = layers.LSTM(units, return_sequences=True)(inputs)
    outputs = layers.Dense(features, dtype="float32", name="next_step")(x)
    return keras.Model(inputs, outputs, name="lstm_forecaster")


def split_train_validation(
    series: SensorSeries, params: AnomalyParams
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Time-ordered split: the last `validation_fraction` of the grid is held out for calibration."""
    cut = int(len(series.values) * (1 - params.validation_fraction))
    head = SensorSeries(
        series.timestamps[:cut],
        series.values[:cut],
        series.sensor_names,
        series.interval_seconds,
        series.source,
    )
    tail = SensorSeries(
        series.timestamps[cut:],
        series.values[cut:],
        series.sensor_names,
        series.interval_seconds,
        series.source,
    )
    min_length = params.window_steps + 1
    return head.segments(min_length), tail.segments(params.history_length + 2)


def fit_scaler(segments: list[np.ndarray]) -> Scaler:
    stacked = np.concatenate(segments)
    return Scaler(stacked.mean(axis=0), np.maximum(stacked.std(axis=0), EPSILON))


def train(series: SensorSeries, params: AnomalyParams, strategy) -> tuple[object, Scaler, Calibration, dict]:
    import keras

    train_segments, validation_segments = split_train_validation(series, params)
    if not train_segments or not validation_segments:
        raise ValueError(
            f"not enough gap-free data: need a training run of {params.window_steps + 1} points and a held-out run "
            f"of {params.history_length + 2} points"
        )
    scaler = fit_scaler(train_segments)
    scaled = [(seg - scaler.mean) / scaler.std for seg in train_segments]
    rng = np.random.default_rng(params.seed)
    windows = training_windows(scaled, params.window_steps + 1, params.windows_per_epoch * params.epochs, rng)
    inputs, targets = windows[:, :-1], windows[:, 1:]
    weights = np.zeros(inputs.shape[:2], dtype=np.float32)
    weights[:, params.warmup_steps :] = 1.0
    with strategy.scope():
        model = build_forecaster(len(series.sensor_names), params.units)
        model.compile(optimizer=keras.optimizers.Adam(params.learning_rate, clipnorm=1.0), loss="mse")
    start = time.perf_counter()
    model.fit(
        inputs,
        targets,
        sample_weight=weights,
        batch_size=params.batch_size,
        epochs=params.epochs,
        steps_per_epoch=params.windows_per_epoch // params.batch_size,
        shuffle=False,
        verbose=0,
        callbacks=[EpochLog(params.epochs, "anomaly")],
    )
    fit_seconds = time.perf_counter() - start
    calibration = calibrate(model, scaler, validation_segments, params)
    train_points = sum(len(seg) for seg in train_segments)
    metrics = {
        "fit_seconds": round(fit_seconds, 2),
        "train_points": train_points,
        "validation_points": calibration.validation_points,
        "validation_max_score": calibration.validation_max_score,
        "residual_std": calibration.residual_std.round(6).tolist(),
        "seconds_per_10k_points_seen": round(
            fit_seconds / (params.epochs * params.windows_per_epoch * params.window_steps) * 10_000, 3
        ),
    }
    return model, scaler, calibration, metrics


def forecast_raw(model, scaler: Scaler, sequence: np.ndarray) -> np.ndarray:
    """Forecast of each point from the points before it (raw units); position 0 is the point itself."""
    scaled = ((sequence - scaler.mean) / scaler.std)[np.newaxis].astype(np.float32)
    predicted = np.asarray(model(scaled, training=False))[0] * scaler.std + scaler.mean
    return np.concatenate([sequence[:1], predicted[:-1]])


def smoothed_error(residual: np.ndarray, smoothing: int) -> np.ndarray:
    """Causal moving average (over `smoothing` steps) of the mean squared residual; same formula as the graph."""
    error = np.mean(residual**2, axis=-1)
    total = np.cumsum(error)
    shifted = (
        np.concatenate([np.zeros(smoothing), total[:-smoothing]])
        if len(total) > smoothing
        else np.zeros_like(total)
    )
    counts = np.minimum(np.arange(1, len(error) + 1), smoothing)
    return (total - shifted[: len(total)]) / counts


def calibrate(model, scaler: Scaler, segments: list[np.ndarray], params: AnomalyParams) -> Calibration:
    raw_residuals = []
    for seg in segments:
        raw_residuals.append((seg - forecast_raw(model, scaler, seg))[params.warmup_steps :])
    residual_std = np.maximum(np.concatenate(raw_residuals).std(axis=0), EPSILON)
    log_errors = []
    for seg in segments:
        residual = (seg - forecast_raw(model, scaler, seg)) / residual_std
        log_errors.append(
            np.log(smoothed_error(residual, params.smoothing_steps) + EPSILON)[params.history_length :]
        )
    logs = np.concatenate(log_errors)
    mean, std = float(logs.mean()), float(max(logs.std(), EPSILON))
    z_max = (logs.max() - mean) / std
    threshold = normal_cdf(max(3.5, z_max + 0.5))
    return Calibration(
        residual_std=residual_std.astype(np.float32),
        log_error_mean=mean,
        log_error_std=std,
        threshold=float(min(threshold, 0.9999999)),
        validation_max_score=float(normal_cdf(z_max)),
        validation_points=len(logs),
    )


def normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))

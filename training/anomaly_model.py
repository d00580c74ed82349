"""The anomaly detector: an LSTM that forecasts each sensor's next step as a correction to "no change".

The network reads a sequence [batch, T, F] scaled by the learning period's mean and spread (clipped, so one
absurd reading cannot saturate its state) and, at every step t, predicts the change from t to t+1. Forecasting
the change rather than the level means the forecast follows a series whose level drifts after training, and a
network that has learnt nothing still forecasts "no change", which is a sound default for a new asset with a
short history. The residual between each point and its forecast, in units of the residual spread seen while
learning, is the model's per-step error; serving/anomaly_scoring.py turns errors into self-adapting scores.

Learning data is short (NAB gives a detector as few as ~150 rows), so training windows adapt to the data: as
long as the longest gap-free part allows, up to `window_steps`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from serving.anomaly_scoring import (
    MIN_SEASON_INTERVAL_SECONDS,
    MIN_SEASONAL_POINTS,
    ScoreParams,
    seasonal_errors,
    seasonal_residuals,
)
from training.common import EpochLog
from training.series_data import SensorSeries, training_windows

EPSILON = 1e-6
INPUT_CLIP = 50.0  # scaled units: far beyond anything seen while learning, finite for any float32 input


@dataclass(frozen=True)
class AnomalyParams:
    epochs: int = 10
    warmup_steps: int = 16  # steps of history before a forecast counts (loss and scores)
    window_steps: int = 64  # longest training sequence
    windows_per_epoch: int = 1024
    batch_size: int = 32
    units: int = 32
    learning_rate: float = 3e-3
    # the exported weights are the moving average of about the last epoch of steps (Polyak averaging): with a
    # few hundred learning rows, where the last step happens to stop is noise that the scores would inherit
    weight_average_momentum: float = 0.97
    seed: int = 0

    def __post_init__(self) -> None:
        # An epoch is windows_per_epoch // batch_size steps: none would make an empty fit (and no average).
        if self.epochs < 1 or self.batch_size < 1 or self.windows_per_epoch < self.batch_size:
            raise ValueError(
                f"anomaly training needs epochs >= 1 and windows_per_epoch >= batch_size >= 1; got epochs="
                f"{self.epochs}, windows_per_epoch={self.windows_per_epoch}, batch_size={self.batch_size}"
            )

    @property
    def history_length(self) -> int:
        return self.warmup_steps

    @property
    def min_points(self) -> int:
        """The shortest gap-free learning part: a warm-up plus as many steps again to learn from."""
        return 2 * self.warmup_steps + 1


@dataclass(frozen=True)
class Scaler:
    mean: np.ndarray  # [F]
    std: np.ndarray  # [F]


@dataclass(frozen=True)
class Calibration:
    residual_std: np.ndarray  # [F], raw units
    score: ScoreParams
    learning_points: int
    seasonal_scale: np.ndarray  # [F], raw units: the spread of each sensor's seasonal residual (1 when none)


def build_forecaster(features: int, units: int):  # -> keras.Model
    import keras
    from keras import layers

    inputs = keras.Input((None, features), dtype="float32", name="scaled_window")
    x = layers.LSTM(units, return_sequences=True)(inputs)
    outputs = layers.Dense(features, dtype="float32", name="next_change")(x)
    return keras.Model(inputs, outputs, name="lstm_change_forecaster")


def average_momentum(params: AnomalyParams) -> float:
    """The weights' moving-average momentum: about the last epoch, or the last quarter of a shorter run.

    The average starts from the first step's weights and keeps momentum ** steps of them: below 2% here, so a
    one-epoch run is not half its random start. A run of 4 steps or fewer exports its last step (momentum 0).
    """
    steps = params.epochs * (params.windows_per_epoch // params.batch_size)
    return max(0.0, min(params.weight_average_momentum, 1.0 - 4.0 / steps))


def fit_scaler(segments: list[np.ndarray]) -> Scaler:
    stacked = np.concatenate(segments)
    spread = stacked.std(axis=0)
    floor = EPSILON * np.maximum(np.abs(stacked).mean(axis=0), 1.0)
    return Scaler(stacked.mean(axis=0), np.maximum(spread, floor))


def scale(values: np.ndarray, scaler: Scaler) -> np.ndarray:
    return np.clip((values - scaler.mean) / scaler.std, -INPUT_CLIP, INPUT_CLIP).astype(np.float32)


def train(series: SensorSeries, params: AnomalyParams, strategy) -> tuple[object, Scaler, Calibration, dict]:
    import keras

    segments = series.segments(params.min_points)
    if not segments:
        longest = max((b - a for a, b in series.parts), default=0)
        raise ValueError(
            f"the longest gap-free run has {longest} grid points; the anomaly model needs at least "
            f"{params.min_points} (a warm-up of {params.warmup_steps} and as many points to learn from)"
        )
    scaler = fit_scaler(segments)
    scaled = [scale(seg, scaler) for seg in segments]
    length = min(params.window_steps, max(len(seg) for seg in scaled) - 1)
    usable = [seg for seg in scaled if len(seg) >= length + 1]
    rng = np.random.default_rng(params.seed)
    windows = training_windows(usable, length + 1, params.windows_per_epoch * params.epochs, rng)
    inputs, targets = windows[:, :-1], windows[:, 1:] - windows[:, :-1]
    weights = np.zeros(inputs.shape[:2], dtype=np.float32)
    weights[:, params.warmup_steps :] = 1.0
    keras.utils.set_random_seed(params.seed)  # each asset's model is its own draw, whatever was trained before it
    with strategy.scope():
        model = build_forecaster(len(series.sensor_names), params.units)
        optimizer = keras.optimizers.Adam(
            params.learning_rate, clipnorm=1.0, use_ema=True, ema_momentum=average_momentum(params)
        )
        model.compile(optimizer=optimizer, loss="mse")
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
    calibration = calibrate(model, scaler, series, segments, params)
    metrics = {
        "fit_seconds": round(fit_seconds, 2),
        "learning_points": calibration.learning_points,
        "training_window_steps": length,
        "residual_std": calibration.residual_std.round(6).tolist(),
        "prior_error_mean": round(calibration.score.prior_mean, 6),
        "prior_error_std": round(calibration.score.prior_std, 6),
        "seasonal_spread": calibration.seasonal_scale.round(6).tolist(),
        "seasonal_error_prior": [
            round(calibration.score.seasonal_prior_mean, 6),
            round(calibration.score.seasonal_prior_std, 6),
        ],
    }
    return model, scaler, calibration, metrics


def forecast_raw(model, scaler: Scaler, sequence: np.ndarray) -> np.ndarray:
    """Forecast of each point from the points before it (raw units); position 0 is the point itself."""
    change = np.asarray(model(scale(sequence, scaler)[np.newaxis], training=False))[0] * scaler.std
    return np.concatenate([sequence[:1], sequence[:-1] + change[:-1]])


def step_errors(residual: np.ndarray) -> np.ndarray:
    """The per-step error: mean absolute standardised residual over the sensors (same formula as the graph)."""
    return np.mean(np.abs(residual), axis=-1)


def calibrate(
    model, scaler: Scaler, series: SensorSeries, segments: list[np.ndarray], params: AnomalyParams
) -> Calibration:
    """Residual spreads per sensor, and the priors of the adaptive score, from the learning period itself.

    The priors only seed the score's baselines (as `prior_points` pseudo-points); the series' own recent
    history replaces them within a few hundred points. These are in-sample statistics, so they understate later
    errors: the score widens the priors' spread (`PRIOR_SPREAD` in serving/anomaly_scoring.py). The seasonal
    prior needs `MIN_SEASONAL_POINTS` readings with an earlier day to compare with, at most one a minute;
    without them the model has no seasonal evidence (`seasonal_prior_std` 0).
    """
    residuals = [(seg - forecast_raw(model, scaler, seg))[params.warmup_steps :] for seg in segments]
    residual_std = np.maximum(np.concatenate(residuals).std(axis=0), scaler.std * EPSILON)
    prior_mean, prior_std = _prior([step_errors(residual / residual_std) for residual in residuals])
    seasonal = seasonal_residuals(series.timestamps, series.values, series.interval_seconds)
    compared = seasonal[~np.isnan(seasonal).any(axis=1)]
    seasonal_scale, seasonal_mean, seasonal_std = np.ones(len(series.sensor_names)), 1.0, 0.0
    if len(compared) >= MIN_SEASONAL_POINTS and series.interval_seconds >= MIN_SEASON_INTERVAL_SECONDS:
        seasonal_scale = np.maximum(compared.std(axis=0), scaler.std * EPSILON)
        seasonal_mean, seasonal_std = _prior([seasonal_errors(compared, seasonal_scale)])
    score = ScoreParams(
        prior_mean=prior_mean,
        prior_std=prior_std,
        seasonal_prior_mean=seasonal_mean,
        seasonal_prior_std=seasonal_std,
    )
    learning_points = sum(len(seg) for seg in segments)
    return Calibration(residual_std.astype(np.float32), score, learning_points, seasonal_scale.astype(np.float32))


def _prior(errors: list[np.ndarray]) -> tuple[float, float]:
    """Mean and spread of the `average_points` trailing means of each run of errors (a shorter run as it is)."""
    width = ScoreParams().average_points
    kernel = np.ones(width) / width
    stacked = np.concatenate([np.convolve(e, kernel, mode="valid") if len(e) >= width else e for e in errors])
    return float(stacked.mean()), float(max(stacked.std(), EPSILON))

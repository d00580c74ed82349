"""The `anomaly` SavedModel (see docs/contract.md): `serving_default` scores a whole sequence in one call and
`model_info` returns the version's constants (history length, interval, threshold, smoothing, sensor names)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from training.anomaly_model import EPSILON, AnomalyParams, Calibration, Scaler
from training.warmup import write_warmup_requests

SIGNATURE = "serving_default"
INFO_SIGNATURE = "model_info"


def make_serving_module(
    model,
    scaler: Scaler,
    calibration: Calibration,
    params: AnomalyParams,
    sensor_names: list[str],
    interval_seconds: float,
):  # -> tf.Module
    import tensorflow as tf

    features = len(sensor_names)
    window_spec = tf.TensorSpec([None, None, features], tf.float32, name="window")

    class AnomalyServing(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="anomaly_serving")
            self.model = model
            self.mean = tf.constant(scaler.mean, tf.float32)
            self.std = tf.constant(scaler.std, tf.float32)
            self.residual_std = tf.constant(calibration.residual_std, tf.float32)
            self.sensor_names = tf.constant(sensor_names, tf.string)

        @tf.function(input_signature=[window_spec])
        def serve(self, window):
            predicted = self.model((window - self.mean) / self.std, training=False) * self.std + self.mean
            forecast = tf.concat([window[:, :1], predicted[:, :-1]], axis=1)
            residual = (window - forecast) / self.residual_std
            error = tf.reduce_mean(tf.square(residual), axis=-1)
            smoothing = params.smoothing_steps
            total = tf.cumsum(error, axis=1)
            lagged = tf.pad(total, [[0, 0], [smoothing, 0]])[:, : tf.shape(total)[1]]
            counts = tf.minimum(tf.cast(tf.range(1, tf.shape(total)[1] + 1), tf.float32), float(smoothing))
            smoothed = (total - lagged) / counts
            z = (tf.math.log(smoothed + EPSILON) - calibration.log_error_mean) / calibration.log_error_std
            score = 0.5 * (1.0 + tf.math.erf(z / math.sqrt(2.0)))
            return {
                "forecast": tf.identity(forecast, name="forecast"),
                "residual": tf.identity(residual, name="residual"),
                "score": tf.identity(score, name="score"),
            }

        @tf.function(input_signature=[window_spec])
        def info(self, window):
            del window  # the constants do not depend on it; the input only makes the signature callable
            return {
                "history_length": tf.constant([params.history_length], tf.int32),
                "interval_seconds": tf.constant([interval_seconds], tf.float32),
                "threshold": tf.constant([calibration.threshold], tf.float32),
                "smoothing_steps": tf.constant([params.smoothing_steps], tf.int32),
                "sensor_names": self.sensor_names,
            }

    return AnomalyServing()


def save_anomaly(module, export_dir: Path, example: np.ndarray) -> None:
    """Write the SavedModel plus warm-up requests (one long sequence, and a batch of chunks)."""
    import tensorflow as tf

    tf.saved_model.save(
        module, str(export_dir), signatures={SIGNATURE: module.serve, INFO_SIGNATURE: module.info}
    )
    sequence = example.astype(np.float32)[np.newaxis]
    chunks = np.repeat(sequence[:, : min(len(example), 512)], 4, axis=0)
    write_warmup_requests(export_dir, "anomaly", SIGNATURE, [{"window": sequence}, {"window": chunks}])

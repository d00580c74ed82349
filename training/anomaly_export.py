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


def save_anomaly(
    model, scaler: Scaler, calibration: Calibration, params: AnomalyParams, sensor_names: list[str],
    interval_seconds: float, export_dir: Path, example: np.ndarray,
) -> None:
    """Write the SavedModel (both signatures) plus warm-up requests (one long sequence, and a batch of chunks).

    keras.export.ExportArchive, so that TF Serving's TF1 session loader restores the LSTM's variables.
    """
    import keras
    import tensorflow as tf

    features = len(sensor_names)
    window_spec = tf.TensorSpec([None, None, features], tf.float32, name="window")
    mean = tf.constant(scaler.mean, tf.float32)
    std = tf.constant(scaler.std, tf.float32)
    residual_std = tf.constant(calibration.residual_std, tf.float32)
    smoothing = params.smoothing_steps

    def serve(window):
        predicted = model((window - mean) / std, training=False) * std + mean
        forecast = tf.concat([window[:, :1], predicted[:, :-1]], axis=1)
        residual = (window - forecast) / residual_std
        error = tf.reduce_mean(tf.square(residual), axis=-1)
        total = tf.cumsum(error, axis=1)
        lagged = tf.pad(total, [[0, 0], [smoothing, 0]])[:, : tf.shape(total)[1]]
        counts = tf.minimum(tf.cast(tf.range(1, tf.shape(total)[1] + 1), tf.float32), float(smoothing))
        smoothed = (total - lagged) / counts
        z = (tf.math.log(smoothed + EPSILON) - calibration.log_error_mean) / calibration.log_error_std
        return {
            "forecast": forecast,
            "residual": residual,
            "score": 0.5 * (1.0 + tf.math.erf(z / math.sqrt(2.0))),
        }

    def info(window):
        del window  # the constants do not depend on it; the input only makes the signature callable
        return {
            "history_length": tf.constant([params.history_length], tf.int32),
            "interval_seconds": tf.constant([interval_seconds], tf.float32),
            "threshold": tf.constant([calibration.threshold], tf.float32),
            "smoothing_steps": tf.constant([smoothing], tf.int32),
            "sensor_names": tf.constant(sensor_names, tf.string),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, serve, input_signature=[window_spec])
    archive.add_endpoint(INFO_SIGNATURE, info, input_signature=[window_spec])
    archive.write_out(str(export_dir), verbose=False)
    sequence = example.astype(np.float32)[np.newaxis]
    chunks = np.repeat(sequence[:, : min(len(example), 512)], 4, axis=0)
    write_warmup_requests(export_dir, "anomaly", SIGNATURE, [{"window": sequence}, {"window": chunks}])

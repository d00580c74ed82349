"""The `anomaly` SavedModel (see docs/contract.md): `serving_default` forecasts a whole sequence in one call and
`model_info` returns the version's constants (history length, interval, sensor names, scoring constants)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from serving import contract as c
from training.anomaly_model import INPUT_CLIP, AnomalyParams, Calibration, Scaler
from training.warmup import write_warmup_requests


def save_anomaly(
    model,
    scaler: Scaler,
    calibration: Calibration,
    params: AnomalyParams,
    name: str,
    sensor_names: list[str],
    interval_seconds: float,
    export_dir: Path,
    example: np.ndarray,
) -> None:
    """Write the SavedModel (both signatures) plus warm-up requests (one long sequence, and a batch of chunks).

    keras.export.ExportArchive, so that TF Serving's TF1 session loader restores the LSTM's variables.
    """
    import keras
    import tensorflow as tf

    features = len(sensor_names)
    window_spec = tf.TensorSpec([None, None, features], tf.float32, name=c.WINDOW_INPUT)
    mean = tf.constant(scaler.mean, tf.float32)
    std = tf.constant(scaler.std, tf.float32)
    residual_std = tf.constant(calibration.residual_std, tf.float32)
    score = calibration.score

    def serve(window):
        scaled = tf.clip_by_value((window - mean) / std, -INPUT_CLIP, INPUT_CLIP)
        change = model(scaled, training=False) * std
        forecast = tf.concat([window[:, :1], window[:, :-1] + change[:, :-1]], axis=1)
        residual = (window - forecast) / residual_std
        return {
            c.FORECAST_OUTPUT: forecast,
            c.RESIDUAL_OUTPUT: residual,
            c.ERROR_OUTPUT: tf.reduce_mean(tf.abs(residual), axis=-1),
        }

    def info(window):
        del window  # the constants do not depend on it; the input only makes the signature callable
        return {
            c.HISTORY_LENGTH_INFO: tf.constant([params.history_length], tf.int32),
            c.INTERVAL_SECONDS_INFO: tf.constant([interval_seconds], tf.float32),
            c.SENSOR_NAMES_INFO: tf.constant(sensor_names, tf.string),
            **{field: tf.constant([getattr(score, field)], tf.int32) for field in c.COUNT_INFOS},
            c.PRIOR_ERROR_MEAN_INFO: tf.constant([score.prior_mean], tf.float32),
            c.PRIOR_ERROR_STD_INFO: tf.constant([score.prior_std], tf.float32),
            c.SEASONAL_SCALE_INFO: tf.constant(calibration.seasonal_scale, tf.float32),
            c.SEASONAL_PRIOR_MEAN_INFO: tf.constant([score.seasonal_prior_mean], tf.float32),
            c.SEASONAL_PRIOR_STD_INFO: tf.constant([score.seasonal_prior_std], tf.float32),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(c.SERVING_SIGNATURE, serve, input_signature=[window_spec])
    archive.add_endpoint(c.INFO_SIGNATURE, info, input_signature=[window_spec])
    archive.write_out(str(export_dir), verbose=False)
    sequence = example.astype(np.float32)[np.newaxis]
    chunks = np.repeat(sequence[:, : min(len(example), 512)], 4, axis=0)
    write_warmup_requests(export_dir, name, c.SERVING_SIGNATURE, [{c.WINDOW_INPUT: sequence}, {c.WINDOW_INPUT: chunks}])

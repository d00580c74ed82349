"""The export contract (docs/contract.md) as code: every name, shape and path that the training job writes,
the model server serves and the gateway reads. Change a value here and all three follow; tests/test_contract.py
fails when a module spells one of these on its own.

This module imports nothing heavy (no TensorFlow, no NumPy): the gateway, the model server and training all
import it.
"""

from __future__ import annotations

from pathlib import Path

# --- signatures, shared by both models ---------------------------------------------------------------------
SERVING_SIGNATURE = "serving_default"  # TF Serving's default when a request names none
INFO_SIGNATURE = "model_info"  # the anomaly model's per-version constants
SERVE_TAG = "serve"  # the MetaGraph tag TF Serving loads

# --- the `mnist` model: image uint8 [-1, 28, 28, 1] -> probabilities float32 [-1, 10], digit int64 [-1] -----
MNIST_MODEL = "mnist"
MNIST_SIDE = 28
DIGIT_CLASSES = 10
IMAGE_INPUT = "image"
PROBABILITIES_OUTPUT = "probabilities"
DIGIT_OUTPUT = "digit"

# --- the `anomaly` model (and each per-asset one): window float32 [-1, -1, F] -> ... ----------------------
ANOMALY_MODEL = "anomaly"
WINDOW_INPUT = "window"
FORECAST_OUTPUT = "forecast"  # [-1, -1, F]
RESIDUAL_OUTPUT = "residual"  # [-1, -1, F]
ERROR_OUTPUT = "error"  # [-1, -1]
ANOMALY_OUTPUTS = (FORECAST_OUTPUT, RESIDUAL_OUTPUT, ERROR_OUTPUT)

# `model_info` outputs, each of shape [1] except sensor_names and seasonal_scale [F].
HISTORY_LENGTH_INFO = "history_length"
INTERVAL_SECONDS_INFO = "interval_seconds"
SENSOR_NAMES_INFO = "sensor_names"
PRIOR_ERROR_MEAN_INFO = "prior_error_mean"
PRIOR_ERROR_STD_INFO = "prior_error_std"
# The seasonal evidence (serving/anomaly_scoring.py): each sensor's learnt spread [F] and the prior; a std of 0
# (or a model exported before these existed) means the model has no seasonal evidence.
SEASONAL_SCALE_INFO = "seasonal_scale"
SEASONAL_PRIOR_MEAN_INFO = "seasonal_prior_mean"
SEASONAL_PRIOR_STD_INFO = "seasonal_prior_std"
# Scoring counts, int32 [1] each; named as serving.anomaly_scoring.ScoreParams' fields.
COUNT_INFOS = ("average_points", "baseline_points", "prior_points", "event_gap_points")
INFO_OUTPUTS = (
    HISTORY_LENGTH_INFO,
    INTERVAL_SECONDS_INFO,
    SENSOR_NAMES_INFO,
    *COUNT_INFOS,
    PRIOR_ERROR_MEAN_INFO,
    PRIOR_ERROR_STD_INFO,
    SEASONAL_SCALE_INFO,
    SEASONAL_PRIOR_MEAN_INFO,
    SEASONAL_PRIOR_STD_INFO,
)

# --- a version folder: models/<name>/<version>/ ------------------------------------------------------------
SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
VARIABLES_DIR = "variables"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MODEL_CARD_FILE = "model_card.md"
REPORT_FILE = "training_report.json"
# Versions are written under this hidden prefix and renamed when complete; pollers ignore the prefix.
EXPORT_TEMP_PREFIX = ".export-"


def version_number(path: Path) -> int | None:
    """The version a folder stands for, or None when it is not a version folder.

    THE rule for what a version folder is, used by the exporter (numbering), the model server (loading) and the
    local stack (is anything trained): a directory whose name is ASCII decimal digits. A hidden `.export-*`
    folder is never one, so a half-written version is invisible.
    """
    name = path.name
    if not (name.isascii() and name.isdigit()) or not path.is_dir():
        return None
    return int(name)


def version_folders(model_dir: Path) -> dict[int, Path]:
    """Version -> folder for every version folder under `model_dir`, ascending; {} when there is no such dir.

    Raises OSError when `model_dir` exists but cannot be listed.
    """
    if not model_dir.is_dir():
        return {}
    found = {number: entry for entry in model_dir.iterdir() if (number := version_number(entry)) is not None}
    return dict(sorted(found.items()))


def has_saved_model(version_dir: Path) -> bool:
    """Whether a version folder holds a SavedModel (what a server can load)."""
    return any((version_dir / name).is_file() for name in SAVED_MODEL_FILES)

"""Pick the devices to train on: every visible GPU (mirrored when several, mixed precision), else the CPU."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # TensorFlow loads in seconds: imported where training starts, typed here
    import tensorflow as tf


@dataclass(frozen=True)
class DeviceSetup:
    """What training runs on, for logs and the training report."""

    strategy: tf.distribute.Strategy
    device: str
    gpus: list[str]
    mixed_precision: bool

    def describe(self) -> str:
        if not self.gpus:
            return "CPU (no GPU visible)"
        policy = "mixed_float16" if self.mixed_precision else "float32"
        return f"{len(self.gpus)} GPU(s) {', '.join(self.gpus)} with {type(self.strategy).__name__}, {policy}"


def seed_everything(seed: int) -> None:
    """Make CPU training repeatable: same seed, same data order, same weights, same result."""
    import keras
    import tensorflow as tf

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def setup_devices(mixed_precision: bool | None = None) -> DeviceSetup:
    """Use all visible GPUs (MirroredStrategy when more than one), mixed precision on GPU; CPU fallback.

    `mixed_precision=None` means "on when training on a GPU".
    """
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    names = [gpu.name.replace("/physical_device:", "") for gpu in gpus]
    if len(gpus) > 1:
        strategy: object = tf.distribute.MirroredStrategy()
    elif gpus:
        strategy = tf.distribute.OneDeviceStrategy("/gpu:0")
    else:
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    use_mixed = bool(gpus) if mixed_precision is None else mixed_precision and bool(gpus)
    keras.mixed_precision.set_global_policy("mixed_float16" if use_mixed else "float32")
    return DeviceSetup(strategy=strategy, device="GPU" if gpus else "CPU", gpus=names, mixed_precision=use_mixed)

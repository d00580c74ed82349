"""The MNIST digit classifier: a small VGG-style CNN with batch norm, trained with augmentation.

Two blocks of two 3x3 convolutions with batch norm and max pooling, a 128-unit dense layer and dropout: the
VGG-style family that reaches about 99.4-99.6% on the full 60,000-image training set. On the 5,000-image subset,
with augmentation (rotations, zooms and shifts, plus stroke width, blur and ink response: see
training/mnist_augment.py) and a warm-up + cosine learning-rate schedule, the default widths (32 then 64 filters,
20 epochs) reached 99.1-99.2% on the official test images for seeds 0-2; 16 then 32 filters 98.8-99.0%
(bench/RESULTS.md). `MnistParams.quick()` is `--quick`: the narrower network for 8 epochs, a usable model
(about 98.3%) in a fraction of the time, a quarter of the multiply-adds per digit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # TensorFlow loads in seconds: imported where training starts, typed here
    import keras
    import tensorflow as tf

from serving.contract import DIGIT_CLASSES, IMAGE_INPUT, MNIST_SIDE, PROBABILITIES_OUTPUT
from training.common import EpochLog
from training.mnist_augment import AugmentParams, augment
from training.mnist_data import MnistData

QUICK_EPOCHS = 8
QUICK_FILTERS = (16, 32)


@dataclass(frozen=True)
class MnistParams:
    epochs: int = 20
    batch_size: int = 128
    peak_learning_rate: float = 3e-3
    seed: int = 0
    augment: bool = True
    augmentation: AugmentParams = field(default_factory=AugmentParams)
    filters: tuple[int, int] = (32, 64)

    @classmethod
    def quick(cls, seed: int = 0) -> MnistParams:
        """`--quick`: 16 then 32 filters for 8 epochs (what the tests and the serving benchmarks train)."""
        return cls(epochs=QUICK_EPOCHS, filters=QUICK_FILTERS, seed=seed)


def build_model(filters: tuple[int, int] = MnistParams.filters) -> keras.Model:
    """Input: float32 [batch, 28, 28, 1] in 0..255 (scaling is the model's first layer). Output: softmax [batch, 10]."""
    import keras
    from keras import layers

    inputs = keras.Input((MNIST_SIDE, MNIST_SIDE, 1), dtype="float32", name=IMAGE_INPUT)
    x = layers.Rescaling(1.0 / 255.0)(inputs)
    for width in filters:
        for _ in range(2):
            x = layers.Conv2D(width, 3, use_bias=False)(x)
            x = layers.BatchNormalization(momentum=0.9)(x)
            x = layers.ReLU()(x)
        x = layers.MaxPooling2D()(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU()(x)
    x = layers.Dropout(0.4)(x)
    outputs = layers.Dense(DIGIT_CLASSES, activation="softmax", dtype="float32", name=PROBABILITIES_OUTPUT)(x)
    return keras.Model(inputs, outputs, name="mnist_cnn")


def make_dataset(x: np.ndarray, y: np.ndarray, params: MnistParams, training: bool) -> tf.data.Dataset:
    """Batches of (float32 [b, 28, 28, 1], int32 [b]); for training shuffled and augmented, one pass per epoch.

    Finite on purpose: Keras makes a fresh iterator every epoch, reshuffling, and `Dataset.random` draws new
    augmentation seeds each time (reproducible from `params.seed`). An infinitely repeated, prefetching pipeline
    cost 15-60 s of silence at the end of `fit`, while its iterator was torn down.
    """
    import tensorflow as tf

    images = x[..., np.newaxis].astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, y.astype(np.int32)))
    if training:
        dataset = dataset.shuffle(len(images), seed=params.seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(params.batch_size)
    if training and params.augment:
        seeds = tf.data.Dataset.random(seed=params.seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds).map(
            lambda batch, seed: (augment(batch[0], seed, params.augmentation), batch[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def train(
    data: MnistData, params: MnistParams, strategy: tf.distribute.Strategy, callbacks: list | None = None
) -> tuple[keras.Model, dict]:
    """Fit on the training images; returns the model and test-set metrics.

    `callbacks` replace the default one-line-per-epoch log (the time-to-accuracy benchmark scores each epoch).
    """
    import keras

    steps_per_epoch = int(np.ceil(len(data.x_train) / params.batch_size))
    total_steps = steps_per_epoch * params.epochs
    warmup = max(1, total_steps // 6)
    with strategy.scope():
        model = build_model(params.filters)
        schedule = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=params.peak_learning_rate / 10,
            decay_steps=total_steps - warmup,
            warmup_target=params.peak_learning_rate,
            warmup_steps=warmup,
            alpha=0.01,
        )
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    train_ds = make_dataset(data.x_train, data.y_train, params, training=True)
    test_ds = make_dataset(data.x_test, data.y_test, params, training=False)
    start = time.perf_counter()
    model.fit(
        train_ds,
        epochs=params.epochs,
        shuffle=False,
        verbose=0,
        callbacks=callbacks if callbacks is not None else [EpochLog(params.epochs, "mnist")],
    )
    fit_seconds = time.perf_counter() - start
    print(f"[mnist] scoring {len(data.x_test)} test images ...", flush=True)
    loss, accuracy = model.evaluate(test_ds, verbose=0)
    print(f"[mnist] scored in {time.perf_counter() - start - fit_seconds:.1f}s", flush=True)
    return model, {
        "test_accuracy": float(accuracy),
        "test_loss": float(loss),
        "test_images": len(data.x_test),
        "train_images": len(data.x_train),
        "fit_seconds": round(fit_seconds, 2),
        "train_images_per_second": round(len(data.x_train) * params.epochs / fit_seconds, 1),
    }

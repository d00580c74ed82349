"""The `mnist` SavedModel: `serving_default` maps `image` uint8 [batch, 28, 28, 1] to `probabilities` and `digit`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.warmup import write_warmup_requests

SIGNATURE = "serving_default"


def make_serving_module(model):  # -> tf.Module
    import tensorflow as tf

    class MnistServing(tf.Module):
        def __init__(self, keras_model) -> None:
            super().__init__(name="mnist_serving")
            self.model = keras_model

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.uint8, name="image")])
        def serve(self, image):
            probabilities = tf.cast(self.model(tf.cast(image, tf.float32), training=False), tf.float32)
            return {
                "probabilities": tf.identity(probabilities, name="probabilities"),
                "digit": tf.argmax(probabilities, axis=-1, output_type=tf.int64, name="digit"),
            }

    return MnistServing(model)


def save_mnist(model, export_dir: Path, warmup_images: np.ndarray) -> None:
    """Write the SavedModel and its warm-up requests (a batch of 1 and of 64 real images) into export_dir."""
    import tensorflow as tf

    module = make_serving_module(model)
    tf.saved_model.save(module, str(export_dir), signatures={SIGNATURE: module.serve})
    images = warmup_images[..., np.newaxis].astype(np.uint8)
    write_warmup_requests(export_dir, "mnist", SIGNATURE, [{"image": images[:1]}, {"image": images[:64]}])

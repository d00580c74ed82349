"""The `mnist` SavedModel: `serving_default` maps `image` uint8 [batch, 28, 28, 1] to `probabilities` and `digit`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

from serving.contract import DIGIT_OUTPUT, IMAGE_INPUT, MNIST_MODEL, MNIST_SIDE, PROBABILITIES_OUTPUT, SERVING_SIGNATURE
from training.warmup import write_warmup_requests


def save_mnist(model: keras.Model, export_dir: Path, warmup_images: np.ndarray) -> None:
    """Write the SavedModel and its warm-up requests (a batch of 1 and of 64 real images) into export_dir.

    keras.export.ExportArchive (not tf.saved_model.save of a wrapping tf.Module) so that the variables are
    restored under the names the graph reads when TF Serving loads the model as a TF1 session bundle.
    """
    import keras
    import tensorflow as tf

    def serve(image):
        probabilities = tf.cast(model(tf.cast(image, tf.float32), training=False), tf.float32)
        return {
            PROBABILITIES_OUTPUT: probabilities,
            DIGIT_OUTPUT: tf.argmax(probabilities, axis=-1, output_type=tf.int64),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    image_spec = tf.TensorSpec([None, MNIST_SIDE, MNIST_SIDE, 1], tf.uint8, name=IMAGE_INPUT)
    archive.add_endpoint(SERVING_SIGNATURE, serve, input_signature=[image_spec])
    archive.write_out(str(export_dir), verbose=False)
    images = warmup_images[..., np.newaxis].astype(np.uint8)
    batches = [{IMAGE_INPUT: images[:1]}, {IMAGE_INPUT: images[:64]}]
    write_warmup_requests(export_dir, MNIST_MODEL, SERVING_SIGNATURE, batches)

"""The `mnist` SavedModel: `serving_default` maps `image` uint8 [batch, 28, 28, 1] to `probabilities` and `digit`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.warmup import write_warmup_requests

SIGNATURE = "serving_default"


def save_mnist(model, export_dir: Path, warmup_images: np.ndarray) -> None:
    """Write the SavedModel and its warm-up requests (a batch of 1 and of 64 real images) into export_dir.

    keras.export.ExportArchive (not tf.saved_model.save of a wrapping tf.Module) so that the variables are
    restored under the names the graph reads when TF Serving loads the model as a TF1 session bundle.
    """
    import keras
    import tensorflow as tf

    def serve(image):
        probabilities = tf.cast(model(tf.cast(image, tf.float32), training=False), tf.float32)
        return {
            "probabilities": probabilities,
            "digit": tf.argmax(probabilities, axis=-1, output_type=tf.int64),
        }

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE, serve, input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.uint8, name="image")])
    archive.write_out(str(export_dir), verbose=False)
    images = warmup_images[..., np.newaxis].astype(np.uint8)
    write_warmup_requests(export_dir, "mnist", SIGNATURE, [{"image": images[:1]}, {"image": images[:64]}])

"""Training-time augmentation of MNIST batches: geometry, and the looks of digits photographed on paper.

Everything is stateless-random from one seed per batch, so a CPU run is reproducible. Images are float32
[batch, 28, 28, 1] in 0..255, ink high, as the model sees them.

- `random_affine`: rotation, zoom and shift (one projective-transform op per batch).
- `random_ink`: what the gateway's preprocessing leaves of a photo or a scan that MNIST's own pen scans lack:
  thinner or thicker strokes (felt pen, pencil, a pen pressed hard), soft edges (blur, a small picture scaled
  up), weak or saturated ink (pressure, lighting: a gamma curve). Each is a random blend between the digit and
  its altered copy, so mild versions are as likely as strong ones and many digits stay close to the original.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from serving.contract import MNIST_SIDE

MNIST_CENTRE = 13.5
# A 3x3 binomial kernel: the smallest blur that softens a 2-pixel MNIST stroke visibly.
BLUR_KERNEL = ((1.0, 2.0, 1.0), (2.0, 4.0, 2.0), (1.0, 2.0, 1.0))


@dataclass(frozen=True)
class AugmentParams:
    """Ranges of the random draws (uniform in [-x, x] unless said otherwise)."""

    rotation_degrees: float = 12.0
    zoom: float = 0.1
    shift_pixels: float = 2.0
    ink: bool = True
    thicken: float = 1.0  # blend towards a 3x3 dilation, uniform in [0, thicken]
    thin: float = 0.8  # blend towards a 3x3 erosion, uniform in [0, thin]
    blur: float = 1.0  # blend towards the blurred digit, uniform in [0, blur]
    blur_passes: int = 2  # the blurred digit: this many 3x3 binomial passes (2: sigma 1 px, as a 5x5 binomial)
    gamma_log: float = 0.8  # ink values v/255 raised to exp(uniform(-g, g))


def augment(images, seed, params: AugmentParams):
    """Both augmentations, with independent seeds derived from `seed` (int64 [2])."""
    import tensorflow as tf

    affine_seed, ink_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    images = random_affine(images, affine_seed, params)
    return random_ink(images, ink_seed, params) if params.ink else images


def random_affine(images, seed, params: AugmentParams):
    """Per-image random rotation, zoom and shift about the centre: one projective-transform op per batch."""
    import tensorflow as tf

    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 4)

    def sample(index: int, limit: float):
        return tf.random.stateless_uniform([batch], seeds[index], -limit, limit)

    angle = sample(0, math.radians(params.rotation_degrees))
    scale = 1.0 + sample(1, params.zoom)
    shift_x, shift_y = sample(2, params.shift_pixels), sample(3, params.shift_pixels)
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    # Output pixel (x, y) samples input at A @ (x - c, y - c) + c - shift: rotation and zoom about the centre.
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = MNIST_CENTRE - a0 * MNIST_CENTRE - a1 * MNIST_CENTRE - shift_x
    b2 = MNIST_CENTRE - b0 * MNIST_CENTRE - b1 * MNIST_CENTRE - shift_y
    zeros = tf.zeros([batch])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=tf.constant([MNIST_SIDE, MNIST_SIDE]),
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )


def random_ink(images, seed, params: AugmentParams):
    """Random stroke width, edge softness and ink response; the brightest pixel stays at 255 as in MNIST."""
    import tensorflow as tf

    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 4)

    def amount(index: int, low: float, high: float):
        return tf.random.stateless_uniform([batch, 1, 1, 1], seeds[index], low, high)

    thick = tf.nn.max_pool2d(images, 3, 1, "SAME")
    thin = -tf.nn.max_pool2d(-images, 3, 1, "SAME")
    # Each digit is either thickened or thinned (sign of one draw), by a random share of the full step.
    width = amount(0, -params.thin, params.thicken)
    images = images + tf.nn.relu(width) * (thick - images) + tf.nn.relu(-width) * (thin - images)
    kernel = tf.constant(BLUR_KERNEL, tf.float32)
    kernel = tf.reshape(kernel / tf.reduce_sum(kernel), [3, 3, 1, 1])
    blurred = images
    for _ in range(params.blur_passes):
        blurred = tf.nn.conv2d(blurred, kernel, 1, "SAME")
    images = images + amount(1, 0.0, params.blur) * (blurred - images)
    peak = tf.maximum(tf.reduce_max(images, axis=[1, 2, 3], keepdims=True), 1.0)
    gamma = tf.exp(amount(2, -params.gamma_log, params.gamma_log))
    return 255.0 * tf.pow(images / peak, gamma)

"""Test-time variants of a digit prepared from a photo: the model reads each, and their probabilities are averaged.

After a photo is resampled to 20 px, its stroke width and edge softness are uncertain: blur in the picture, a
felt pen or a pencil, and the stroke normalisation's coarse steps leave strokes a little thicker, thinner or
softer than MNIST's. Rather than guess one correction, the model reads the prepared digit together with a few
altered copies (a thickened and a sharpened one) in the same Predict, and the answer is the mean of their
probabilities. The copies are what `training/mnist_augment.py` already shows the model, so each is a plausible
MNIST digit on its own; averaging lets a reading that one copy gets wrong be outvoted by the others.

Only digits made by the photo procedure get variants: a picture that already is an MNIST digit (a clean 28x28
PNG, JSON pixels) is read once, as before. Measured in bench/RESULTS.md ("test-time variants").
"""

from __future__ import annotations

import numpy as np

from serving.contract import MNIST_SIDE

# Blend towards a 3x3 grey-level dilation: about half a pixel thicker (the full step often joins strokes).
THICKEN_SHARE = 0.5
# Unsharp mask: the digit plus this much of its difference from a 3x3 binomial blur.
SHARPEN_AMOUNT = 1.0
BINOMIAL = np.array([1.0, 2.0, 1.0], dtype=np.float32) / 4.0
VARIANT_NAMES = ("as prepared", "thickened", "sharpened")
VARIANT_COUNT = len(VARIANT_NAMES)


def photo_variants(digit: np.ndarray) -> np.ndarray:
    """uint8 [VARIANT_COUNT, 28, 28]: the prepared digit (uint8 [28, 28], ink high) first, then its variants."""
    ink = digit.astype(np.float32)
    thickened = ink + THICKEN_SHARE * (_neighbourhood_max(ink) - ink)
    sharpened = np.maximum(ink + SHARPEN_AMOUNT * (ink - _binomial_blur(ink)), 0.0)
    return np.stack([digit, _to_uint8(thickened), _to_uint8(sharpened)])


def average_variants(probabilities: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean probabilities [n, 10] and their most probable digit [n] (int64) of n pictures whose model rows
    ([sum(rows), 10], each picture's rows together, in order) number `rows` [n] per picture."""
    starts = np.concatenate([[0], np.cumsum(rows)[:-1]])
    mean = np.add.reduceat(probabilities.astype(np.float64), starts, axis=0) / rows[:, np.newaxis]
    return mean.astype(np.float32), np.argmax(mean, axis=1).astype(np.int64)


def _neighbourhood_max(ink: np.ndarray) -> np.ndarray:
    """The largest value in each pixel's 3x3 neighbourhood (outside the field counts as no ink)."""
    padded = np.pad(ink, 1)
    return np.max(
        [padded[row : row + MNIST_SIDE, col : col + MNIST_SIDE] for row in range(3) for col in range(3)], axis=0
    )


def _binomial_blur(ink: np.ndarray) -> np.ndarray:
    """A 3x3 binomial blur (separable; outside the field counts as no ink)."""
    padded = np.pad(ink, 1)
    rows = BINOMIAL[0] * padded[:-2] + BINOMIAL[1] * padded[1:-1] + BINOMIAL[2] * padded[2:]
    return BINOMIAL[0] * rows[:, :-2] + BINOMIAL[1] * rows[:, 1:-1] + BINOMIAL[2] * rows[:, 2:]


def _to_uint8(ink: np.ndarray) -> np.ndarray:
    """Scaled so the strongest ink is 255 again (as in MNIST and every prepared digit), rounded to uint8."""
    peak = max(float(ink.max()), 1.0)
    return np.rint(np.clip(ink * (255.0 / peak), 0.0, 255.0)).astype(np.uint8)

"""Ink whose strength varies across the digit: keep what belongs to the strokes, and even their strength out.

A photo's digit is rarely drawn with one even ink. A second pen, lighter than the first, finishes a stroke; a
pen runs dry; one side of the sheet is lit more. The preprocessing scales ink by its strongest pixel, so such a
digit reaches the model half faint, and paper blotches as strong as the faint part compete with it for the crop.

- `keep_connected_ink`: hysteresis, as in edge detection. Ink at least half as strong as the strongest is
  surely the digit; weaker ink is kept only where it is connected to that (a stroke continuing in a lighter
  colour), and dropped where it stands alone (a blotch, a shadow's edge, texture).
- `even_ink_strength`: each pixel divided by the strongest ink in its neighbourhood (about two stroke widths),
  so every stroke's core is full strength again, as in MNIST's scans. The divisor never goes below
  `EVEN_MIN_PEAK` of the strongest ink, so what is left of the background is not raised to ink.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from serving.gateway.ink import grow_mask, stroke_width

# Ink (0..1 of the strongest, after the noise floor) at least this strong is the digit for sure ...
STRONG_INK = 0.5
# ... and ink at least this strong is kept where it touches the sure ink.
WEAK_INK = 0.1
# The connection is traced on the ink max-reduced to about this many pixels along the longer side.
TRACE_SIDE = 128
# Weak ink is followed at most this many reduced pixels from the sure ink: no digit's stroke is longer, and a
# crafted maze of weak ink (a serpentine fills 128 x 128 with an 8,000-step path) costs bounded time.
MAX_TRACE_STEPS = 2 * TRACE_SIDE
# The neighbourhood's strongest ink is not taken below this (a gain of at most 1 / 0.3).
EVEN_MIN_PEAK = 0.3


def keep_connected_ink(ink: np.ndarray) -> np.ndarray:
    """`ink` ([H, W], 0..1) with the weak ink that no path of weak ink links to strong ink set to 0."""
    factor = max(1, -(-max(ink.shape) // TRACE_SIDE))
    reduced = _max_reduce(ink, factor)
    allowed = reduced >= WEAK_INK
    kept = reduced >= STRONG_INK
    # Grow the sure ink through the weak ink until it stops (a stroke can wind), for at most MAX_TRACE_STEPS.
    for _ in range(MAX_TRACE_STEPS):
        grown = grow_mask(kept, 1) & allowed
        if np.array_equal(grown, kept):
            break
        kept = grown
    # One reduced pixel of margin keeps the strokes' blurred fringe, which the reduction counted as weak.
    grown = grow_mask(kept, 1)
    mask = grown[np.arange(ink.shape[0]) // factor][:, np.arange(ink.shape[1]) // factor]
    return np.where(mask, ink, 0.0).astype(ink.dtype)


def even_ink_strength(ink: np.ndarray) -> np.ndarray:
    """`ink` ([H, W], 0..1) divided by the strongest ink within about two stroke widths (smoothed), capped at 1."""
    size = int(2.0 * max(stroke_width(ink), 2.0) + 1.0) | 1  # odd, so the window is centred
    local_peak = _box_mean(_max_filter(ink, size), size)
    return np.clip(ink / np.maximum(local_peak, EVEN_MIN_PEAK), 0.0, 1.0).astype(np.float32)


def _max_reduce(values: np.ndarray, factor: int) -> np.ndarray:
    """The maximum of each `factor` x `factor` block (the last blocks smaller); no padding, so a 1 x 1,000,000
    picture stays 1 x 7,813 instead of 7,813 x 1,000,000."""
    rows = np.maximum.reduceat(values, np.arange(0, values.shape[0], factor), axis=0)
    return np.maximum.reduceat(rows, np.arange(0, values.shape[1], factor), axis=1)


def _max_filter(values: np.ndarray, size: int) -> np.ndarray:
    """Maximum over a `size` x `size` window centred on each pixel (separable; edges padded with 0)."""
    half = size // 2
    rows = sliding_window_view(np.pad(values, ((half, half), (0, 0))), size, axis=0).max(axis=-1)
    return sliding_window_view(np.pad(rows, ((0, 0), (half, half))), size, axis=1).max(axis=-1)


def _box_mean(values: np.ndarray, size: int) -> np.ndarray:
    """Mean over a `size` x `size` window centred on each pixel (separable; edges repeated outward)."""
    half = size // 2
    rows = sliding_window_view(np.pad(values, ((half, half), (0, 0)), mode="edge"), size, axis=0).mean(axis=-1)
    return sliding_window_view(np.pad(rows, ((0, 0), (half, half)), mode="edge"), size, axis=1).mean(axis=-1)

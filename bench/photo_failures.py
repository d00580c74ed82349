"""Where the photo errors are: error rates bucketed by the generator's draws, photos beside the clean digits.

A photo-only error rate well above the clean one in a bucket (heavy blur, thin strokes, a format) points at what
the preprocessing or the training does not yet cover. Sizes and blur are in MNIST pixels (the rendering's pixels
divided by digit height / 28), so pictures of any size share buckets.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from bench.photos import PhotoStyle

# Bucket edges per numeric factor; a value falls in [edges[i], edges[i + 1]).
NUMERIC_BUCKETS = {
    "stroke_mnist_px": (-2.0, -0.3, -0.1, 0.1, 0.4, 0.8, 2.0),
    "blur_mnist_px": (0.0, 0.3, 0.6, 0.9, 1.2, 2.0),
    "abs_angle_degrees": (0.0, 4.0, 8.0, 12.5),
    "digit_height_px": (0, 40, 60, 100, 200, 400),
    "gamma": (0.0, 0.6, 0.8, 1.25, 1.7, 3.0),
    "noise_sigma": (0.0, 5.0, 10.0, 17.0),
    "jpeg_quality": (0, 40, 60, 80, 101),
}


def style_factors(style: PhotoStyle) -> dict[str, float | str]:
    """The draws of one rendering that the buckets group by."""
    scale = style.digit_height / 28
    return {
        "format": style.fmt,
        "solid_strokes": str(style.solid),
        "upscaling": style.upscaling,
        "stroke_mnist_px": style.stroke / scale,
        "blur_mnist_px": style.blur / scale,
        "abs_angle_degrees": abs(style.angle),
        "digit_height_px": style.digit_height,
        "gamma": style.gamma,
        "noise_sigma": style.noise,
        "jpeg_quality": style.jpeg_quality if style.fmt.startswith("jpeg") else -1,
    }


def error_buckets(styles: list[PhotoStyle], correct: np.ndarray, clean_correct: np.ndarray) -> dict[str, list[dict]]:
    """Per factor, per bucket: pictures, photo error rate, clean error rate of the same digits."""
    factors = [style_factors(style) for style in styles]
    buckets: dict[str, list[dict]] = {}
    for name in factors[0]:
        values = np.array([f[name] for f in factors])
        if name in NUMERIC_BUCKETS:
            edges = NUMERIC_BUCKETS[name]
            groups = [(f"{low}..{high}", (values >= low) & (values < high)) for low, high in pairwise(edges)]
        else:
            groups = [(str(value), values == value) for value in sorted(set(values.tolist()))]
        buckets[name] = [
            {
                "bucket": label,
                "pictures": int(chosen.sum()),
                "photo_error": round(1.0 - float(correct[chosen].mean()), 4),
                "clean_error": round(1.0 - float(clean_correct[chosen].mean()), 4),
            }
            for label, chosen in groups
            if chosen.any()
        ]
    return buckets


def failure_grid(prepared: np.ndarray, clean: np.ndarray, failing: np.ndarray, path, limit: int = 100) -> None:
    """A PNG of up to `limit` failing pictures: each as the model saw it (28x28) beside the clean digit."""
    from PIL import Image

    per_row = 10
    shown = failing[:limit]
    rows = max(1, -(-len(shown) // per_row))
    grid = np.zeros((rows * 30, per_row * 60), dtype=np.uint8)
    for k, index in enumerate(shown):
        top, left = 30 * (k // per_row), 60 * (k % per_row)
        grid[top : top + 28, left : left + 28] = prepared[index]
        grid[top : top + 28, left + 29 : left + 57] = clean[index]
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.Resampling.NEAREST).save(path)

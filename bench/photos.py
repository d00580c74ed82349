"""Photo-like renderings of MNIST digits: what a phone photo, a scan or a canvas export of a digit looks like.

Each rendering draws one 28x28 MNIST digit as dark ink on uneven paper: 60-360 px tall, off-centre, rotated up to
12 degrees, strokes made thinner or thicker, ink weaker or stronger (pressure), a second ink colour over part of
the digit, paper tone with a linear gradient and a soft shadow, blur, sensor noise, then saved as a colour JPEG
(quality 30-95), a grayscale PNG or a transparent canvas export (ink only, alpha elsewhere 0). The random draws
come from one `numpy.random.Generator`, so a seed fixes a whole set.

Used by `python -m bench.photo_accuracy` (accuracy on photos against the same digits as clean PNGs) and the
tests.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

FORMATS = ("jpeg", "png-gray", "png-transparent")


@dataclass(frozen=True)
class PhotoStyle:
    """The random choices behind one rendering (kept for reports and failure analysis)."""

    height: int
    width: int
    digit_height: int
    angle: float
    stroke: int  # < 0 thinner (erosion), > 0 thicker (dilation), in pixels of the rendering
    gamma: float
    blur: float
    noise: float
    fmt: str
    jpeg_quality: int


def draw_style(rng: np.random.Generator) -> PhotoStyle:
    height = int(rng.integers(60, 361))
    digit_height = int(height * rng.uniform(0.45, 0.85))
    scale = digit_height / 28
    return PhotoStyle(
        height=height,
        width=int(height * rng.uniform(0.8, 1.6)),
        digit_height=digit_height,
        angle=float(rng.uniform(-12, 12)),
        stroke=int(np.round(rng.uniform(-0.4, 0.9) * scale)),
        gamma=float(np.exp(rng.uniform(-0.7, 0.7))),
        blur=float(rng.uniform(0, 1.2) * scale),
        noise=float(rng.uniform(0, 12)),
        fmt=str(rng.choice(FORMATS, p=[0.5, 0.3, 0.2])),
        jpeg_quality=int(rng.integers(30, 96)),
    )


def ink_coverage(digit: np.ndarray, style: PhotoStyle, rng: np.random.Generator) -> np.ndarray:
    """float32 [H, W] in 0..1: how much ink covers each pixel of the rendering."""
    side = style.digit_height
    ink = Image.fromarray(digit).resize((side, side), Image.Resampling.BICUBIC)
    if style.stroke:
        size = 2 * abs(style.stroke) + 1
        ink = ink.filter(ImageFilter.MaxFilter(size) if style.stroke > 0 else ImageFilter.MinFilter(size))
    ink = ink.rotate(style.angle, resample=Image.Resampling.BICUBIC, expand=True)
    canvas = np.zeros((style.height, style.width), dtype=np.float32)
    glyph = np.asarray(ink, dtype=np.float32)[: style.height, : style.width] / 255.0
    top = int(rng.integers(0, style.height - glyph.shape[0] + 1))
    left = int(rng.integers(0, style.width - glyph.shape[1] + 1))
    canvas[top : top + glyph.shape[0], left : left + glyph.shape[1]] = glyph
    return np.clip(canvas, 0.0, 1.0) ** style.gamma


def paper(style: PhotoStyle, rng: np.random.Generator) -> np.ndarray:
    """float32 [H, W, 3]: a light paper tone, a linear gradient in a random direction and a soft shadow."""
    rows, cols = np.mgrid[0 : style.height, 0 : style.width].astype(np.float32)
    rows, cols = rows / style.height - 0.5, cols / style.width - 0.5
    tone = rng.uniform(150, 250) + rng.uniform(-12, 12, size=3)
    direction = rng.uniform(0, 2 * math.pi)
    gradient = rng.uniform(0, 70) * (rows * math.sin(direction) + cols * math.cos(direction))
    shadow_direction = rng.uniform(0, 2 * math.pi)
    edge = rows * math.sin(shadow_direction) + cols * math.cos(shadow_direction) - rng.uniform(0.2, 0.7)
    shadow = rng.uniform(0, 50) / (1 + np.exp(-edge / 0.08))
    return (tone[None, None, :] + (gradient - shadow)[..., None]).astype(np.float32)


def ink_colours(coverage: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float32 [H, W, 3]: dark ink, with a second colour on one side of a random line through the picture."""
    first = rng.uniform(0, 70) + rng.uniform(-20, 20, size=3)
    second = rng.uniform(0, 180, size=3)  # any hue (a red or blue pen), with at least one dark channel
    second[rng.integers(3)] = rng.uniform(0, 60)
    rows, cols = np.mgrid[0 : coverage.shape[0], 0 : coverage.shape[1]].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    offset = rng.uniform(-0.3, 0.3) * max(coverage.shape)
    side = (rows - coverage.shape[0] / 2) * math.sin(angle) + (cols - coverage.shape[1] / 2) * math.cos(angle)
    use_second = (side > offset) & (rng.uniform() < 0.4)
    colours = np.where(use_second[..., None], second, first)
    return np.clip(colours, 0, 255).astype(np.float32)


def render_photo(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, PhotoStyle]:
    """One photo-like rendering of a uint8 [28, 28] MNIST digit (ink high) as encoded image bytes."""
    style = draw_style(rng)
    coverage = ink_coverage(digit, style, rng)
    colours = ink_colours(coverage, rng)
    buffer = io.BytesIO()
    if style.fmt == "png-transparent":
        # A canvas export: the ink's colour where drawn, alpha = coverage, fully transparent elsewhere.
        alpha = np.clip(coverage * 255.0, 0, 255)
        rgba = np.dstack([colours * (coverage[..., None] > 0), alpha]).astype(np.uint8)
        image = Image.fromarray(rgba, "RGBA")
        if style.blur:
            image = image.filter(ImageFilter.GaussianBlur(style.blur / 2))
        image.save(buffer, "PNG")
        return buffer.getvalue(), style
    picture = paper(style, rng) * (1 - coverage[..., None]) + colours * coverage[..., None]
    image = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8), "RGB")
    if style.blur:
        image = image.filter(ImageFilter.GaussianBlur(style.blur))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, style.noise, (style.height, style.width, 1))
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    if style.fmt == "png-gray":
        image.convert("L").save(buffer, "PNG")
    else:
        image.save(buffer, "JPEG", quality=style.jpeg_quality)
    return buffer.getvalue(), style


def clean_png(digit: np.ndarray) -> bytes:
    """The same digit as a plain 28x28 grayscale PNG, the reference the photos are compared with."""
    buffer = io.BytesIO()
    Image.fromarray(digit, "L").save(buffer, "PNG")
    return buffer.getvalue()

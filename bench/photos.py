"""Photo-like renderings of MNIST digits: what a phone photo, a scan or a canvas export of a digit looks like.

Each rendering draws one 28x28 MNIST digit as dark ink on uneven paper: 60-360 px tall, off-centre, rotated up to
12 degrees, strokes made thinner or thicker, ink weaker or stronger (pressure), a second ink colour over part of
the digit, paper tone with a linear gradient and a soft shadow, blur, sensor noise, then saved as a colour JPEG
(quality 30-95), a grayscale PNG or a transparent canvas export (ink only, alpha elsewhere 0). The random draws
come from one `numpy.random.Generator`, so a seed fixes a whole set.

Two sets of ranges: `STANDARD`, the set the preprocessing and training were tuned on, and `BROAD`, a held-out
generator the tuning never saw. BROAD widens every range and adds what STANDARD lacks: solid pen strokes
(the digit thresholded before it is drawn), other upscaling filters, box blur, a vignette and blotchy paper,
colour noise, a grayscale JPEG. A gain that holds on BROAD works for a reason rather than fits STANDARD.

Used by `python -m bench.photo_accuracy` (accuracy on photos against the same digits as clean PNGs) and the
tests.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

FORMATS = ("jpeg", "png-gray", "png-transparent", "jpeg-gray")
UPSCALING = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
}


@dataclass(frozen=True)
class PhotoRanges:
    """The ranges the random draws come from (uniform unless said otherwise)."""

    digit_share: tuple[float, float] = (0.45, 0.85)  # digit height / picture height
    aspect: tuple[float, float] = (0.8, 1.6)  # picture width / height
    stroke: tuple[float, float] = (-0.4, 0.9)  # erosion (< 0) or dilation, in MNIST pixels
    gamma_log: float = 0.7  # ink coverage raised to exp(+-gamma_log)
    blur: float = 1.2  # blur radius up to this many MNIST pixels
    box_blur_share: float = 0.0  # share of pictures blurred with a box instead of a Gaussian
    tone: tuple[float, float] = (150, 250)  # paper brightness
    gradient: float = 70  # grey levels across the sheet, at most
    shadow: float = 50
    vignette: float = 0.0  # grey levels darker in the corners than the centre, at most
    blotches: float = 0.0  # amplitude of low-frequency paper texture, at most
    noise: float = 12  # sensor noise sigma, at most
    colour_noise: bool = False  # independent noise per channel (else the same in each)
    second_colour_share: float = 0.4
    solid_share: float = 0.0  # share of digits drawn as solid pen strokes (thresholded) instead of MNIST's greys
    upscaling: tuple[str, ...] = ("bicubic",)
    formats: tuple[float, float, float, float] = (0.5, 0.3, 0.2, 0.0)  # probabilities of FORMATS
    jpeg_quality: tuple[int, int] = (30, 95)


STANDARD = PhotoRanges()
BROAD = PhotoRanges(
    digit_share=(0.35, 0.9),
    aspect=(0.7, 1.8),
    stroke=(-0.5, 1.2),
    gamma_log=0.9,
    blur=1.5,
    box_blur_share=0.3,
    tone=(120, 250),
    gradient=90,
    shadow=70,
    vignette=40,
    blotches=15,
    noise=16,
    colour_noise=True,
    second_colour_share=0.5,
    solid_share=0.3,
    upscaling=tuple(UPSCALING),
    formats=(0.35, 0.25, 0.2, 0.2),
    jpeg_quality=(20, 95),
)


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
    solid: bool = False
    upscaling: str = "bicubic"
    box_blur: bool = False


def draw_style(rng: np.random.Generator, ranges: PhotoRanges = STANDARD) -> PhotoStyle:
    height = int(rng.integers(60, 361))
    digit_height = int(height * rng.uniform(*ranges.digit_share))
    scale = digit_height / 28
    return PhotoStyle(
        height=height,
        width=int(height * rng.uniform(*ranges.aspect)),
        digit_height=digit_height,
        angle=float(rng.uniform(-12, 12)),
        stroke=int(np.round(rng.uniform(*ranges.stroke) * scale)),
        gamma=float(np.exp(rng.uniform(-ranges.gamma_log, ranges.gamma_log))),
        blur=float(rng.uniform(0, ranges.blur) * scale),
        noise=float(rng.uniform(0, ranges.noise)),
        fmt=str(rng.choice(FORMATS, p=ranges.formats)),
        jpeg_quality=int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1)),
        # Only drawn where the ranges allow them, so STANDARD's sets stay the ones measured before BROAD existed.
        solid=bool(ranges.solid_share and rng.uniform() < ranges.solid_share),
        upscaling=str(rng.choice(ranges.upscaling)) if len(ranges.upscaling) > 1 else ranges.upscaling[0],
        box_blur=bool(ranges.box_blur_share and rng.uniform() < ranges.box_blur_share),
    )


def ink_coverage(digit: np.ndarray, style: PhotoStyle, rng: np.random.Generator) -> np.ndarray:
    """float32 [H, W] in 0..1: how much ink covers each pixel of the rendering."""
    side = style.digit_height
    ink = Image.fromarray(digit).resize((side, side), UPSCALING[style.upscaling])
    if style.solid:
        # A pen's stroke is ink or paper: a steep ramp around half strength keeps only the anti-aliased edge.
        solid = np.clip((np.asarray(ink, dtype=np.float32) - 96.0) * (255.0 / 64.0), 0, 255)
        ink = Image.fromarray(solid.astype(np.uint8))
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


def paper(style: PhotoStyle, rng: np.random.Generator, ranges: PhotoRanges = STANDARD) -> np.ndarray:
    """float32 [H, W, 3]: a paper tone, a linear gradient in a random direction, a soft shadow (and, where the
    ranges allow, a vignette and blotches)."""
    rows, cols = np.mgrid[0 : style.height, 0 : style.width].astype(np.float32)
    rows, cols = rows / style.height - 0.5, cols / style.width - 0.5
    tone = rng.uniform(*ranges.tone) + rng.uniform(-12, 12, size=3)
    direction = rng.uniform(0, 2 * math.pi)
    gradient = rng.uniform(0, ranges.gradient) * (rows * math.sin(direction) + cols * math.cos(direction))
    shadow_direction = rng.uniform(0, 2 * math.pi)
    edge = rows * math.sin(shadow_direction) + cols * math.cos(shadow_direction) - rng.uniform(0.2, 0.7)
    shadow = rng.uniform(0, ranges.shadow) / (1 + np.exp(-edge / 0.08))
    light = gradient - shadow
    if ranges.vignette:
        light = light - rng.uniform(0, ranges.vignette) * 2 * (rows * rows + cols * cols)
    if ranges.blotches:
        coarse = rng.normal(0, 1, (6, 6)).astype(np.float32)
        smooth = Image.fromarray(coarse, mode="F").resize((style.width, style.height), Image.Resampling.BICUBIC)
        light = light + rng.uniform(0, ranges.blotches) * np.asarray(smooth)
    return (tone[None, None, :] + light[..., None]).astype(np.float32)


def ink_colours(coverage: np.ndarray, rng: np.random.Generator, second_share: float = 0.4) -> np.ndarray:
    """float32 [H, W, 3]: dark ink, with a second colour on one side of a random line through the picture."""
    first = rng.uniform(0, 70) + rng.uniform(-20, 20, size=3)
    second = rng.uniform(0, 180, size=3)  # any hue (a red or blue pen), with at least one dark channel
    second[rng.integers(3)] = rng.uniform(0, 60)
    rows, cols = np.mgrid[0 : coverage.shape[0], 0 : coverage.shape[1]].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    offset = rng.uniform(-0.3, 0.3) * max(coverage.shape)
    side = (rows - coverage.shape[0] / 2) * math.sin(angle) + (cols - coverage.shape[1] / 2) * math.cos(angle)
    use_second = (side > offset) & (rng.uniform() < second_share)
    colours = np.where(use_second[..., None], second, first)
    return np.clip(colours, 0, 255).astype(np.float32)


def render_photo(
    digit: np.ndarray, rng: np.random.Generator, ranges: PhotoRanges = STANDARD
) -> tuple[bytes, PhotoStyle]:
    """One photo-like rendering of a uint8 [28, 28] MNIST digit (ink high) as encoded image bytes."""
    style = draw_style(rng, ranges)
    coverage = ink_coverage(digit, style, rng)
    colours = ink_colours(coverage, rng, ranges.second_colour_share)
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
    picture = paper(style, rng, ranges) * (1 - coverage[..., None]) + colours * coverage[..., None]
    image = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8), "RGB")
    if style.blur:
        radius = style.blur
        image = image.filter(ImageFilter.BoxBlur(radius) if style.box_blur else ImageFilter.GaussianBlur(radius))
    channels = 3 if ranges.colour_noise else 1
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, style.noise, (style.height, style.width, channels))
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    if style.fmt == "png-gray":
        image.convert("L").save(buffer, "PNG")
    elif style.fmt == "jpeg-gray":
        image.convert("L").save(buffer, "JPEG", quality=style.jpeg_quality)
    else:
        image.save(buffer, "JPEG", quality=style.jpeg_quality)
    return buffer.getvalue(), style


def clean_png(digit: np.ndarray) -> bytes:
    """The same digit as a plain 28x28 grayscale PNG, the reference the photos are compared with."""
    buffer = io.BytesIO()
    Image.fromarray(digit, "L").save(buffer, "PNG")
    return buffer.getvalue()

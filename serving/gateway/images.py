"""Uploaded pictures of handwritten digits -> the 28x28 uint8 array the `mnist` model expects.

`image_to_mnist` follows the procedure MNIST itself was built with, so a photo or scan of a digit on
paper ends up looking like the training data: ink bright (255) on black (0), cropped to the ink,
longest side scaled to 20 px with antialiasing, pasted into a 28x28 field so that the centre of
mass sits at pixel (14, 14). The policies are described in docs/preprocessing.md.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from serving.contract import MNIST_SIDE
from serving.gateway.errors import ApiError
from serving.gateway.ink import normalise_stroke, paper_surface
from serving.gateway.ink_strength import even_ink_strength, keep_connected_ink
from serving.gateway.photo_views import photo_views

DIGIT_BOX = 20
MNIST_CENTRE = 14

# Formats a client may upload. Pillow can open more, but some (EPS, PDF) shell out to other programs
# and none of the rest is a plausible way to send a photo of a digit.
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")

# Ink weaker than this (on a 0..255 scale) is not a digit: the brightest pixel of a picture that already is an
# MNIST digit, and ink's distance from the paper's colour in a photo. A photo's ink must also stand out from the
# paper's own noise (`_remove_background`), which is what refuses a blank sheet with texture or a shadow; the
# floor for photos only refuses near-uniform pictures. At 32 it refused pale digits a person reads at once (ink
# 20-32 levels from paper whose noise is 1-3 levels; 5 of the 8,000 pictures in bench/RESULTS.md's fourth round).
MIN_INK_CONTRAST = 32.0
MIN_PHOTO_INK_CONTRAST = 16.0
# A 28x28 grayscale image whose border ring has a median at or below this counts as "already MNIST".
DARK_BACKGROUND_MAX = 32
# Share of the ink's mass ignored on each side when finding its bounding box, so that a speck of
# dust far from the digit does not stretch the crop.
BBOX_MASS_TRIM = 0.002
# Only ink at least this strong (of the strongest, after the noise floor) sets the bounding box: a photo's
# faint leftovers of paper texture, shadow edges and JPEG ringing are spread over far more pixels than a speck
# of dust and would otherwise stretch it.
BBOX_MIN_INK = 0.2
# Faint ink below this share of the strongest ink is background (paper texture, JPEG ringing).
NOISE_FLOOR_SHARE = 0.05
# Larger pictures are box-reduced by an integer factor to about this many pixels before the ink is
# analysed: the result is 20 px tall, and a digit filling a tenth of the frame still spans 100 px.
WORK_PIXELS = 1_000_000


def decode_image(data: bytes, max_pixels: int = 4_000_000) -> Image.Image:
    """Decode an uploaded image fully, refusing bombs, corrupt files and unknown formats.

    The pixel count is checked from the header before any pixel is decoded. Pillow's own
    decompression-bomb guard (`Image.MAX_IMAGE_PIXELS`) fires first for absurd sizes and is reported
    the same way. EXIF orientation is applied; an animated image yields its first frame.
    """
    if not data:
        raise ApiError("invalid_image", "the image is empty (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ApiError("image_too_large", f"the image has too many pixels (limit {max_pixels})") from exc
    except UnidentifiedImageError as exc:
        raise ApiError(
            "unsupported_image_format",
            f"not an image in a supported format ({', '.join(ALLOWED_FORMATS)})",
        ) from exc
    except Exception as exc:  # Pillow raises many types for malformed headers
        raise ApiError("invalid_image", f"the image header is corrupt: {exc}") from exc
    width, height = image.size
    if width * height > max_pixels:
        raise ApiError(
            "image_too_large",
            f"the image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}",
        )
    try:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # in place: no copy of every upload
    except Exception as exc:  # truncated data, bad compressed stream, broken EXIF ...
        raise ApiError("invalid_image", f"the image data is truncated or corrupt: {exc}") from exc
    if image.width == 0 or image.height == 0:
        raise ApiError("invalid_image", "the image has no pixels")
    return image


@dataclass(frozen=True)
class PhotoSteps:
    """The steps for photos and scans beyond MNIST's own procedure (serving/gateway/ink.py, ink_strength.py).

    The gateway runs all of them; `python -m bench.photo_accuracy` switches each off alone to measure its gain.
    """

    adaptive_background: bool = True
    connected_ink: bool = True
    stroke_normalisation: bool = True
    even_strength: bool = True
    test_time_views: bool = True  # for image_to_views only


ALL_STEPS = PhotoSteps()


def image_to_mnist(image: Image.Image, steps: PhotoSteps = ALL_STEPS) -> np.ndarray:
    """An MNIST-style digit (uint8, (28, 28), ink high) from any picture of one digit.

    A picture that already is one (28x28 grayscale on a dark background) is returned unchanged.
    Raises ApiError 422 `blank_image` when the picture holds no ink.
    """
    digit = _mnist_style_pixels(image)
    return _inked(digit) if digit is not None else _photo_to_mnist(image, steps)


def image_to_views(image: Image.Image, steps: PhotoSteps = ALL_STEPS) -> np.ndarray:
    """uint8 [k, 28, 28], what the model reads for one picture: an MNIST digit once (k = 1), a photo as
    image_to_mnist prepares it and, with `steps.test_time_views`, its test-time views (serving/gateway/photo_views.py).
    """
    digit = _mnist_style_pixels(image)
    if digit is not None:
        return _inked(digit)[np.newaxis]
    digit = _photo_to_mnist(image, steps)
    return photo_views(digit) if steps.test_time_views else digit[np.newaxis]


def _inked(digit: np.ndarray) -> np.ndarray:
    if digit.max() < MIN_INK_CONTRAST:
        raise ApiError("blank_image", "the image holds no ink (it is blank)")
    return digit


def _photo_to_mnist(image: Image.Image, steps: PhotoSteps) -> np.ndarray:
    ink, paper_noise = _ink_strength(_flatten(image), steps.adaptive_background)
    ink = _remove_background(ink, paper_noise)
    if steps.connected_ink:
        ink = keep_connected_ink(ink)
    top, bottom, left, right = _ink_bounding_box(np.where(ink >= BBOX_MIN_INK, ink, 0.0))
    crop = ink[top:bottom, left:right]
    if crop.size == 0 or not np.isfinite(crop).all():  # a float image holding +-inf stretches to NaN
        raise ApiError("blank_image", "the image holds no measurable ink (are its pixel values finite?)")
    digit = normalise_stroke(crop) if steps.stroke_normalisation else crop
    if steps.even_strength:
        digit = even_ink_strength(digit)
    return _centre_by_mass(_fit_in_box(digit))


def pixels_to_mnist(pixels: object) -> np.ndarray:
    """Validate `{"pixels": ...}` from JSON: 28 rows of 28 finite numbers, ink high, already centred.

    Values are 0..255, or 0..1 when the largest value is at most 1.0 (then scaled by 255). They are
    rounded to the nearest integer. No re-centering: the client says it is already MNIST-style.
    """
    if not isinstance(pixels, list) or len(pixels) != MNIST_SIDE:
        raise ApiError("invalid_pixels", f"pixels must be a list of 28 rows; got {_describe(pixels)}")
    for i, row in enumerate(pixels):
        if not isinstance(row, list) or len(row) != MNIST_SIDE:
            raise ApiError("invalid_pixels", f"pixels[{i}] must be a list of 28 numbers; got {_describe(row)}")
        for j, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ApiError("invalid_pixels", f"pixels[{i}][{j}] must be a number; got {_describe(value)}")
            if isinstance(value, float) and not math.isfinite(value):
                raise ApiError("invalid_pixels", f"pixels[{i}][{j}] is not finite ({value})")
            if not 0 <= value <= 255:
                raise ApiError("invalid_pixels", f"pixels[{i}][{j}] = {value} is outside 0..255")
    array = np.array(pixels, dtype=np.float64)
    if array.max() <= 1.0:
        array = array * 255.0
    return np.rint(array).astype(np.uint8)


def _describe(value: object) -> str:
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return type(value).__name__ if value is not None else "null"


def _mnist_style_pixels(image: Image.Image) -> np.ndarray | None:
    """The pixels of a picture that already is an MNIST digit (28x28 grayscale, dark border ring), else None.

    This runs for every image, so it is cheap: one copy of the pixels (`tobytes`, faster than Pillow's array
    interface), and "the median border pixel is dark" counted (all dark pixels less the inner ones), not sorted.
    """
    if image.mode != "L" or image.size != (MNIST_SIDE, MNIST_SIDE):
        return None
    pixels = np.frombuffer(bytearray(image.tobytes()), dtype=np.uint8).reshape(MNIST_SIDE, MNIST_SIDE)
    dark = pixels <= DARK_BACKGROUND_MAX
    dark_in_ring = np.count_nonzero(dark) - np.count_nonzero(dark[1:-1, 1:-1])
    return pixels if 2 * dark_in_ring >= 4 * (MNIST_SIDE - 1) else None


def _flatten(image: Image.Image) -> np.ndarray:
    """float32 pixels, [H, W] or [H, W, 3], 0..255, transparency composited onto white, big ones reduced."""
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        flat = image.convert("F")
    elif image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.alpha_composite(Image.new("RGBA", rgba.size, _backdrop(rgba)), rgba).convert("RGB")
    elif image.mode in ("1", "L"):
        flat = image.convert("L")
    else:
        flat = image.convert("RGB")
    factor = math.isqrt(flat.width * flat.height // WORK_PIXELS)
    if factor > 1:
        flat = flat.reduce(factor)  # box average in Pillow: keeps the rest cheap for photo-sized uploads
    values = np.asarray(flat, dtype=np.float32)
    if flat.mode == "F":
        # 16/32-bit grayscale: only relative brightness matters downstream, so stretch to 0..255.
        low, high = float(values.min()), float(values.max())
        return (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return values


def _backdrop(rgba: Image.Image) -> tuple[int, int, int, int]:
    """White behind dark drawings, black behind light ones (white chalk on a transparent canvas): the
    transparent parts must not take the ink's own colour. Dark or light is the alpha-weighted mean brightness."""
    pixels = np.asarray(rgba, dtype=np.float32)
    alpha = pixels[..., 3]
    weight = float(alpha.sum())
    light = weight > 0 and float((pixels[..., :3].mean(axis=2) * alpha).sum()) / weight > 127.5
    return (0, 0, 0, 255) if light else (255, 255, 255, 255)


def _border_ring(values: np.ndarray) -> np.ndarray:
    """The pixels of the outer ring (about 2% of the shorter side wide), flattened over space."""
    width = max(1, round(0.02 * min(values.shape[:2])))
    mask = np.ones(values.shape[:2], dtype=bool)
    mask[width:-width, width:-width] = False
    return values[mask]


def _ink_strength(pixels: np.ndarray, adaptive: bool) -> tuple[np.ndarray, float]:
    """[H, W] float32: how far each pixel is from the paper's colour; and the paper's median distance from it.

    The paper's colour is a smooth surface fitted around the ink (`adaptive`; its own pixels give the noise) or
    the median of the border ring (the ring's median distance is the noise: it stays paper even where the ink
    runs into the edge). Measuring distance from the background, rather than darkness, handles dark ink on
    light paper (the usual photo: inverted), light ink on dark paper (MNIST itself) and coloured ink alike.
    """
    if adaptive:
        background, noise = paper_surface(pixels)
        return _distance(pixels, background), noise
    ink = _distance(pixels, np.median(_border_ring(pixels), axis=0))
    return ink, float(np.median(_border_ring(ink)))


def _distance(pixels: np.ndarray, background: np.ndarray) -> np.ndarray:
    """[H, W]: the largest per-channel distance of each pixel from the background."""
    distance = np.abs(pixels - background)
    return distance.max(axis=2) if distance.ndim == 3 else distance


def _remove_background(ink: np.ndarray, paper_noise: float) -> np.ndarray:
    """Ink scaled to 0..1 with the noise floor subtracted; 422 when nothing stands out from it.

    For Gaussian noise of spread s the paper's median distance is 0.67 s, so the floor sits near 2.7 s.
    """
    peak = float(ink.max())
    noise = 4.0 * paper_noise
    if peak < MIN_PHOTO_INK_CONTRAST or peak < 2.0 * noise:
        raise ApiError("blank_image", "the image holds no ink that stands out from the background")
    floor = max(noise, NOISE_FLOOR_SHARE * peak)
    return np.clip((ink - floor) / (peak - floor), 0.0, 1.0)


def _mass_span(profile: np.ndarray) -> tuple[int, int]:
    """[first, last + 1) of a 1-D mass profile, ignoring BBOX_MASS_TRIM of the mass on each end."""
    cumulative = np.cumsum(profile)
    total = cumulative[-1]
    first = int(np.searchsorted(cumulative, BBOX_MASS_TRIM * total, side="right"))
    last = int(np.searchsorted(cumulative, (1.0 - BBOX_MASS_TRIM) * total, side="left"))
    return first, min(last, profile.size - 1) + 1


def _ink_bounding_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    top, bottom = _mass_span(ink.sum(axis=1))
    left, right = _mass_span(ink.sum(axis=0))
    return top, bottom, left, right


def _fit_in_box(ink: np.ndarray) -> np.ndarray:
    """Scale so the longest side is 20 px (aspect kept), area-averaging down, Lanczos up; max -> 1."""
    height, width = ink.shape
    scale = DIGIT_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    method = Image.Resampling.BOX if scale < 1.0 else Image.Resampling.LANCZOS
    resized = np.asarray(Image.fromarray(ink.astype(np.float32), mode="F").resize(size, method))
    resized = np.clip(resized, 0.0, None)
    peak = float(resized.max())
    if peak <= 0.0:
        raise ApiError("blank_image", "the image holds no ink (it is blank)")
    return resized / peak


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Paste a [h, w] (h, w <= 20) digit into 28x28 with its centre of mass at (14, 14), as uint8."""
    height, width = digit.shape
    total = digit.sum()
    row_centre = float((digit.sum(axis=1) * np.arange(height)).sum() / total)
    col_centre = float((digit.sum(axis=0) * np.arange(width)).sum() / total)
    top = min(max(math.floor(MNIST_CENTRE - row_centre + 0.5), 0), MNIST_SIDE - height)
    left = min(max(math.floor(MNIST_CENTRE - col_centre + 0.5), 0), MNIST_SIDE - width)
    canvas = np.zeros((MNIST_SIDE, MNIST_SIDE), dtype=np.float32)
    canvas[top : top + height, left : left + width] = digit
    return np.rint(canvas * 255.0).astype(np.uint8)

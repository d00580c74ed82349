"""Turn the image inputs the client accepts into `/v1/digits:predict` JSON instances.

Accepted: a file path (str or Path), raw encoded bytes (PNG/JPEG...), a PIL image, or a NumPy array.
A 28x28 uint8 array (optionally with a trailing channel of 1) already is an MNIST field and goes as
`pixels`; anything else is encoded as PNG and sent as `b64`, for the gateway to centre and scale.
File contents and bytes are sent as they are: the gateway, not the client, decides whether they decode.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from PIL import Image

ImageInput: TypeAlias = str | Path | bytes | bytearray | Image.Image | np.ndarray
Instance: TypeAlias = dict[str, Any]


def is_single_image(value: object) -> bool:
    """True when `value` is one image rather than a collection of images."""
    if isinstance(value, str | Path | bytes | bytearray | Image.Image):
        return True
    if isinstance(value, np.ndarray):
        # (H, W) or (H, W, C) with C in 1/3/4 is one image; (N, H, W) or (N, H, W, C) is a batch.
        return value.ndim == 2 or (value.ndim == 3 and value.shape[-1] in (1, 3, 4))
    return False


def as_image_list(images: ImageInput | Iterable[ImageInput]) -> list[ImageInput]:
    """One image or many, as a list of single images."""
    if is_single_image(images):
        return [images]  # type: ignore[list-item]
    return list(images)  # type: ignore[arg-type]


def to_instance(image: ImageInput) -> Instance:
    """The JSON instance for one image."""
    if isinstance(image, str | Path):
        return _b64(Path(image).read_bytes())
    if isinstance(image, bytes | bytearray):
        return _b64(bytes(image))
    if isinstance(image, Image.Image):
        return _b64(_png(image))
    if isinstance(image, np.ndarray):
        return _array_instance(image)
    raise TypeError(f"unsupported image type {type(image).__name__}: use a path, bytes, PIL image or array")


def _array_instance(array: np.ndarray) -> Instance:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.shape == (28, 28) and array.dtype == np.uint8:
        return {"pixels": array.tolist()}
    if array.dtype != np.uint8:
        scale = 255.0 if array.size and float(np.nanmax(array)) <= 1.0 else 1.0
        array = np.clip(np.nan_to_num(array.astype(np.float64)) * scale, 0, 255).astype(np.uint8)
    return _b64(_png(Image.fromarray(array)))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _b64(data: bytes) -> Instance:
    return {"b64": base64.b64encode(data).decode("ascii")}

"""Request bodies for the benchmark: digit PNGs (one, or many as multipart) and sensor series as JSON.

Digits are real MNIST test images when the shared data is present (else digits rendered with Pillow's
built-in font), so the gateway's decode/centre path does its usual work. Series follow a daily cycle
with noise at the anomaly model's own interval, which the benchmark reads from the model server
(the `model_info` signature, docs/contract.md), so the gateway never has to resample them.
"""

from __future__ import annotations

import argparse
import io
import json
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

DEFAULT_MNIST_NPZ = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "mnist" / ("mnist-5k-train-10k-test.npz")
)
SERIES_START_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z


@dataclass(frozen=True)
class Body:
    """One HTTP request body and its Content-Type."""

    content: bytes
    content_type: str


@dataclass(frozen=True)
class AnomalyInfo:
    """What the benchmark needs from the anomaly model's `model_info` signature."""

    interval_seconds: float
    sensor_names: list[str]


def add_mnist_data_argument(parser: argparse.ArgumentParser) -> None:
    """`--mnist-data`: the digits every load generator sends (the shared MNIST npz when it is there)."""
    parser.add_argument(
        "--mnist-data",
        type=Path,
        default=DEFAULT_MNIST_NPZ,
        help="npz with x_test digits to send (absent: digits drawn with Pillow)",
    )


def digit_images(count: int, npz: Path | None) -> np.ndarray:
    """uint8 [count, 28, 28] white-on-black digits: MNIST test images if `npz` exists, else rendered ones."""
    if npz is not None and npz.exists():
        with np.load(npz) as data:
            return data["x_test"][:count].astype(np.uint8)
    font = ImageFont.load_default(size=22)
    images = []
    for i in range(count):
        canvas = Image.new("L", (28, 28), 0)
        ImageDraw.Draw(canvas).text((14, 14), str(i % 10), fill=255, font=font, anchor="mm")
        images.append(np.asarray(canvas))
    return np.stack(images)


def png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def single_digit(images: np.ndarray) -> Body:
    """The cheapest upload the gateway takes: a raw `image/png` body."""
    return Body(png(images[0]), "image/png")


def multipart_digits(images: np.ndarray, field: str = "image") -> Body:
    """All `images` as PNG files in one multipart/form-data body (the field repeated), as a browser sends them."""
    boundary = f"bench-{uuid.uuid4().hex}"
    parts = []
    for i, image in enumerate(images):
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="digit{i}.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        )
        parts.append(head.encode() + png(image) + b"\r\n")
    return Body(b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}")


def series_json(points: int, info: AnomalyInfo, seed: int = 0) -> Body:
    """`points` regularly spaced readings (epoch-second timestamps) with a daily cycle and noise."""
    rng = np.random.default_rng(seed)
    steps = np.arange(points)
    seconds = SERIES_START_EPOCH + steps * info.interval_seconds
    day = 2 * np.pi * steps * info.interval_seconds / 86_400
    columns = {
        name: np.round(50 + 30 * np.sin(day + k) + rng.normal(0, 1.5, points), 4).tolist()
        for k, name in enumerate(info.sensor_names)
    }
    payload: dict[str, object] = {"timestamps": seconds.tolist()}
    if info.sensor_names == ["value"]:
        payload["values"] = columns["value"]
    else:
        payload["series"] = columns
    return Body(json.dumps(payload).encode(), "application/json")


def rest_predict_json(images: np.ndarray) -> Body:
    """TF Serving REST `instances` body for the mnist signature (uint8 [n, 28, 28, 1] as nested lists)."""
    return Body(json.dumps({"instances": images[..., np.newaxis].tolist()}).encode(), "application/json")


def anomaly_info(rest_url: str, model: str = "anomaly") -> AnomalyInfo:
    """Ask the model server's REST API for the model's interval and sensors (`model_info` signature)."""
    with urllib.request.urlopen(f"{rest_url}/v1/models/{model}/metadata", timeout=10) as response:
        metadata = json.load(response)
    window = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["window"]
    features = int(window["tensor_shape"]["dim"][-1]["size"])
    body = json.dumps({"signature_name": "model_info", "inputs": {"window": [[[0.0] * features]]}}).encode()
    request = urllib.request.Request(
        f"{rest_url}/v1/models/{model}:predict", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        outputs = json.load(response)["outputs"]
    return AnomalyInfo(
        float(np.ravel(outputs["interval_seconds"])[0]), [str(name) for name in np.ravel(outputs["sensor_names"])]
    )

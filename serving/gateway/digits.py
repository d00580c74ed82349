"""`POST /v1/digits:predict`: read the images of a request, classify them in one Predict, answer in order."""

from __future__ import annotations

import base64
import binascii
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import grpc
import numpy as np
from flask import Request
from PIL import Image

from serving.contract import DIGIT_CLASSES, DIGIT_OUTPUT, IMAGE_INPUT, PROBABILITIES_OUTPUT
from serving.gateway import metrics
from serving.gateway.batcher import MicroBatcher
from serving.gateway.config import GatewayConfig
from serving.gateway.errors import ApiError
from serving.gateway.images import decode_image, image_to_mnist, pixels_to_mnist
from serving.gateway.jsonio import is_json, read_json
from serving.gateway.timing import StageTimer
from serving.gateway.upstream import Prediction, UpstreamClient, UpstreamError, model_spec

IMAGE_FIELD = "image"



class PixelBudget:
    """The pixels one request's images may decode to in all.

    The per-image cap alone would let one request of many large images cost minutes of CPU; every image is
    checked against what is left before its pixels are decoded.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.remaining = total

    def decode(self, blob: bytes, max_image_pixels: int) -> Image.Image:
        limit = min(max_image_pixels, self.remaining)
        try:
            image = decode_image(blob, max_pixels=limit)
        except ApiError as exc:
            if exc.status == 413 and limit < max_image_pixels:
                raise ApiError(413, "request_too_many_pixels",
                               f"the images of one request may hold {self.total} pixels in all") from None
            raise
        self.remaining -= image.width * image.height
        return image

class DigitService:
    """Turns requests into MNIST arrays and arrays into predictions, optionally micro-batched."""

    def __init__(self, upstream: UpstreamClient, config: GatewayConfig) -> None:
        self.upstream = upstream
        self.model = config.mnist_model
        self.spec = model_spec(config.mnist_model, label=config.model_label)
        self.max_images = config.max_images
        self.max_pixels = config.max_image_pixels
        self.max_request_pixels = config.max_request_pixels
        self.batcher = (
            MicroBatcher(self._predict_batch, window_seconds=config.microbatch_ms / 1000.0,
                         max_items=config.microbatch_max_images)
            if config.microbatching else None
        )

    def read_images(self, request: Request, timer: StageTimer) -> np.ndarray:
        """uint8 [n, 28, 28] from multipart `image` files, a raw image body, or JSON instances."""
        mimetype = request.mimetype
        if mimetype == "multipart/form-data":
            with timer.stage("decode"):
                files = request.files.getlist(IMAGE_FIELD)
                self._check_count(len(files), f"multipart file field {IMAGE_FIELD!r}")
                blobs = [file.read() for file in files]
            budget = PixelBudget(self.max_request_pixels)
            return np.stack([self._from_bytes(blob, f"{IMAGE_FIELD}[{i}]", timer, budget)
                                for i, blob in enumerate(blobs)])
        if mimetype.startswith("image/"):
            with timer.stage("decode"):
                blob = request.get_data(cache=False)
            return np.stack([self._from_bytes(blob, "body", timer, PixelBudget(self.max_request_pixels))])
        if is_json(request):
            with timer.stage("decode"):
                instances = _instances(read_json(request))
                self._check_count(len(instances), "instances")
            budget = PixelBudget(self.max_request_pixels)
            return np.stack([self._from_instance(item, i, timer, budget) for i, item in enumerate(instances)])
        raise ApiError(415, "unsupported_media_type",
                       f"send multipart/form-data (field {IMAGE_FIELD!r}), an image/png or image/jpeg body, "
                       f"or application/json with instances; got {mimetype or 'no Content-Type'}")

    def incoming(self) -> AbstractContextManager[None]:
        """Context for reading a request's images; lets the micro-batcher wait for them."""
        return self.batcher.incoming() if self.batcher is not None else nullcontext()

    def predict(self, images: np.ndarray, deadline: float) -> Prediction:
        if self.batcher is not None:
            return self.batcher.submit(images, deadline)
        return self._predict_batch(images, deadline)

    def response(self, images: np.ndarray, prediction: Prediction) -> dict[str, Any]:
        """The JSON body for `images` classified by `prediction`; also counts the digit metrics."""
        probabilities = prediction.outputs.get(PROBABILITIES_OUTPUT)
        digits = prediction.outputs.get(DIGIT_OUTPUT)
        count = len(images)
        if (probabilities is None or digits is None or probabilities.shape != (count, DIGIT_CLASSES)
                or digits.shape != (count,)):
            raise UpstreamError(503, "model_contract", f"model {self.model!r} did not return "
                                f"{PROBABILITIES_OUTPUT} [n, 10] and {DIGIT_OUTPUT} [n]",
                                grpc.StatusCode.INTERNAL)
        digits = digits.astype(np.int64)
        confidence = probabilities[np.arange(count), digits]
        metrics.labelled(metrics.MODEL_VERSION_RESPONSES, self.model, str(prediction.version)).inc()
        for digit, times in enumerate(np.bincount(digits, minlength=DIGIT_CLASSES)):
            if times:
                metrics.labelled(metrics.DIGIT_PREDICTIONS, str(digit)).inc(int(times))
        metrics.observe_many(metrics.DIGIT_CONFIDENCE, confidence)
        rounded = np.round(probabilities.astype(np.float64), 6).tolist()
        return {
            "predictions": [
                {"digit": digit, "confidence": conf, "probabilities": probs}
                for digit, conf, probs in zip(digits.tolist(), np.round(confidence, 6).tolist(), rounded,
                                              strict=True)
            ],
            "model": {"name": self.model, "version": prediction.version},
        }

    def _predict_batch(self, images: np.ndarray, deadline: float) -> Prediction:
        metrics.labelled(metrics.BATCH_SIZE, self.model).observe(len(images))
        return self.upstream.predict(self.spec, {IMAGE_INPUT: images[..., np.newaxis]}, deadline)

    def _check_count(self, count: int, where: str) -> None:
        if count == 0:
            raise ApiError(400, "no_images", f"no image in {where}")
        if count > self.max_images:
            raise ApiError(413, "too_many_images",
                           f"{count} images in {where}; at most {self.max_images} per request")

    def _from_bytes(self, blob: bytes, where: str, timer: StageTimer, budget: PixelBudget) -> np.ndarray:
        try:
            with timer.stage("decode"):
                image = budget.decode(blob, self.max_pixels)
            with timer.stage("preprocess"):
                return image_to_mnist(image)
        except ApiError as exc:
            raise _located(exc, where) from None

    def _from_instance(self, item: Any, index: int, timer: StageTimer, budget: PixelBudget) -> np.ndarray:
        where = f"instances[{index}]"
        if not isinstance(item, dict) or len(item) != 1 or not {"b64", "pixels"} & item.keys():
            raise ApiError(400, "invalid_instance",
                           f'{where} must be an object with exactly one key, "b64" or "pixels"')
        if "pixels" in item:
            try:
                with timer.stage("preprocess"):
                    return pixels_to_mnist(item["pixels"])
            except ApiError as exc:
                raise _located(exc, where) from None
        with timer.stage("decode"):
            blob = _base64(item["b64"], where)
        return self._from_bytes(blob, where, timer, budget)


def _instances(payload: Any) -> list[Any]:
    if not isinstance(payload, dict) or "instances" not in payload:
        raise ApiError(400, "invalid_request", 'the JSON body must be an object with an "instances" list')
    instances = payload["instances"]
    if not isinstance(instances, list):
        raise ApiError(400, "invalid_request", '"instances" must be a list')
    return instances


def _base64(value: Any, where: str) -> bytes:
    """Standard base64, optionally as a data URL (`data:image/png;base64,...`, what browsers produce)."""
    if not isinstance(value, str):
        raise ApiError(400, "invalid_base64", f"{where}.b64 must be a base64 string")
    if value.startswith("data:") and ";base64," in value:
        value = value.split(";base64,", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "invalid_base64", f"{where}.b64 is not valid base64") from None


def _located(error: ApiError, where: str) -> ApiError:
    return ApiError(error.status, error.code, f"{where}: {error.message}", error.headers)

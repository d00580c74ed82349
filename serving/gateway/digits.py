"""`POST /v1/digits:predict`: read the images of a request, classify them in one Predict, answer in order.

A Predict carries at most `max_images` rows (GATEWAY_MAX_IMAGES, 256), the bound the model servers' batch limits
were sized for: a request of MNIST-style digits is always one Predict, while one of many photos (seven rows each,
serving/gateway/photo_views.py) can need several, sent in turn and pinned to the version that answered the first.
"""

from __future__ import annotations

import base64
import binascii
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from flask import Request
from PIL import Image

from serving.contract import DIGIT_CLASSES, IMAGE_INPUT, PROBABILITIES_OUTPUT
from serving.gateway import metrics
from serving.gateway.config import GatewayConfig
from serving.gateway.endpoint import Answer, Count, Endpoint, VersionGone
from serving.gateway.errors import ApiError
from serving.gateway.images import decode_image, image_to_views, pixels_to_mnist
from serving.gateway.jsonio import is_json, read_json
from serving.gateway.microbatch import MicroBatcher
from serving.gateway.photo_views import average_views
from serving.gateway.upstream import Prediction, UpstreamClient, UpstreamError, model_spec
from serving.protos.tfs_lite_pb2 import ModelSpec

DIGITS_ROUTE = "/v1/digits:predict"
IMAGE_FIELD = "image"  # the multipart field of the HTTP API


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
                raise ApiError(
                    "request_too_many_pixels", f"the images of one request may hold {self.total} pixels in all"
                ) from None
            raise
        self.remaining -= image.width * image.height
        return image


@dataclass(frozen=True)
class Picture:
    """One image of a request, decoded, or the pixels a JSON instance sent; `where` names it in errors."""

    where: str
    image: Image.Image | None = None
    pixels: Any = None


@dataclass(frozen=True)
class PreparedDigits:
    """The model's rows for a request's pictures (uint8 [sum(views), 28, 28]) and how many belong to each."""

    rows: np.ndarray
    views: np.ndarray


class DigitEndpoint(Endpoint[list[Picture], PreparedDigits]):
    """Images in (multipart `image` files, a raw image body, or JSON instances), one digit per image out.

    Optionally micro-batched: concurrent requests of a worker share one Predict (serving/gateway/microbatch.py).
    """

    route = DIGITS_ROUTE

    def __init__(self, upstream: UpstreamClient, config: GatewayConfig) -> None:
        self.upstream = upstream
        self.model = config.mnist_model
        self.spec = model_spec(config.mnist_model, label=config.model_label)
        self.max_images = config.max_images
        self.max_pixels = config.max_image_pixels
        self.max_request_pixels = config.max_request_pixels
        self.batcher = (
            MicroBatcher(
                self._predict_batch,
                window_seconds=config.microbatch_ms / 1000.0,
                max_items=config.microbatch_max_images,
            )
            if config.microbatching
            else None
        )

    def reading(self) -> AbstractContextManager[object]:
        return self.batcher.incoming() if self.batcher is not None else nullcontext()

    def read(self, request: Request) -> list[Picture]:
        """The request's images, decoded within the request's pixel budget."""
        mimetype = request.mimetype
        budget = PixelBudget(self.max_request_pixels)
        if mimetype == "multipart/form-data":
            files = request.files.getlist(IMAGE_FIELD)
            self._check_image_count(len(files), f"multipart file field {IMAGE_FIELD!r}")
            blobs = [file.read() for file in files]
            return [self._decoded(blob, f"{IMAGE_FIELD}[{i}]", budget) for i, blob in enumerate(blobs)]
        if mimetype.startswith("image/"):
            return [self._decoded(request.get_data(cache=False), "body", budget)]
        if is_json(request):
            instances = _instances(read_json(request))
            self._check_image_count(len(instances), "instances")
            return [self._from_instance(item, i, budget) for i, item in enumerate(instances)]
        raise ApiError(
            "unsupported_media_type",
            f"send multipart/form-data (field {IMAGE_FIELD!r}), an image/png or image/jpeg body, "
            f"or application/json with instances; got {mimetype or 'no Content-Type'}",
        )

    def preprocess(self, pictures: list[Picture], deadline: float) -> PreparedDigits:
        """Each picture as an MNIST digit; a photo also as its test-time views (serving/gateway/photo_views.py)."""
        per_picture = [_to_views(picture) for picture in pictures]
        return PreparedDigits(np.concatenate(per_picture), np.array([len(rows) for rows in per_picture]))

    def predict(self, prepared: PreparedDigits, deadline: float) -> Prediction:
        rows, most = prepared.rows, self.max_images
        chunks = [rows[start : start + most] for start in range(0, len(rows), most)]
        first = self._submit(chunks[0], deadline)
        if len(chunks) == 1:
            return first
        pinned = model_spec(self.model, version=first.version)
        try:
            rest = [self._predict_batch(chunk, deadline, pinned) for chunk in chunks[1:]]
        except UpstreamError as exc:
            if exc.grpc_code != grpc.StatusCode.NOT_FOUND:
                raise
            raise VersionGone(exc.code, exc.message, exc.grpc_code, exc.headers) from exc
        parts = zip([first, *rest], chunks, strict=True)
        probabilities = np.concatenate([self._probabilities(part, len(chunk)) for part, chunk in parts])
        return Prediction(outputs={PROBABILITIES_OUTPUT: probabilities}, version=first.version)

    def _submit(self, rows: np.ndarray, deadline: float) -> Prediction:
        if self.batcher is not None:
            return self.batcher.submit(rows, deadline)
        return self._predict_batch(rows, deadline)

    def postprocess(self, pictures: list[Picture], prepared: PreparedDigits, prediction: Prediction) -> Answer:
        """A digit, its confidence and the ten probabilities per image (a photo's: the mean over its views)."""
        probabilities = average_views(self._probabilities(prediction, len(prepared.rows)), prepared.views)
        digits = np.argmax(probabilities, axis=1)
        confidence = probabilities[np.arange(len(pictures)), digits]
        rounded = np.round(probabilities.astype(np.float64), 6).tolist()
        body = {
            "predictions": [
                {"digit": digit, "confidence": conf, "probabilities": probs}
                for digit, conf, probs in zip(digits.tolist(), np.round(confidence, 6).tolist(), rounded, strict=True)
            ],
            "model": {"name": self.model, "version": prediction.version},
        }
        counts = [
            Count(metrics.DIGIT_PREDICTIONS, int(times), (str(digit),))
            for digit, times in enumerate(np.bincount(digits, minlength=DIGIT_CLASSES))
            if times
        ]
        counts.append(Count(metrics.DIGIT_CONFIDENCE, confidence))
        return Answer(body, self.model, prediction.version, counts)

    def _probabilities(self, prediction: Prediction, rows: int) -> np.ndarray:
        """probabilities [rows, 10], or a 503 `model_contract` when the model broke it."""
        probabilities = prediction.outputs.get(PROBABILITIES_OUTPUT)
        if probabilities is None or probabilities.shape != (rows, DIGIT_CLASSES):
            raise UpstreamError(
                "model_contract",
                f"model {self.model!r} did not return {PROBABILITIES_OUTPUT} [n, {DIGIT_CLASSES}]",
                grpc.StatusCode.INTERNAL,
            )
        return probabilities

    def _predict_batch(self, images: np.ndarray, deadline: float, spec: ModelSpec | None = None) -> Prediction:
        metrics.labelled(metrics.BATCH_SIZE, self.model).observe(len(images))
        return self.upstream.predict(spec or self.spec, {IMAGE_INPUT: images[..., np.newaxis]}, deadline)

    def _check_image_count(self, count: int, where: str) -> None:
        if count == 0:
            raise ApiError("no_images", f"no image in {where}")
        if count > self.max_images:
            raise ApiError("too_many_images", f"{count} images in {where}; at most {self.max_images} per request")

    def _decoded(self, blob: bytes, where: str, budget: PixelBudget) -> Picture:
        try:
            return Picture(where, image=budget.decode(blob, self.max_pixels))
        except ApiError as exc:
            raise _located(exc, where) from None

    def _from_instance(self, item: Any, index: int, budget: PixelBudget) -> Picture:
        where = f"instances[{index}]"
        if not isinstance(item, dict) or len(item) != 1 or not {"b64", "pixels"} & item.keys():
            raise ApiError("invalid_instance", f'{where} must be an object with exactly one key, "b64" or "pixels"')
        if "pixels" in item:
            return Picture(where, pixels=item["pixels"])
        return self._decoded(_base64(item["b64"], where), where, budget)


def _to_views(picture: Picture) -> np.ndarray:
    try:
        if picture.image is not None:
            return image_to_views(picture.image)
        return pixels_to_mnist(picture.pixels)[np.newaxis]
    except ApiError as exc:
        raise _located(exc, picture.where) from None


def _instances(payload: Any) -> list[Any]:
    if not isinstance(payload, dict) or "instances" not in payload:
        raise ApiError("invalid_request", 'the JSON body must be an object with an "instances" list')
    instances = payload["instances"]
    if not isinstance(instances, list):
        raise ApiError("invalid_request", '"instances" must be a list')
    return instances


def _base64(value: Any, where: str) -> bytes:
    """Standard base64, optionally as a data URL (`data:image/png;base64,...`, what browsers produce)."""
    if not isinstance(value, str):
        raise ApiError("invalid_base64", f"{where}.b64 must be a base64 string")
    if value.startswith("data:") and ";base64," in value:
        value = value.split(";base64,", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError("invalid_base64", f"{where}.b64 is not valid base64") from None


def _located(error: ApiError, where: str) -> ApiError:
    return ApiError(error.code, f"{where}: {error.message}", error.headers)

"""Test-time variants: the real gateway answers a photo with the mean of the model's probabilities over the
prepared digit and its variants, and a clean 28x28 digit with the model's own single reading."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image

from bench.photos import clean_png, render_photo
from serving.gateway.images import decode_image, image_to_digit
from serving.gateway.photo_variants import VARIANT_COUNT, average_variants, photo_variants

DIGITS = "/v1/digits:predict"


def model_probabilities(rest_url: str, digits: np.ndarray) -> np.ndarray:
    """The model server's own probabilities [n, 10] for uint8 [n, 28, 28] (TF Serving's REST API, row format)."""
    instances = [{"image": digit[..., np.newaxis].tolist()} for digit in digits]
    answer = requests.post(f"{rest_url}/v1/models/mnist:predict", json={"instances": instances}, timeout=60)
    assert answer.status_code == 200, answer.text
    return np.array([row["probabilities"] for row in answer.json()["predictions"]])


@pytest.fixture(scope="module")
def photo_and_clean(mnist_npz) -> tuple[bytes, bytes]:
    with np.load(mnist_npz) as data:
        digit = data["x_test"][17]
    return render_photo(digit, np.random.default_rng(3))[0], clean_png(digit)


def test_variants_keep_the_digit_first_and_add_thicker_and_sharper_copies() -> None:
    seven = np.zeros((28, 28), dtype=np.uint8)
    seven[6, 8:20] = 255
    seven[7:22, 18] = 200
    variants = photo_variants(seven)
    assert variants.shape == (VARIANT_COUNT, 28, 28) and variants.dtype == np.uint8
    assert np.array_equal(variants[0], seven)
    thickened, sharpened = variants[1].astype(int), variants[2].astype(int)
    assert np.count_nonzero(thickened) > np.count_nonzero(seven) and thickened.max() == 255
    # Sharpening raises the weaker stroke's core towards the peak and leaves no ink where there was none nearby.
    assert sharpened.max() == 255 and sharpened[12, 18] >= 200 and sharpened[0].max() == 0


def test_average_variants_averages_each_pictures_own_rows() -> None:
    probabilities = np.array(
        [[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.6, 0.4], [1.0, 0.0]], dtype=np.float32
    )  # picture 0: 1 row, picture 1: 3 rows, picture 2: 1 row
    mean, digits = average_variants(probabilities, np.array([1, 3, 1]))
    assert np.allclose(mean, [[0.9, 0.1], [0.3, 0.7], [1.0, 0.0]]) and digits.tolist() == [0, 1, 0]


def test_gateway_answers_a_photo_with_the_mean_over_its_variants(gateway, model_server, photo_and_clean) -> None:
    photo, clean = photo_and_clean
    files = [("image", ("photo.jpg", photo)), ("image", ("clean.png", clean))]
    answer = requests.post(f"{gateway.url}{DIGITS}", files=files, timeout=60)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"]["name"] == "mnist" and isinstance(body["model"]["version"], int)
    photo_answer, clean_answer = body["predictions"]

    prepared = image_to_digit(decode_image(photo))
    assert prepared.from_photo
    expected = model_probabilities(model_server.rest_url, photo_variants(prepared.pixels)).mean(axis=0)
    assert np.allclose(photo_answer["probabilities"], expected, atol=1e-5)
    assert photo_answer["digit"] == int(np.argmax(expected))
    assert photo_answer["confidence"] == pytest.approx(float(expected.max()), abs=1e-5)
    assert sum(photo_answer["probabilities"]) == pytest.approx(1.0, abs=1e-4)

    # A clean 28x28 digit is read once, as the model reads it.
    pixels = np.asarray(Image.open(io.BytesIO(clean)))
    assert not image_to_digit(Image.open(io.BytesIO(clean))).from_photo
    single = model_probabilities(model_server.rest_url, pixels[np.newaxis])[0]
    assert np.allclose(clean_answer["probabilities"], single, atol=1e-5)
    assert clean_answer["digit"] == int(np.argmax(single))


def test_gateway_sends_a_photo_as_its_variants_and_a_clean_digit_as_one_row(gateway, photo_and_clean) -> None:
    photo, clean = photo_and_clean

    def rows_sent(blob: bytes, content_type: str) -> float:
        before = batch_rows(gateway.url)
        answer = requests.post(f"{gateway.url}{DIGITS}", data=blob, headers={"Content-Type": content_type}, timeout=60)
        assert answer.status_code == 200, answer.text
        return batch_rows(gateway.url) - before

    assert rows_sent(clean, "image/png") == 1
    assert rows_sent(photo, "image/jpeg") == VARIANT_COUNT


def batch_rows(url: str) -> float:
    """The rows the gateway has sent to the model in all (`gateway_batch_size_sum` for the mnist model)."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gateway_batch_size_sum") and 'model="mnist"' in line
    )

"""Photo-like digits: the generator varies what photos vary, and the real gateway reads them nearly as well as
clean PNGs of the same digits; the training benchmarks run end to end."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from bench.photos import BROAD, FORMATS, clean_png, render_photo
from serving.gateway.images import decode_image, image_to_views
from serving.gateway.photo_views import VIEWS
from tests.processes import REPO_ROOT, python_module

PHOTO_SEED = 5  # not the benchmark's seed: the test set of pictures is not the one the work was measured on
PHOTOS = 300
BATCH = 50


@pytest.fixture(scope="module")
def test_digits(mnist_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(mnist_npz) as data:
        chosen = np.random.default_rng(PHOTO_SEED).choice(len(data["x_test"]), PHOTOS, replace=False)
        return data["x_test"][chosen], data["y_test"][chosen].astype(int)


def test_generator_varies_size_angle_stroke_blur_and_format(test_digits) -> None:
    rng = np.random.default_rng(PHOTO_SEED)
    rendered = [render_photo(digit, rng) for digit in test_digits[0][:120]]
    styles = [style for _, style in rendered]
    assert {style.fmt for style in styles} == set(FORMATS) - {"jpeg-gray"}
    assert min(s.height for s in styles) >= 60 and max(s.height for s in styles) <= 360
    assert min(s.angle for s in styles) < -6 and max(s.angle for s in styles) > 6
    assert min(s.stroke for s in styles) < 0 < max(s.stroke for s in styles)
    assert max(s.blur for s in styles) > 2 and min(s.blur for s in styles) < 0.5
    for blob, style in rendered:
        with Image.open(io.BytesIO(blob)) as image:
            assert image.size == (style.width, style.height)
            expected = {"jpeg": "RGB", "png-gray": "L", "png-transparent": "RGBA"}[style.fmt]
            assert image.mode == expected


def test_broad_generator_adds_what_the_tuned_one_lacks(test_digits) -> None:
    """The held-out ranges: solid pen strokes, other upscaling filters, box blur, grayscale JPEG, wider ranges."""
    rng = np.random.default_rng(PHOTO_SEED)
    rendered = [render_photo(digit, rng, BROAD) for digit in test_digits[0][:120]]
    styles = [style for _, style in rendered]
    assert {style.fmt for style in styles} == set(FORMATS)
    assert {style.solid for style in styles} == {True, False} and {style.box_blur for style in styles} == {True, False}
    assert len({style.upscaling for style in styles}) == 4
    assert min(s.digit_height / s.height for s in styles) < 0.45 and max(s.gamma for s in styles) > np.exp(0.7)
    for blob, style in rendered:
        with Image.open(io.BytesIO(blob)) as image:
            assert image.size == (style.width, style.height)


def gateway_accuracy(url: str, blobs: list[bytes], labels: np.ndarray) -> float:
    digits = []
    for start in range(0, len(blobs), BATCH):
        files = [("image", (f"{i}.img", blob)) for i, blob in enumerate(blobs[start : start + BATCH])]
        answer = requests.post(f"{url}/v1/digits:predict", files=files, timeout=120)
        assert answer.status_code == 200, answer.text
        digits += [p["digit"] for p in answer.json()["predictions"]]
    return float(np.mean(np.array(digits) == labels))


@pytest.mark.slow
def test_gateway_reads_photo_like_digits_nearly_as_well_as_clean_ones(gateway, test_digits) -> None:
    digits, labels = test_digits
    rng = np.random.default_rng(PHOTO_SEED)
    photos = [render_photo(digit, rng)[0] for digit in digits]
    clean = gateway_accuracy(gateway.url, [clean_png(digit) for digit in digits], labels)
    photo = gateway_accuracy(gateway.url, photos, labels)
    # The targets are 97% and 0.99x clean on thousands of pictures; 300 pictures allow about +-1%.
    assert photo >= 0.955 and photo >= 0.975 * clean, (photo, clean)


@pytest.mark.slow
def test_gateway_answers_a_photo_with_the_mean_over_its_views_and_a_clean_digit_with_one_reading(
    gateway, model_server, test_digits
) -> None:
    """A photo's probabilities are the mean of the model's over its seven views; an MNIST PNG is read once."""
    digits, _ = test_digits
    photo, clean = render_photo(digits[2], np.random.default_rng(PHOTO_SEED))[0], clean_png(digits[3])
    files = [("image", ("photo.img", photo)), ("image", ("clean.png", clean))]
    answer = requests.post(f"{gateway.url}/v1/digits:predict", files=files, timeout=60)
    assert answer.status_code == 200, answer.text
    rows = [image_to_views(decode_image(blob)) for blob in (photo, clean)]
    assert [len(views) for views in rows] == [VIEWS, 1]
    direct = requests.post(
        f"{model_server.rest_url}/v1/models/mnist:predict",
        json={"instances": np.concatenate(rows)[..., np.newaxis].tolist()},
        timeout=60,
    )
    model = np.array([row["probabilities"] for row in direct.json()["predictions"]])
    expected = [model[:VIEWS].mean(axis=0), model[VIEWS]]
    predictions = answer.json()["predictions"]
    for prediction, probabilities in zip(predictions, expected, strict=True):
        np.testing.assert_allclose(prediction["probabilities"], probabilities, atol=2e-6)
        assert prediction["digit"] == int(np.argmax(probabilities))
    assert not np.allclose(model[0], expected[0], atol=1e-4)  # the views did change the photo's answer


@pytest.mark.slow
def test_gateway_reads_the_most_photos_a_request_may_hold_in_several_predicts(gateway, mnist_npz: Path) -> None:
    """256 photos are 1,792 model rows: more than one Predict may carry (the model server takes 1,337 MNIST rows
    per input, TF Serving's batching 1,024), so they go in parts; each answer is the one the photo gets alone."""
    with np.load(mnist_npz) as data:
        digits, labels = data["x_test"][:256], data["y_test"][:256]
    rng = np.random.default_rng(PHOTO_SEED)
    photos = [render_photo(digit, rng)[0] for digit in digits]

    def post(blobs: list[bytes]) -> list[dict]:
        files = [("image", (f"{i}.img", blob)) for i, blob in enumerate(blobs)]
        answer = requests.post(f"{gateway.url}/v1/digits:predict", files=files, timeout=120)
        assert answer.status_code == 200, answer.text
        return answer.json()["predictions"]

    together = post(photos)
    assert len(together) == 256 and np.mean([p["digit"] for p in together] == labels) > 0.9
    for start in (0, 250):  # in the first part and the last (rows 1,750-1,791)
        alone = post(photos[start : start + 6])
        for joint, single in zip(together[start : start + 6], alone, strict=True):
            np.testing.assert_allclose(joint["probabilities"], single["probabilities"], atol=1e-5)


@pytest.mark.slow
def test_gateway_reads_a_faint_digit_as_it_reads_the_dark_one_and_refuses_the_blank_sheet(gateway, test_digits) -> None:
    """Pale ink (24 levels on paper of tone 200 with noise of 1.5 levels) is a digit, not a blank image."""
    digit = test_digits[0][0]
    coverage = np.asarray(Image.fromarray(digit).resize((112, 112), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    noise = np.random.default_rng(PHOTO_SEED).normal(0, 1.5, coverage.shape)

    def read(contrast: float) -> requests.Response:
        sheet = np.clip(200.0 - contrast * coverage + noise, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(sheet).save(buffer, "PNG")
        headers = {"Content-Type": "image/png"}
        return requests.post(f"{gateway.url}/v1/digits:predict", data=buffer.getvalue(), headers=headers, timeout=60)

    faint, dark, blank = read(24.0), read(180.0), read(0.0)
    assert faint.status_code == 200 and dark.status_code == 200, (faint.text, dark.text)
    assert faint.json()["predictions"][0]["digit"] == dark.json()["predictions"][0]["digit"] == test_digits[1][0]
    assert blank.status_code == 422 and blank.json()["error"]["code"] == "blank_image"


@pytest.mark.slow
def test_photo_benchmark_measures_every_lever(trained_models: Path, mnist_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "photos.json"
    model = f"quick={trained_models / 'mnist' / '1'}"
    command = python_module(
        "bench.photo_accuracy", "--data", str(mnist_npz), "--model", model, "--count", "60", "--out", str(out)
    )
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    levers = [
        "all steps",
        "without adaptive background",
        "without connected ink",
        "without stroke normalisation",
        "without even ink strength",
        "without test-time views",
        "MNIST procedure only",
    ]
    for generator, seed in (("standard", 0), ("broad", 1)):
        own = [row for row in rows if row["generator"] == generator]
        assert [row["preprocessing"] for row in own] == levers and {row["seed"] for row in own} == {seed}
        assert len({row["clean_accuracy"] for row in own}) == 1 and own[0]["clean_accuracy"] > 0.9
    for row in rows:  # 60 pictures: every format of its generator occurs (see test_generator_*)
        expected = set(FORMATS) - ({"jpeg-gray"} if row["generator"] == "standard" else set())
        assert 0 < row["photo_accuracy"] <= 1 and set(row["by_format"]) == expected
        assert all(0 <= accuracy <= 1 for accuracy in row["by_format"].values())
    for row in (row for row in rows if row["preprocessing"] == "all steps"):
        blur = row["error_by_factor"]["blur_mnist_px"]
        assert sum(bucket["pictures"] for bucket in blur) == 60 and all(0 <= b["photo_error"] <= 1 for b in blur)
    assert {path.name for path in tmp_path.glob("photo-failures-*.png")} == {
        "photo-failures-quick-standard.png",
        "photo-failures-quick-broad.png",
    }
    assert "PASS" in done.stdout or "MISS" in done.stdout


@pytest.mark.slow
def test_training_benchmark_curve_and_job(mnist_npz: Path, tmp_path: Path) -> None:
    out = tmp_path / "train.json"
    command = python_module(
        "bench.train",
        "--data",
        str(mnist_npz),
        "--epochs",
        "2",
        "--skip",
        "anomaly",
        "--job-runs",
        "1",
        "--out",
        str(out),
    )
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    epochs = results["mnist"]["epochs"]
    assert [row["epoch"] for row in epochs] == [1, 2]
    assert 0 < epochs[0]["train_seconds"] < epochs[1]["train_seconds"]
    assert set(results["mnist"]["seconds_to_accuracy"]) == {"97.0%", "98.0%", "98.5%", "99.0%"}
    [run] = results["mnist_job"]["runs"]
    assert run["wall_seconds"] > run["fit_seconds"] > 0 and 0.5 < run["test_accuracy"] <= 1
    # No silent minute after the last epoch: the job says it is scoring (a few seconds on a busy machine).
    assert run["after_last_epoch_seconds"] < 10, run

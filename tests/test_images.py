"""serving/gateway/images.py: decoding uploads safely and turning pictures of digits into MNIST arrays."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from serving.gateway.errors import ApiError
from serving.gateway.images import decode_image, image_to_mnist, pixels_to_mnist
from tests.badinput_corpus import png_declaring
from tests.processes import REPO_ROOT

EXIF_ORIENTATION = 0x0112


def preprocess_digit(data: bytes, max_pixels: int) -> np.ndarray:
    """Uploaded bytes -> MNIST-style digit, the way the gateway handles each uploaded image."""
    return image_to_mnist(decode_image(data, max_pixels=max_pixels))


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def draw_seven(
    size: tuple[int, int],
    box: tuple[int, int, int, int],
    *,
    ink: object = 0,
    paper: object = 255,
    mode: str = "L",
    width: int | None = None,
) -> Image.Image:
    """A '7' (top bar + slanted stem) drawn inside `box` = (left, top, right, bottom)."""
    image = Image.new(mode, size, paper)
    left, top, right, bottom = box
    stroke = width or max(2, (bottom - top) // 10)
    pen = ImageDraw.Draw(image)
    pen.line([(left, top), (right, top)], fill=ink, width=stroke)
    pen.line([(right, top), (left + (right - left) // 3, bottom)], fill=ink, width=stroke)
    return image


def centre_of_mass(digit: np.ndarray) -> tuple[float, float]:
    mass = digit.astype(np.float64)
    total = mass.sum()
    rows = (mass.sum(axis=1) * np.arange(mass.shape[0])).sum() / total
    cols = (mass.sum(axis=0) * np.arange(mass.shape[1])).sum() / total
    return float(rows), float(cols)


def ink_box(digit: np.ndarray, above: int = 0) -> tuple[int, int]:
    """Height and width of the bounding box of the pixels brighter than `above`."""
    rows = np.flatnonzero((digit > above).any(axis=1))
    cols = np.flatnonzero((digit > above).any(axis=0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def assert_mnist_style(digit: np.ndarray) -> None:
    assert digit.dtype == np.uint8 and digit.shape == (28, 28)
    assert digit.max() == 255
    height, width = ink_box(digit)
    assert max(height, width) <= 21 and max(height, width) >= 19
    rows, cols = centre_of_mass(digit)
    assert abs(rows - 14) <= 0.5 and abs(cols - 14) <= 0.5
    assert np.median(digit) == 0  # black background


def shifted_mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |a - b| after the best shift of a by at most one pixel each way (centring rounds to a pixel)."""
    return min(
        float(np.abs(np.roll(a, (dy, dx), axis=(0, 1)).astype(np.int32) - b).mean())
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )


@pytest.fixture(scope="module")
def mnist_test(mnist_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(mnist_npz) as data:
        return data["x_test"], data["y_test"]


@pytest.fixture(scope="module")
def reference_seven() -> np.ndarray:
    """The digit from a plain black-on-white PNG; other renderings of the same drawing must match it."""
    return preprocess_digit(encode(draw_seven((300, 300), (60, 50, 240, 250))), 4_000_000)


# ---------------------------------------------------------------- MNIST itself


def test_mnist_test_digits_pass_through_bit_identical(mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    images, _ = mnist_test
    unchanged = sum(np.array_equal(image_to_mnist(Image.fromarray(digit)), digit) for digit in images)
    assert unchanged == len(images) == 10_000
    # also after a PNG round trip through the whole byte path
    for digit in images[500:550]:
        assert np.array_equal(preprocess_digit(encode(Image.fromarray(digit)), 4_000_000), digit)


def test_rerendered_mnist_digit_comes_back_close(mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    """Upscaled 10x and inverted (black ink on white paper) as PNG, then preprocessed again."""
    images, _ = mnist_test
    differences = []
    for digit in images[:200]:
        paper = Image.fromarray(255 - digit).resize((280, 280), Image.Resampling.NEAREST)
        again = preprocess_digit(encode(paper), 4_000_000)
        rows, cols = centre_of_mass(again)
        assert abs(rows - 14) <= 0.5 and abs(cols - 14) <= 0.5
        assert abs(ink_box(again, 64)[0] - ink_box(digit, 64)[0]) <= 1
        differences.append(shifted_mean_abs_diff(again, digit))
    # on a 0..255 scale: typical digits differ by ~1.5 grey levels per pixel, the worst by ~10
    assert np.median(differences) < 3.0
    assert max(differences) < 16.0


# ---------------------------------------------------------------- pictures of digits


def test_dark_ink_on_white_paper_is_inverted_fitted_and_centred(reference_seven: np.ndarray) -> None:
    assert_mnist_style(reference_seven)
    height, width = ink_box(reference_seven)
    assert height == 20 and 14 <= width <= 20  # the drawing is taller than wide: height fills the box
    assert reference_seven[0, 0] == 0  # paper became black


def test_off_centre_digit_gives_the_same_result(reference_seven: np.ndarray) -> None:
    # near the top-left corner: the top bar runs through the border ring the paper is estimated from
    shifted = draw_seven((300, 300), (15, 15, 195, 215))
    assert np.array_equal(preprocess_digit(encode(shifted), 4_000_000), reference_seven)


def test_large_photo_sized_image(reference_seven: np.ndarray) -> None:
    """A 12-megapixel JPEG, digit in a corner, drawn at 10x the reference scale: same digit, quickly."""
    big = draw_seven(
        (4000, 3000), (2000, 400, 3800, 2400), width=200, ink=(20, 20, 60), paper=(235, 230, 220), mode="RGB"
    )
    data = encode(big, "JPEG", quality=85)
    started = time.perf_counter()
    digit = preprocess_digit(data, 16_000_000)
    elapsed = time.perf_counter() - started
    assert_mnist_style(digit)
    assert shifted_mean_abs_diff(digit, reference_seven) < 6.0
    assert elapsed < 4.0  # about 0.5 s on one idle core


def test_coloured_ink_on_coloured_paper(reference_seven: np.ndarray) -> None:
    blue_on_cream = draw_seven((300, 300), (60, 50, 240, 250), ink=(30, 60, 200), paper=(250, 240, 210), mode="RGB")
    digit = preprocess_digit(encode(blue_on_cream), 4_000_000)
    assert_mnist_style(digit)
    assert shifted_mean_abs_diff(digit, reference_seven) < 3.0


def test_rgba_with_transparent_background_is_composited_on_white(reference_seven: np.ndarray) -> None:
    # black ink, fully transparent elsewhere; the transparent pixels' own colour (black) must not count
    transparent = draw_seven((300, 300), (60, 50, 240, 250), ink=(0, 0, 0, 255), paper=(0, 0, 0, 0), mode="RGBA")
    digit = preprocess_digit(encode(transparent), 4_000_000)
    assert np.array_equal(digit, reference_seven)


def test_light_ink_on_a_transparent_canvas_is_composited_on_black(reference_seven: np.ndarray) -> None:
    # white chalk, transparent elsewhere (the transparent pixels white too): on white it would vanish
    chalk = draw_seven((300, 300), (60, 50, 240, 250), ink=(255, 255, 255, 255), paper=(255, 255, 255, 0), mode="RGBA")
    digit = preprocess_digit(encode(chalk), 4_000_000)
    assert np.array_equal(digit, reference_seven)


def test_jpeg_with_compression_artefacts(reference_seven: np.ndarray) -> None:
    photo = draw_seven((300, 300), (60, 50, 240, 250), ink=(40, 40, 40), paper=(235, 235, 235), mode="RGB")
    digit = preprocess_digit(encode(photo, "JPEG", quality=40), 4_000_000)
    assert_mnist_style(digit)
    assert shifted_mean_abs_diff(digit, reference_seven) < 4.0


def test_noisy_blurred_paper_leaves_a_clean_background(reference_seven: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    clean = np.asarray(draw_seven((400, 400), (80, 60, 320, 330)).filter(ImageFilter.GaussianBlur(2)), dtype=np.float64)
    noisy = np.clip(clean * 0.8 + 30 + rng.normal(0, 8, clean.shape), 0, 255).astype(np.uint8)
    digit = preprocess_digit(encode(Image.fromarray(noisy)), 4_000_000)
    assert_mnist_style(digit)
    assert shifted_mean_abs_diff(digit, reference_seven) < 12.0
    # the paper's noise is gone: nothing lights up far from the strokes
    assert (digit > 0).sum() < 0.45 * (digit.size)


def test_exif_orientation_is_applied(reference_seven: np.ndarray) -> None:
    upright = draw_seven((300, 300), (60, 50, 240, 250))
    # Stored turned a quarter to the left; orientation 6 says "rotate 90 degrees clockwise to display".
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    data = encode(stored, exif=exif.tobytes())
    assert decode_image(data).size == upright.size
    assert np.array_equal(preprocess_digit(data, 4_000_000), reference_seven)
    without_tag = preprocess_digit(encode(stored), 4_000_000)
    assert not np.array_equal(without_tag, reference_seven)


def test_animated_gif_uses_the_first_frame(reference_seven: np.ndarray) -> None:
    first = draw_seven((300, 300), (60, 50, 240, 250))
    second = Image.new("L", (300, 300), 255)
    ImageDraw.Draw(second).ellipse((50, 50, 250, 250), outline=0, width=20)
    data = encode(first, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    assert np.array_equal(preprocess_digit(data, 4_000_000), reference_seven)


def test_sixteen_bit_grayscale_png(reference_seven: np.ndarray) -> None:
    eight_bit = np.asarray(draw_seven((300, 300), (60, 50, 240, 250)), dtype=np.uint16)
    sixteen = Image.fromarray(eight_bit * 257)  # mode I;16
    digit = preprocess_digit(encode(sixteen), 4_000_000)
    assert np.array_equal(digit, reference_seven)


def test_a_28x28_black_on_white_digit_is_processed_not_passed_through(
    mnist_test: tuple[np.ndarray, np.ndarray],
) -> None:
    digit = mnist_test[0][0]
    inverted = image_to_mnist(Image.fromarray(255 - digit))
    assert inverted[0, 0] == 0 and inverted.max() == 255
    assert shifted_mean_abs_diff(inverted, digit) < 8.0


# ---------------------------------------------------------------- blank and broken uploads


@pytest.mark.parametrize("paper", [255, 0, 128])
def test_blank_image_is_422(paper: int) -> None:
    with pytest.raises(ApiError) as caught:
        preprocess_digit(encode(Image.new("L", (200, 100), paper)), 4_000_000)
    assert (caught.value.status, caught.value.code) == (422, "blank_image")


def test_pure_noise_is_blank() -> None:
    noise = np.random.default_rng(0).normal(200, 6, (300, 300)).clip(0, 255).astype(np.uint8)
    with pytest.raises(ApiError) as caught:
        preprocess_digit(encode(Image.fromarray(noise)), 4_000_000)
    assert caught.value.code == "blank_image"


def test_blank_28x28_mnist_style_image_is_422() -> None:
    with pytest.raises(ApiError) as caught:
        image_to_mnist(Image.new("L", (28, 28), 0))
    assert caught.value.status == 422


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (5_000, 5_000), (2_001, 2_000)])
def test_bomb_header_is_413_fast(width: int, height: int) -> None:
    data = png_declaring(width, height)
    assert len(data) < 200
    started = time.perf_counter()
    with pytest.raises(ApiError) as caught:
        decode_image(data, max_pixels=4_000_000)
    assert (caught.value.status, caught.value.code) == (413, "image_too_large")
    assert str(width) in caught.value.message or width == 100_000
    assert time.perf_counter() - started < 0.5


BOMB_MEMORY_PROBE = """
import io
import json
import sys
from pathlib import Path
from PIL import Image
from serving.gateway.errors import ApiError
from serving.gateway.images import decode_image
from tests.test_images import png_declaring

MAX_PIXELS = int(sys.argv[1])

def rise_of_peak_kib(action):
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak resident set size (VmHWM)
    def read(field):
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))
        return int(line.split()[1])
    before = read("VmRSS:")
    action()
    return read("VmHWM:") - before

def real_png(side):
    buffer = io.BytesIO()
    Image.new("L", (side, side), 0).save(buffer, "PNG")  # 36 MB of pixels in about 40 kB
    return buffer.getvalue()

uploads = [png_declaring(side, side) for side in (100_000, 20_000)] + [real_png(6_000)]

def bombs():
    for data in uploads:
        try:
            decode_image(data, max_pixels=MAX_PIXELS)
        except ApiError as error:
            assert error.status == 413, error.status

# the control shows what allocating 100 MB of pixels looks like to this measurement
control = rise_of_peak_kib(lambda: Image.new("L", (10_000, 10_000), 7).load())
print(json.dumps({"bombs": rise_of_peak_kib(bombs), "control": control}))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to reset peak RSS")
def test_bomb_header_allocates_no_pixels() -> None:
    """In a fresh process, with the peak RSS reset: bombs leave it alone, a real 100 MB image moves it."""
    done = subprocess.run(
        [sys.executable, "-c", BOMB_MEMORY_PROBE, "4000000"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rises = json.loads(done.stdout)
    assert rises["control"] > 90_000  # KiB
    assert rises["bombs"] < 3_000


def test_image_at_the_pixel_limit_is_accepted() -> None:
    image = draw_seven((2000, 2000), (500, 500, 1500, 1500))
    assert decode_image(encode(image), max_pixels=4_000_000).size == (2000, 2000)


def test_truncated_png_is_400() -> None:
    data = encode(draw_seven((300, 300), (60, 50, 240, 250)))
    with pytest.raises(ApiError) as caught:
        decode_image(data[: len(data) // 2])
    assert (caught.value.status, caught.value.code) == (400, "invalid_image")


def test_corrupt_png_data_is_400() -> None:
    data = bytearray(encode(draw_seven((300, 300), (60, 50, 240, 250))))
    data[60:90] = b"\xff" * 30  # inside the compressed pixel stream
    with pytest.raises(ApiError) as caught:
        decode_image(bytes(data))
    assert caught.value.status == 400


def test_zero_bytes_is_400() -> None:
    with pytest.raises(ApiError) as caught:
        decode_image(b"")
    assert (caught.value.status, caught.value.code) == (400, "invalid_image")


@pytest.mark.parametrize(
    "data",
    [
        b"hello, this is a text file\n" * 10,
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
    ],
)
def test_not_an_image_is_415(data: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        decode_image(data)
    assert (caught.value.status, caught.value.code) == (415, "unsupported_image_format")


# ---------------------------------------------------------------- {"pixels": ...}


def test_pixels_0_to_255_pass_unchanged(mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    digit = mnist_test[0][7]
    assert np.array_equal(pixels_to_mnist(digit.tolist()), digit)
    as_floats = [[float(v) for v in row] for row in digit.tolist()]
    assert np.array_equal(pixels_to_mnist(as_floats), digit)


def test_pixels_scaled_0_to_1_are_multiplied_by_255(mnist_test: tuple[np.ndarray, np.ndarray]) -> None:
    digit = mnist_test[0][7]
    result = pixels_to_mnist((digit / 255.0).tolist())
    assert result.dtype == np.uint8
    assert np.array_equal(result, digit)


def test_pixels_rounded_to_nearest() -> None:
    grid = [[0.0] * 28 for _ in range(28)]
    grid[3][4], grid[5][6] = 100.4, 100.6
    result = pixels_to_mnist(grid)
    assert (result[3, 4], result[5, 6]) == (100, 101)


def _grid_with(value: object) -> list[list[object]]:
    grid: list[list[object]] = [[0] * 28 for _ in range(28)]
    grid[2][5] = value
    return grid


@pytest.mark.parametrize(
    ("pixels", "fragment"),
    [
        ([[0] * 28] * 27, "28 rows"),
        ([[0] * 27] * 28, "pixels[0]"),
        ("not a list", "28 rows"),
        (None, "28 rows"),
        ({"a": 1}, "28 rows"),
        (_grid_with("7"), "pixels[2][5]"),
        (_grid_with(True), "pixels[2][5]"),
        (_grid_with(None), "pixels[2][5]"),
        (_grid_with([1]), "pixels[2][5]"),
        (_grid_with(float("nan")), "pixels[2][5]"),
        (_grid_with(float("inf")), "pixels[2][5]"),
        (_grid_with(256), "outside 0..255"),
        (_grid_with(-1), "outside 0..255"),
        ([[[0]] * 28] * 28, "pixels[0][0]"),
    ],
)
def test_bad_pixels_are_422_naming_the_place(pixels: object, fragment: str) -> None:
    with pytest.raises(ApiError) as caught:
        pixels_to_mnist(pixels)
    assert (caught.value.status, caught.value.code) == (422, "invalid_pixels")
    assert fragment in caught.value.message

"""The photo steps of the gateway's preprocessing, each shown to do its job and to matter on its own."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from serving.gateway import ink
from serving.gateway.errors import ApiError
from serving.gateway.images import ALL_STEPS, PhotoSteps, image_to_mnist
from serving.gateway.ink import MNIST_STROKE_BAND, WORK_SCALE, normalise_stroke, paper_surface, stroke_width
from serving.gateway.ink_strength import MAX_TRACE_STEPS, TRACE_SIDE, even_ink_strength, keep_connected_ink
from tests.test_images import draw_seven, ink_box, shifted_mean_abs_diff

WITHOUT_BACKGROUND = PhotoSteps(adaptive_background=False, stroke_normalisation=True)
WITHOUT_STROKES = PhotoSteps(adaptive_background=True, stroke_normalisation=False)
WITHOUT_CONNECTED = PhotoSteps(connected_ink=False)
WITHOUT_EVEN = PhotoSteps(even_strength=False)


def reference() -> np.ndarray:
    return image_to_mnist(draw_seven((300, 300), (60, 50, 240, 250), width=20))


def on_uneven_paper(seven: Image.Image) -> Image.Image:
    """Dark ink on paper lit from one side: 90 grey levels from the left edge to the right, plus a bowl."""
    ink = 255 - np.asarray(seven, dtype=np.float32)
    rows, cols = np.mgrid[0:300, 0:300] / 300.0 - 0.5
    paper = 200 + 90 * cols - 60 * rows**2
    return Image.fromarray(np.clip(paper - ink * (paper - 20) / 255, 0, 255).astype(np.uint8))


def test_paper_surface_follows_a_gradient_under_the_ink() -> None:
    rows, cols = np.mgrid[0:240, 0:320] / 240.0
    paper = (180 + 50 * cols - 30 * rows * rows).astype(np.float32)
    picture = paper.copy()
    picture[60:180, 100:120] = 30  # a stroke: a tenth of the picture
    picture[60:75, 100:220] = 30
    surface, noise = paper_surface(picture)
    assert np.abs(surface - paper).max() < 3.0 and noise < 1.0
    colour = np.dstack([picture, picture * 0.9, picture * 0.8])
    assert paper_surface(colour)[0].shape == colour.shape


def test_paper_surface_follows_a_blotch_no_quadratic_can(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shaded patch of 30 levels near one corner (a fold, a finger's shadow) beside and under the ink."""
    rows, cols = np.mgrid[0:240, 0:320] / 240.0
    paper = (200 - 30 * np.exp(-((rows - 0.3) ** 2 + (cols - 0.35) ** 2) / (2 * 0.12**2))).astype(np.float32)
    picture = paper.copy()
    picture[60:180, 150:170] = 30
    ink_free = np.abs(picture - paper) < 1

    def worst_error() -> float:
        surface, noise = paper_surface(picture)
        assert noise < 2.0
        return float(np.abs(surface - paper)[ink_free].max())

    assert worst_error() < 12.0
    monkeypatch.setattr(ink, "SURFACE_BLOCK_MIN_PAPER", 2.0)  # no block qualifies: the quadratic alone
    assert worst_error() > 15.0


def test_adaptive_background_keeps_the_digit_on_uneven_paper() -> None:
    photo = on_uneven_paper(draw_seven((300, 300), (60, 50, 240, 250), width=20))
    adaptive_error = shifted_mean_abs_diff(image_to_mnist(photo, ALL_STEPS), reference())
    assert adaptive_error < 12.0
    # With one paper colour the spread of the sheet's tones reads as noise that drowns the ink: refused.
    with pytest.raises(ApiError) as refused:
        image_to_mnist(photo, WITHOUT_BACKGROUND)
    assert refused.value.code == "blank_image"


def test_stroke_width_of_bars() -> None:
    for width in (3, 6, 12):
        bar = np.zeros((120, 120))
        bar[50 : 50 + width, 10:110] = 1.0
        assert abs(stroke_width(bar) - width) < 0.15 * width + 0.5


def test_thick_and_thin_strokes_are_brought_into_mnist_range() -> None:
    low, high = MNIST_STROKE_BAND
    for pen in (4, 60):  # a fine pen and a broad marker on a 300-px picture
        drawn = np.asarray(draw_seven((300, 300), (60, 50, 240, 250), width=pen), dtype=np.float32)
        ink = (255 - drawn)[40:260, 50:250] / 255.0
        raw = stroke_width(ink) * 20 / max(ink.shape)
        normalised = stroke_width(normalise_stroke(ink)) / WORK_SCALE
        assert not low <= raw <= high
        assert low - 0.35 <= normalised <= high + 0.35, (pen, raw, normalised)


def test_stroke_normalisation_makes_a_marker_digit_look_like_the_pen_digit() -> None:
    marker = draw_seven((300, 300), (60, 50, 240, 250), width=55)
    normalised = image_to_mnist(marker, ALL_STEPS)
    untouched = image_to_mnist(marker, WITHOUT_STROKES)
    assert shifted_mean_abs_diff(normalised, reference()) < 0.8 * shifted_mean_abs_diff(untouched, reference())


def test_faint_shading_does_not_stretch_the_bounding_box() -> None:
    """A soft shadow at a tenth of the ink's strength over half the picture leaves the digit at full size."""
    seven = np.asarray(draw_seven((300, 300), (100, 90, 200, 210), width=14), dtype=np.float32)
    seven[:, :150] -= 25  # half the sheet a little darker than the ink-free paper elsewhere
    digit = image_to_mnist(Image.fromarray(np.clip(seven, 0, 255).astype(np.uint8)), WITHOUT_BACKGROUND)
    assert max(ink_box(digit, 64)) >= 18


def two_pen_seven(stem_strength: float) -> np.ndarray:
    """A seven on white paper (float32 0..255) whose lower half is drawn with a lighter pen."""
    seven = 255 - np.asarray(draw_seven((300, 300), (60, 50, 240, 250), width=20), dtype=np.float32)
    seven[150:] *= stem_strength
    return 255 - seven


def test_weak_ink_is_kept_where_it_continues_a_stroke_and_dropped_where_it_stands_alone() -> None:
    ink = np.zeros((200, 300), dtype=np.float32)
    ink[100:110, 20:120] = 1.0  # a stroke in dark ink ...
    ink[100:110, 120:200] = 0.3  # ... finished with a light pen
    ink[20:40, 250:270] = 0.3  # a blotch as strong as the light pen, on its own
    kept = keep_connected_ink(ink)
    assert np.array_equal(kept[90:120], ink[90:120])
    assert not kept[:60].any()


def test_weak_ink_is_followed_a_bounded_number_of_steps() -> None:
    """A crafted maze of weak ink (a serpentine path of ~8,000 pixels) is traced only MAX_TRACE_STEPS deep."""
    side = TRACE_SIDE
    maze = np.zeros((side, side), dtype=np.float32)
    maze[::2] = 0.2  # rows of weak ink ...
    maze[1::4, -1] = 0.2  # ... joined at alternate ends into one winding path
    maze[3::4, 0] = 0.2
    maze[0, 0] = 1.0  # sure ink at the path's start
    kept = keep_connected_ink(maze) > 0
    assert kept[0].all() and kept[2].all()  # the first turns are followed ...
    assert not kept[-2:].any()  # ... but not the path's far end
    assert MAX_TRACE_STEPS < kept.sum() <= MAX_TRACE_STEPS + 3 * side  # the sure ink's reach plus one row's fringe


def test_a_detached_blotch_does_not_shrink_the_digit() -> None:
    picture = two_pen_seven(0.4)
    picture[255:285, 255:285] -= 0.35 * 255  # a grey blotch in the corner, fainter than either pen
    photo = Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8))
    kept, stretched = image_to_mnist(photo, ALL_STEPS), image_to_mnist(photo, WITHOUT_CONNECTED)
    assert kept[21:, 19:].max() < 64 and max(ink_box(kept, 64)) >= 19
    # Without: the box reaches the blotch in the bottom right corner, and the seven shrinks to make room.
    assert stretched[21:, 19:].max() >= 128 and max(ink_box(stretched[:21, :19], 64)) <= 17


def test_a_lighter_second_pen_reaches_the_model_at_full_strength() -> None:
    photo = Image.fromarray(two_pen_seven(0.4).astype(np.uint8))
    evened, uneven = image_to_mnist(photo, ALL_STEPS), image_to_mnist(photo, WITHOUT_EVEN)
    # The stem's lower half: as strong as the bar once evened out, faint without.
    assert evened[22:].max(axis=1).min() >= 230 and uneven[22:].max() < 150
    assert shifted_mean_abs_diff(evened, reference()) < 0.6 * shifted_mean_abs_diff(uneven, reference())


def test_even_ink_strength_does_not_raise_faint_background_to_ink() -> None:
    ink = np.zeros((60, 60), dtype=np.float32)
    ink[20:26, 5:55] = 1.0
    ink[40:, :] = 0.1  # faint leftovers far from any stroke
    evened = even_ink_strength(ink)
    assert np.allclose(evened[20:26, 8:52], 1.0) and evened[45:].max() <= 0.1 / 0.3 + 1e-6


def test_a_one_pixel_tall_picture_a_million_wide_is_read_without_a_huge_array() -> None:
    """The connected-ink trace reduces blocks without padding the short side to the long one's factor (that
    asked NumPy for 29 GiB here, a 500 from a 1 KB PNG)."""
    stripes = np.full((1, 1_000_000), 255, dtype=np.uint8)
    stripes[0, ::3] = 0
    assert image_to_mnist(Image.fromarray(stripes), ALL_STEPS).shape == (28, 28)


def pale_seven(contrast: float, seed: int = 0) -> Image.Image:
    """The reference seven drawn `contrast` grey levels darker than paper of tone 200 with sensor noise (sigma 1.5)."""
    ink = 1.0 - np.asarray(draw_seven((300, 300), (60, 50, 240, 250), width=20), dtype=np.float32) / 255.0
    noise = np.random.default_rng(seed).normal(0, 1.5, ink.shape)
    return Image.fromarray(np.clip(200.0 - contrast * ink + noise, 0, 255).astype(np.uint8))


def test_faint_ink_that_stands_out_from_the_paper_is_read() -> None:
    # 20 levels of ink against noise of 1.5: plain to see, and under the old floor of 32 levels it was refused.
    assert shifted_mean_abs_diff(image_to_mnist(pale_seven(20.0)), reference()) < 12.0
    # The same sheet without the digit is still blank: its noise stands out from nothing.
    with pytest.raises(ApiError) as refused:
        image_to_mnist(pale_seven(0.0))
    assert refused.value.code == "blank_image"

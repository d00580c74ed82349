"""The photo steps of the gateway's preprocessing, each shown to do its job and to matter on its own."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from serving.gateway import ink
from serving.gateway.errors import ApiError
from serving.gateway.images import ALL_STEPS, PhotoSteps, image_to_mnist
from serving.gateway.ink import MNIST_STROKE_BAND, WORK_SCALE, normalise_stroke, paper_surface, stroke_width
from tests.test_images import draw_seven, ink_box, shifted_mean_abs_diff

WITHOUT_BACKGROUND = PhotoSteps(adaptive_background=False, stroke_normalisation=True)
WITHOUT_STROKES = PhotoSteps(adaptive_background=True, stroke_normalisation=False)


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

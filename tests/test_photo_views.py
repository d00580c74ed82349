"""Test-time views of a photo's prepared digit and the mean of the model's answers over them."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from serving.gateway.images import PhotoSteps, image_to_mnist, image_to_views
from serving.gateway.photo_views import VIEWS, average_views, photo_views


def seven_on_paper() -> Image.Image:
    sheet = Image.new("RGB", (200, 240), (215, 205, 190))
    ImageDraw.Draw(sheet).line([(50, 40), (150, 40), (90, 200)], fill=(40, 40, 60), width=14)
    return sheet


def ink_centre(digit: np.ndarray) -> np.ndarray:
    rows, cols = np.indices(digit.shape)
    mass = digit.astype(np.float64)
    return np.array([(rows * mass).sum(), (cols * mass).sum()]) / mass.sum()


def test_the_views_are_the_digit_itself_moved_one_pixel_each_way_and_turned_about_its_centre() -> None:
    digit = image_to_mnist(seven_on_paper())
    views = photo_views(digit)
    assert views.shape == (VIEWS, 28, 28) and views.dtype == np.uint8
    np.testing.assert_array_equal(views[0], digit)
    for view, (right, down) in zip(views[1:5], ((1, 0), (-1, 0), (0, 1), (0, -1)), strict=True):
        np.testing.assert_array_equal(view, np.roll(digit, (down, right), axis=(0, 1)))  # the box leaves a margin
    for view in views[5:]:
        assert not np.array_equal(view, digit)
        assert abs(int(view.astype(int).sum()) - int(digit.astype(int).sum())) < 0.03 * digit.sum()
        assert np.abs(ink_centre(view) - ink_centre(digit)).max() < 0.5


def test_a_photo_is_read_as_its_views_and_an_mnist_digit_once() -> None:
    photo = seven_on_paper()
    np.testing.assert_array_equal(image_to_views(photo), photo_views(image_to_mnist(photo)))
    assert image_to_views(photo, PhotoSteps(test_time_views=False)).shape == (1, 28, 28)
    mnist_digit = image_to_mnist(photo)
    np.testing.assert_array_equal(image_to_views(Image.fromarray(mnist_digit)), mnist_digit[np.newaxis])


def test_average_views_means_each_pictures_own_rows() -> None:
    probabilities = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8], [0.4, 0.6]], dtype=np.float32)
    averaged = average_views(probabilities, np.array([1, 3, 1]))
    np.testing.assert_allclose(averaged, [[1.0, 0.0], [0.7 / 3, 2.3 / 3], [0.4, 0.6]], rtol=1e-6)
    assert average_views(probabilities, np.ones(5, dtype=int)) is probabilities

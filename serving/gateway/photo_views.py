"""Test-time views of a photo's prepared digit, and the average of the model's answers over them.

A photo's crop, centre and angle are estimates made through uneven paper, blur and JPEG blocks; a pixel or a few
degrees off is common, and the small CNN's answer on a borderline digit can turn on that. So a photo is read as
seven views (the digit as prepared, moved one pixel each way and turned by +-8 degrees: shifts and turns the
model's training augmentation covers) and its probabilities are the mean over them. A picture that already is
an MNIST digit was centred by MNIST's own procedure and is read once: that keeps the cheap path at one row per
digit, where seven would cost the throughput (bench/RESULTS.md, "sixth round").
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # pixels (right, down)
TURNS = (8.0, -8.0)  # degrees, about (14, 14), where the preprocessing puts the ink's centre of mass
VIEWS = 1 + len(SHIFTS) + len(TURNS)


def photo_views(digit: np.ndarray) -> np.ndarray:
    """uint8 [VIEWS, 28, 28]: `digit` (uint8 [28, 28]) itself first, then shifted, then turned."""
    image = Image.fromarray(digit)
    moved = [image.rotate(0.0, translate=shift) for shift in SHIFTS]
    turned = [image.rotate(angle, resample=Image.Resampling.BILINEAR) for angle in TURNS]
    return np.stack([digit, *(np.asarray(view) for view in moved + turned)])


def first_rows(views: np.ndarray) -> np.ndarray:
    """Where each picture's rows start, for pictures of `views` rows each, in turn."""
    return np.concatenate(([0], np.cumsum(views)[:-1]))


def average_views(probabilities: np.ndarray, views: np.ndarray) -> np.ndarray:
    """[n, classes]: the mean of `probabilities` ([sum(views), classes], the rows of each picture in turn) over
    each picture's `views` rows."""
    if len(probabilities) == len(views):  # one row per picture: nothing to average
        return probabilities
    return np.add.reduceat(probabilities, first_rows(views), axis=0) / views[:, np.newaxis]

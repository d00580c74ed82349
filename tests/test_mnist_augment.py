"""The MNIST training pipeline: finite passes, fresh augmentation each epoch, reproducible; the ink changes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from training.mnist_augment import AugmentParams, random_ink
from training.mnist_model import MnistParams, make_dataset

tf = pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def digits(mnist_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(mnist_npz) as data:
        return data["x_train"][::25], data["y_train"][::25]  # 200 digits, every class


def batches(dataset) -> list[np.ndarray]:
    return [images.numpy() for images, _ in dataset]


def test_training_pipeline_is_one_finite_pass_with_new_augmentation_each_time(digits) -> None:
    x, y = digits
    params = MnistParams(batch_size=64, seed=3)
    dataset = make_dataset(x, y, params, training=True)
    first, second = batches(dataset), batches(dataset)
    assert [len(b) for b in first] == [64, 64, 64, 8]  # ends by itself: no teardown of an endless iterator
    assert not np.allclose(first[0], second[0])  # another epoch, other shuffles and augmentations
    again = batches(make_dataset(x, y, params, training=True))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))  # same seed, same data
    test = batches(make_dataset(x, y, params, training=False))
    assert np.array_equal(np.concatenate(test)[..., 0], x.astype(np.float32))  # test data untouched


def test_ink_augmentation_thickens_thins_and_keeps_the_peak(digits) -> None:
    images = tf.constant(digits[0][:64, ..., np.newaxis].astype(np.float32))
    seed = tf.constant([1, 2], tf.int64)
    none = AugmentParams(thicken=0.0, thin=0.0, blur=0.0, gamma_log=0.0)
    peak = images.numpy().max(axis=(1, 2, 3), keepdims=True)
    assert np.allclose(random_ink(images, seed, none).numpy(), images.numpy() * 255 / peak, atol=1e-3)
    thick = random_ink(images, seed, replace(none, thicken=1.0)).numpy()
    thin = random_ink(images, seed, replace(none, thin=0.8)).numpy()
    mass = images.numpy().sum(axis=(1, 2, 3))
    assert np.all(thick.sum(axis=(1, 2, 3)) >= mass - 1) and np.mean(thick.sum(axis=(1, 2, 3)) > mass * 1.1) > 0.5
    assert np.all(thin.sum(axis=(1, 2, 3)) <= mass + 1) and np.mean(thin.sum(axis=(1, 2, 3)) < mass * 0.9) > 0.5
    full = random_ink(images, seed, AugmentParams()).numpy()
    assert np.allclose(full.max(axis=(1, 2, 3)), 255.0, atol=0.5)
    assert np.array_equal(full, random_ink(images, seed, AugmentParams()).numpy())

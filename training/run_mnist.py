"""`python -m training mnist`: load MNIST, train the CNN, export a version with its report and card."""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path

from serving import contract as c
from training.devices import DeviceSetup
from training.reporting import card_facts, finish, report_base
from training.settings import MnistSettings


def train_mnist(settings: MnistSettings, devices: DeviceSetup) -> None:
    """Train on settings.data, export a version under settings.out/mnist/."""
    from training import mnist_export, mnist_model
    from training.mnist_data import load_mnist

    started = time.time()
    dataset = load_mnist(settings.data)
    print(f"[mnist] {len(dataset.x_train)} training and {len(dataset.x_test)} test images from {dataset.source}")
    params = (
        mnist_model.MnistParams.quick(settings.seed) if settings.quick else mnist_model.MnistParams(seed=settings.seed)
    )
    if settings.epochs:
        params = dataclasses.replace(params, epochs=settings.epochs)
    model, metrics = mnist_model.train(dataset, params, devices.strategy)
    metrics["wall_seconds"] = round(time.time() - started, 2)
    print(
        f"[mnist] test accuracy {metrics['test_accuracy']:.4f} on {metrics['test_images']} images, "
        f"{metrics['wall_seconds']:.1f}s wall"
    )
    report = report_base("mnist", settings, devices, params, started)
    report.update(metrics=metrics, data={"source": dataset.source, "sha256": dataset.fingerprint()})
    card = functools.partial(write_card, epochs=params.epochs)
    finish("mnist", settings.out, report, lambda tmp: mnist_export.save_mnist(model, tmp, dataset.x_test), card)


def write_card(path: Path, rep: dict, epochs: int) -> None:
    """The version's model_card.md from its training report."""
    from training.model_card import write_model_card

    first, second = rep["parameters"]["filters"]
    write_model_card(
        path,
        "mnist: handwritten digit classifier",
        f"VGG-style CNN (2x[2 conv 3x3 + BN + ReLU] + max-pool, {first} then {second} filters, dense 128, "
        "dropout 0.4) trained with rotation/zoom/shift augmentation and random stroke width, blur and ink "
        "response (the looks of photographed digits after the gateway's preprocessing). Input: MNIST-style "
        "digits (white ink on black, 28x28, centred by mass); scaling to [0, 1] is inside the graph.",
        {
            "test accuracy": rep["metrics"]["test_accuracy"],
            "test images": rep["metrics"]["test_images"],
            "training images": rep["metrics"]["train_images"],
            **card_facts(rep, epochs),
        },
        f"{c.SERVING_SIGNATURE}: {c.IMAGE_INPUT} uint8 [-1,{c.MNIST_SIDE},{c.MNIST_SIDE},1] -> "
        f"{c.PROBABILITIES_OUTPUT} float32 [-1,{c.DIGIT_CLASSES}], {c.DIGIT_OUTPUT} int64 [-1]",
    )

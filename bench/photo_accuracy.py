"""`python -m bench.photo_accuracy`: the digit classifier on photo-like pictures against the same digits as clean PNGs.

Renders `--count` MNIST test digits as photo-like pictures (bench/photos.py), runs them through the gateway's own
decoding and preprocessing (serving/gateway/images.py, a photo read as its test-time views as the gateway reads it:
serving/gateway/photo_views.py) and classifies them, next to the same digits as plain
28x28 PNGs. Two generators: `standard` (seed `--seed`), the set the work was tuned on, and `broad` (other digits,
seed `--seed` + 1), wider ranges and effects the tuning never saw: the check that a gain holds beyond it. Each
lever is measured on its own: models trained with and without the ink augmentation (or the SavedModels given
with --model), and every model under the full preprocessing and with each photo step switched off in turn.
Writes bench-results/photos.json (with each model's error rates by the generator's draws, bench/photo_failures.py)
and, beside it, photo-failures-<model>-<generator>.png (photo-only failures as the model saw them, next to the
clean digits); prints a table.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from bench.machine import save_json
from bench.photo_failures import error_buckets, failure_grid
from bench.photos import BROAD, FORMATS, STANDARD, clean_png, render_photo
from serving.gateway.errors import ApiError
from serving.gateway.images import ALL_STEPS, PhotoSteps, decode_image, image_to_views
from serving.gateway.photo_views import average_views, first_rows

PREPROCESSING = {
    "all steps": ALL_STEPS,
    "without adaptive background": replace(ALL_STEPS, adaptive_background=False),
    "without connected ink": replace(ALL_STEPS, connected_ink=False),
    "without stroke normalisation": replace(ALL_STEPS, stroke_normalisation=False),
    "without even ink strength": replace(ALL_STEPS, even_strength=False),
    "without test-time views": replace(ALL_STEPS, test_time_views=False),
    "MNIST procedure only": PhotoSteps(
        adaptive_background=False,
        connected_ink=False,
        stroke_normalisation=False,
        even_strength=False,
        test_time_views=False,
    ),
}
TRAINED = ("quick", "quick without ink augmentation")
GENERATORS = {"standard": STANDARD, "broad": BROAD}
TARGET_ACCURACY = 0.97
TARGET_RATIO = 0.99


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.photo_accuracy", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="MNIST .npz or IDX folder (default: download with Keras)")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a SavedModel version folder (models/mnist/1) to measure instead of training the quick models; repeatable",
    )
    parser.add_argument("--count", type=int, default=2000, help="test digits rendered (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="picks the digits and draws the renderings")
    parser.add_argument(
        "--generators",
        nargs="+",
        choices=GENERATORS,
        default=list(GENERATORS),
        help="standard: the ranges tuned on; broad: the held-out ranges, seed + 1 (default: both)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results/photos.json"))
    args = parser.parse_args(argv)
    if not 1 <= args.count <= 10_000:
        parser.error("--count must be in 1..10000")
    if any("=" not in spec for spec in args.model):
        parser.error("--model takes NAME=DIR")
    return args


@dataclass(frozen=True)
class Prepared:
    """The model's rows for `n` pictures as the gateway makes them (a photo's views in turn), how many rows
    each picture has, how many were refused (422: a blank digit instead) and the mean milliseconds per picture."""

    rows: np.ndarray
    views: np.ndarray
    refused: int
    ms: float

    def first_views(self) -> np.ndarray:
        """uint8 [n, 28, 28]: each picture as prepared, without its other views."""
        return self.rows[first_rows(self.views)]


def preprocess_all(blobs: list[bytes], steps: PhotoSteps) -> Prepared:
    blank = np.zeros((1, 28, 28), dtype=np.uint8)
    per_picture = []
    refused = 0
    started = time.perf_counter()
    for blob in blobs:
        try:
            per_picture.append(image_to_views(decode_image(blob), steps))
        except ApiError:
            per_picture.append(blank)
            refused += 1
    ms = 1000 * (time.perf_counter() - started) / len(blobs)
    return Prepared(np.concatenate(per_picture), np.array([len(rows) for rows in per_picture]), refused, ms)


def saved_model_classifier(path: str):
    """uint8 [n, 28, 28] -> probabilities [n, 10] through the SavedModel's serving signature, as TF Serving runs it."""
    import tensorflow as tf

    serve = tf.saved_model.load(path).signatures["serving_default"]
    return lambda digits: serve(image=tf.constant(digits[..., np.newaxis]))["probabilities"].numpy()


def read_digits(probabilities_of, prepared: Prepared) -> np.ndarray:
    """The digit read for each picture, as the gateway answers it: the mean probabilities over its views."""
    return np.argmax(average_views(probabilities_of(prepared.rows), prepared.views), axis=1)


def train_quick_classifiers(data, seed: int) -> dict:
    """The quick model (as `python -m training mnist --quick`) and the same without the ink augmentation."""
    from training import mnist_model
    from training.devices import seed_everything, setup_devices

    devices = setup_devices(False)
    classifiers = {}
    for name in TRAINED:
        seed_everything(seed)
        params = mnist_model.MnistParams.quick(seed)
        if name != "quick":
            params = replace(params, augmentation=replace(params.augmentation, ink=False))
        model, _ = mnist_model.train(data, params, devices.strategy)
        classifiers[name] = lambda digits, model=model: model.predict(
            digits[..., np.newaxis].astype(np.float32), batch_size=500, verbose=0
        )
    return classifiers


def render_set(data, count: int, seed: int, generator: str) -> dict:
    """`count` test digits (chosen with `seed`) as photos from one generator, preprocessed every way."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(data.x_test), size=count, replace=False)
    digits = data.x_test[chosen]
    rendered = [render_photo(digit, rng, GENERATORS[generator]) for digit in digits]
    clean = preprocess_all([clean_png(digit) for digit in digits], ALL_STEPS)
    photos = [blob for blob, _ in rendered]
    print(f"[photos] {generator}: {count} pictures rendered, preprocessing them {len(PREPROCESSING)} ways", flush=True)
    return {
        "seed": seed,
        "labels": data.y_test[chosen].astype(np.int64),
        "formats": np.array([style.fmt for _, style in rendered]),
        "styles": [style for _, style in rendered],
        "clean": clean,
        "prepared": {name: preprocess_all(photos, steps) for name, steps in PREPROCESSING.items()},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from training.mnist_data import load_mnist

    data = load_mnist(args.data)
    offsets = {"standard": 0, "broad": 1}
    sets = {name: render_set(data, args.count, args.seed + offsets[name], name) for name in args.generators}
    if args.model:
        classifiers = {name: saved_model_classifier(path) for name, path in (s.split("=", 1) for s in args.model)}
    else:
        classifiers = train_quick_classifiers(data, args.seed)
    rows = []
    for model_name, classify in classifiers.items():
        for generator, photo_set in sets.items():
            labels, formats = photo_set["labels"], photo_set["formats"]
            clean_correct = read_digits(classify, photo_set["clean"]) == labels
            clean_accuracy = float(np.mean(clean_correct))
            for steps_name, prepared in photo_set["prepared"].items():
                correct = read_digits(classify, prepared) == labels
                accuracy = float(np.mean(correct))
                failures = {}
                if steps_name == "all steps":
                    # Where the errors are: by the generator's draws, and a picture of the photo-only failures.
                    failures = {"error_by_factor": error_buckets(photo_set["styles"], correct, clean_correct)}
                    grid = args.out.parent / f"photo-failures-{model_name.replace(' ', '-')}-{generator}.png"
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    failing = np.flatnonzero(clean_correct & ~correct)
                    failure_grid(prepared.first_views(), photo_set["clean"].first_views(), failing, grid)
                rows.append(
                    {
                        "model": model_name,
                        "generator": generator,
                        "seed": photo_set["seed"],
                        "preprocessing": steps_name,
                        "steps": asdict(PREPROCESSING[steps_name]),
                        "photo_accuracy": round(accuracy, 4),
                        "clean_accuracy": round(clean_accuracy, 4),
                        "ratio": round(accuracy / clean_accuracy, 4),
                        "refused": prepared.refused,
                        "preprocess_ms": round(prepared.ms, 2),
                        "by_format": {
                            fmt: round(float(np.mean(correct[formats == fmt])), 4)
                            for fmt in FORMATS
                            if np.any(formats == fmt)
                        },
                        **failures,
                    }
                )
    results = {
        "data": data.source,
        "count": args.count,
        "seed": args.seed,
        "rows": rows,
        "targets": {"photo_accuracy": TARGET_ACCURACY, "ratio": TARGET_RATIO},
    }
    save_json(args.out, results)
    print_table(results)
    print(f"wrote {args.out}")
    return 0


def print_table(results: dict) -> None:
    print(f"\n{results['count']} MNIST test digits per generator: photo-like pictures vs clean PNGs")
    print(f"{'model':<34} {'generator':<9} {'preprocessing':<30} {'photo':>7} {'clean':>7} {'ratio':>6}  target")
    for row in results["rows"]:
        met = row["photo_accuracy"] >= TARGET_ACCURACY and row["ratio"] >= TARGET_RATIO
        print(
            f"{row['model']:<34} {row['generator']:<9} {row['preprocessing']:<30} {row['photo_accuracy']:>7.2%} "
            f"{row['clean_accuracy']:>7.2%} {row['ratio']:>6.3f}  {'PASS' if met else 'MISS'}"
        )


if __name__ == "__main__":
    raise SystemExit(main())

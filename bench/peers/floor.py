"""The CNN's in-process compute floor: the SavedModel's signature run in this process, no serving stack.

    python -m bench.peers.floor --models models --batch-sizes 1 32

Loads `mnist` the way the local model server does (serving/modelserver/servable.py: a TF1 session and one
`make_callable` per signature), then times back-to-back calls per batch size. Prints one JSON line: median
and p99 milliseconds per call, and digits/s = batch size / median, the most these cores can classify.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np


def latest_version(model_dir: Path) -> Path:
    return max((path for path in model_dir.iterdir() if path.name.isdigit()), key=lambda path: int(path.name))


def measure(models: Path, batch_sizes: list[int], calls: int) -> list[dict]:
    from serving.modelserver.servable import Servable

    path = latest_version(models / "mnist")
    run = Servable("mnist", int(path.name), path).runner("serving_default", ["image"])
    rows = []
    for size in batch_sizes:
        images = np.random.default_rng(size).integers(0, 256, (size, 28, 28, 1), dtype=np.uint8)
        for _ in range(max(5, calls // 10)):
            run({"image": images})
        millis = []
        for _ in range(calls):
            started = time.perf_counter()
            run({"image": images})
            millis.append((time.perf_counter() - started) * 1e3)
        median = statistics.median(millis)
        rows.append(
            {
                "batch_size": size,
                "calls": calls,
                "p50_ms": round(median, 3),
                "p99_ms": round(statistics.quantiles(millis, n=100)[98], 3),
                "digits_per_s": round(size * 1e3 / median, 1),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--calls", type=int, default=200, help="timed calls per batch size")
    args = parser.parse_args()
    print(json.dumps(measure(args.models, args.batch_sizes, args.calls)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

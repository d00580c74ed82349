"""How long a fresh Python process takes to import the gateway app, and whether TensorFlow came with it."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

APP_MODULE = "serving.gateway.app"
PROBE = (
    "import json, sys, time\n"
    "started = time.perf_counter()\n"
    f"import {APP_MODULE}\n"
    "seconds = time.perf_counter() - started\n"
    "print(json.dumps({'seconds': seconds, 'tensorflow_loaded': 'tensorflow' in sys.modules}))\n"
)


def measure_import(runs: int = 5) -> dict:
    """Median (and all) of `runs` imports, each in a new interpreter, so no module is cached in memory."""
    samples = []
    for _ in range(runs):
        output = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
        samples.append(json.loads(output.strip().splitlines()[-1]))
    seconds = [sample["seconds"] for sample in samples]
    return {
        "module": APP_MODULE,
        "runs": runs,
        "median_s": round(statistics.median(seconds), 3),
        "all_s": [round(value, 3) for value in seconds],
        "tensorflow_loaded": any(sample["tensorflow_loaded"] for sample in samples),
    }

"""The training report (JSON next to the model), the model card's common facts, and the atomic publish."""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from serving.contract import MODEL_CARD_FILE, REPORT_FILE
from training.devices import DeviceSetup
from training.export import publish_version, write_json
from training.settings import RunSettings


def report_base(name: str, settings: RunSettings, devices: DeviceSetup, params: object, started: float) -> dict:
    """Facts every report carries: what, when, on which device, with which parameters and software."""
    import keras
    import tensorflow as tf

    return {
        "model": name,
        "trained_at": datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds"),
        "device": devices.describe(),
        "mixed_precision": devices.mixed_precision,
        "seed": settings.seed,
        "quick": settings.quick,
        "parameters": dataclasses.asdict(params),
        "software": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
        "host": platform.node(),
    }


def card_facts(report: dict, epochs: int) -> dict[str, object]:
    """The provenance rows both model cards end with."""
    return {
        "data": report["data"]["source"],
        "data sha256": report["data"]["sha256"],
        "device": report["device"],
        "epochs": epochs,
        "seed": report["seed"],
        "trained at": report["trained_at"],
    }


def finish(
    name: str,
    out: Path,
    report: dict,
    write_model: Callable[[Path], None],
    card: Callable[[Path, dict], None],
) -> None:
    """Export atomically (model, card and report all inside the version before it appears), print the report."""
    export_started = time.perf_counter()

    def write(tmp: Path) -> None:
        write_model(tmp)
        card(tmp / MODEL_CARD_FILE, report)

    def stamp(tmp: Path, version: int) -> None:
        report["version"] = version
        report["export_seconds"] = round(time.perf_counter() - export_started, 2)
        write_json(tmp / REPORT_FILE, report)

    version, path = publish_version(out / name, write, stamp)
    print(f"[{name}] exported version {version} to {path}")
    print(json.dumps(report["metrics"], indent=2))

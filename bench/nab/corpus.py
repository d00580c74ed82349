"""The NAB corpus on disk: data files, their labelled windows and published reference scores."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class NabFile:
    """One labelled data file: `key` is NAB's name for it, e.g. `realKnownCause/nyc_taxi.csv`."""

    key: str
    path: Path
    windows: tuple[tuple[float, float], ...]

    @property
    def category(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def stem(self) -> str:
        return Path(self.key).stem


def epoch_seconds(text: str) -> float:
    """NAB's `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC) as epoch seconds."""
    return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC).timestamp()


def labelled_files(nab_dir: Path) -> list[NabFile]:
    """Every data file that has an entry in `labels/combined_windows.json`, in name order."""
    labels = json.loads((nab_dir / "labels" / "combined_windows.json").read_text())
    files = []
    for key in sorted(labels):
        path = nab_dir / "data" / key
        if path.is_file():
            windows = tuple((epoch_seconds(a), epoch_seconds(b)) for a, b in labels[key])
            files.append(NabFile(key, path, windows))
    return files


def read_column(path: Path, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(epoch seconds, float values) of `column` in a NAB-style CSV, rows in file order."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    times = np.array([epoch_seconds(row["timestamp"]) for row in rows])
    return times, np.array([float(row[column]) for row in rows])


def reference_scores(nab_dir: Path, detector: str, nab_file: NabFile) -> tuple[np.ndarray, np.ndarray]:
    """A published detector's (timestamps, anomaly scores) for one file."""
    path = nab_dir / "reference" / detector / nab_file.category / f"{detector}_{Path(nab_file.key).name}"
    return read_column(path, "anomaly_score")

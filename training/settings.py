"""What each training command is told, as typed settings: the CLI maps flags to these, the library reads them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunSettings:
    """What every training command takes."""

    out: Path = Path("models")  # the model root: versions go to out/<name>/<version>/
    seed: int = 0
    quick: bool = False  # a usable model in about a minute: fewer epochs (mnist: also the narrow network)
    epochs: int | None = None  # None: the model's default (or its quick default)


@dataclass(frozen=True)
class MnistSettings(RunSettings):
    data: str | None = None  # a Keras .npz or a folder of IDX files; None: download with Keras


@dataclass(frozen=True)
class AnomalySettings(RunSettings):
    data: Path | None = None  # a sensor CSV or a folder of them; None: built-in synthetic sensors
    name: str | None = None  # the model's name for one CSV (default `anomaly`)
    train_rows: int | None = None  # learn from the first N rows only
    train_fraction: float | None = None  # or from this first fraction of rows
    max_train_rows: int | None = None  # and from at most N rows
    shard: tuple[int, int] = (0, 1)  # (index, count): a folder trains every count-th file from index

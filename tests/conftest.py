"""Shared fixtures: the shared data folder and models trained once per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.processes import REPO_ROOT, python_module

SHARED_DATA = Path(os.environ.get("SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
MNIST_NPZ = SHARED_DATA / "mnist" / "mnist-5k-train-10k-test.npz"
NAB_DIR = SHARED_DATA / "nab" / "data"
NAB_TRAIN_CSV = NAB_DIR / "artificialNoAnomaly" / "art_daily_small_noise.csv"

pytest_plugins: list[str] = ["tests.fixtures_modelserver", "tests.fixtures_gateway", "tests.fixtures_redis"]


def require(path: Path) -> Path:
    """Skip the calling test, with the reason, when a shared data file is absent."""
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def mnist_npz() -> Path:
    return require(MNIST_NPZ)


@pytest.fixture(scope="session")
def nab_dir() -> Path:
    return require(NAB_DIR)


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory with one quick-trained version of `mnist` and of `anomaly`.

    Trained once per session on the shared data (MNIST 5k subset; NAB art_daily_small_noise for the
    anomaly model). Setting TEST_MODELS_DIR to a directory that already holds both models reuses it
    (copied, so tests may add versions) instead of training: handy while developing, never set in CI.
    """
    require(MNIST_NPZ)
    require(NAB_TRAIN_CSV)
    out = tmp_path_factory.mktemp("models")
    cached = os.environ.get("TEST_MODELS_DIR")
    if cached and (Path(cached) / "mnist").is_dir() and (Path(cached) / "anomaly").is_dir():
        shutil.copytree(cached, out, dirs_exist_ok=True)
        return out
    for args in (
        ("mnist", "--data", str(MNIST_NPZ)),
        ("anomaly", "--data", str(NAB_TRAIN_CSV)),
    ):
        subprocess.run(
            python_module("training", *args, "--quick", "--out", str(out), "--seed", "1"),
            check=True,
            cwd=REPO_ROOT,
        )
    return out

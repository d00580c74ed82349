"""Load MNIST: Keras' download, a Keras-format `.npz`, or a folder with the four IDX `.gz` files."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.contract import MNIST_SIDE
from training.common import DataError

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
IDX_DTYPE_UBYTE = 0x08


@dataclass(frozen=True)
class MnistData:
    x_train: np.ndarray  # uint8 [n, 28, 28]
    y_train: np.ndarray  # uint8 [n]
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    def fingerprint(self) -> str:
        """sha256 over all arrays: which data a model was trained and measured on."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (optionally gzipped): magic 0x0000 <dtype> <ndim>, big-endian sizes, then data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != IDX_DTYPE_UBYTE:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: header says {shape} but holds {data.size} bytes")
    return data.reshape(shape)


def load_mnist(data: str | None) -> MnistData:
    """`None` downloads the official set with Keras; otherwise an `.npz` file or an IDX folder.

    A folder may lack the training files (the official test set alone is not enough to train): that is an error.
    """
    if data is None:
        return _download()
    path = Path(data)
    if path.is_dir():
        missing = [name for name in IDX_FILES.values() if not (path / name).exists()]
        if missing:
            raise DataError(f"{path}: missing IDX files {', '.join(missing)}")
        arrays = {key: read_idx(path / name) for key, name in IDX_FILES.items()}
        return _checked(**arrays, source=str(path))
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    try:
        with np.load(path) as npz:
            arrays = {key: npz[key] for key in IDX_FILES}
    except KeyError as exc:
        raise DataError(f"{path}: expected arrays x_train, y_train, x_test, y_test ({exc})") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    return _checked(**arrays, source=str(path))


def _download() -> MnistData:
    """The official set through Keras' download (cached in ~/.keras/datasets); offline, one clear DataError."""
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as exc:  # Keras wraps every network failure in a bare Exception
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"could not download MNIST with Keras ({reason}); pass local data instead: --data (with 'mnist') or "
            "--mnist-data (with 'all') FILE.npz (Keras' mnist.npz layout) or a folder with the four IDX .gz files, "
            "e.g. ../shared/data/mnist/mnist-5k-train-10k-test.npz"
        ) from None
    return _checked(x_train, y_train, x_test, y_test, "keras.datasets.mnist")


def _checked(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, source: str
) -> MnistData:
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.ndim != 3 or x.shape[1:] != (MNIST_SIDE, MNIST_SIDE) or len(x) != len(y) or len(x) == 0:
            raise DataError(
                f"{source}: {name} images must be [n, {MNIST_SIDE}, {MNIST_SIDE}] with n labels, "
                f"got {x.shape}, {y.shape}"
            )
    return MnistData(
        x_train.astype(np.uint8),
        y_train.astype(np.uint8),
        x_test.astype(np.uint8),
        y_test.astype(np.uint8),
        source,
    )

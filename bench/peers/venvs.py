"""Each peer's own virtual environment, built from its pinned `bench/peers/<peer>/requirements.txt`.

The peers' dependencies (KServe's FastAPI/uvicorn and protobuf 6, BentoML's own stack) must never touch the
product's `.venv`, so each gets a venv under the results folder (git-ignored), rebuilt only when its
requirements file changes. The KServe venv also gets the repository's protos regenerated for its protobuf
runtime (the checked-in ones are generated for the product's protobuf 7), for the gRPC variant.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent
REPO = PEERS_DIR.parents[1]
PROTOS_DIR = "protos-gen"  # inside a venv: serving/protos/tfs_lite_pb2.py for that venv's protobuf
STAMP = ".requirements"  # inside a venv: the requirements text it was built from


class PeerUnavailable(RuntimeError):
    """A peer's venv could not be built (no network, no wheel for this platform...): the reason."""


def python(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure(peer: str, root: Path) -> Path:
    """The venv of `peer` under `root`, built (minutes, with progress on stdout) if missing or outdated."""
    requirements = PEERS_DIR / peer / "requirements.txt"
    venv = root / peer
    stamp = venv / STAMP
    wanted = requirements.read_text()
    if stamp.exists() and stamp.read_text() == wanted:
        return venv
    print(f"building the {peer} venv in {venv} from {requirements.relative_to(REPO)} (a few minutes)...", flush=True)
    _run([sys.executable, "-m", "venv", str(venv)], f"{peer}: python -m venv")
    _run(
        [str(python(venv)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)],
        f"{peer}: pip install",
    )
    if peer == "kserve":
        (venv / PROTOS_DIR).mkdir(exist_ok=True)
        _run(
            [
                str(python(venv)),
                "-m",
                "grpc_tools.protoc",
                f"-I{REPO}",
                f"--python_out={venv / PROTOS_DIR}",
                str(REPO / "serving" / "protos" / "tfs_lite.proto"),
            ],
            f"{peer}: protoc",
        )
    stamp.write_text(wanted)
    return venv


def _run(args: list[str], what: str) -> None:
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise PeerUnavailable(f"{what} failed ({done.returncode}): {' | '.join(tail)}")

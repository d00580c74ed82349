"""Versioned, atomic SavedModel export: `models/<name>/<version>/`, never seen half-written.

The SavedModel, its warm-up requests, model card and training report are all written into a hidden temporary
folder next to the versions (same filesystem), which is then renamed to the next integer version. TF Serving
polls for integer-named folders only, so it never loads a partial version; a crash leaves at most a hidden
`.export-*` folder, removed by the next export.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from serving.contract import EXPORT_TEMP_PREFIX, version_folders


def existing_versions(model_dir: Path) -> list[int]:
    """Version folders under `model_dir` (complete or not: numbering must skip them all), ascending."""
    return list(version_folders(model_dir))


def publish_version(
    model_dir: Path, write: Callable[[Path], None], stamp: Callable[[Path, int], None] | None = None
) -> tuple[int, Path]:
    """Call `write(tmp_dir)` to fill a fresh temporary folder, then rename it to the next version.

    The one place a version is published: everything the version holds is in the folder before the rename,
    so a poller that sees the version sees all of it. `stamp(tmp_dir, version)` writes what depends on the
    version number (the training report); it runs again with the new number when a concurrent publisher took
    the number first. Returns (version, path). If `write` or `stamp` raises, the temporary folder is removed
    and no version appears. Concurrent publishers never overwrite each other: a rename onto an existing version
    fails and the next number is tried.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(model_dir)
    tmp = Path(tempfile.mkdtemp(prefix=EXPORT_TEMP_PREFIX, dir=model_dir))
    try:
        write(tmp)
        while True:
            version = max(existing_versions(model_dir), default=0) + 1
            target = model_dir / str(version)
            if stamp is not None:
                stamp(tmp, version)
            try:
                os.rename(tmp, target)
            except OSError:
                if target.exists():
                    continue
                raise
            return version, target
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove_stale_temporaries(model_dir: Path) -> None:
    """Drop `.export-*` folders left by a process that died mid-export (older than an hour, to spare live ones)."""
    import time

    for path in model_dir.glob(f"{EXPORT_TEMP_PREFIX}*"):
        if path.is_dir() and time.time() - path.stat().st_mtime > 3600:
            shutil.rmtree(path, ignore_errors=True)


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")

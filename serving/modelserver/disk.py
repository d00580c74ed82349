"""What a model's base path holds: version directories, and a fingerprint of each version's files.

A version is a version folder (serving/contract.py's one rule) holding a SavedModel; anything else, e.g. an
`.export-*` temporary directory, is ignored. The fingerprint (name -> size and modification time of the SavedModel
file and of everything under `variables/`) tells the manager whether a version that failed to load has
changed since (then it is worth another try at once) and which files of a loaded version have gone.
"""

from __future__ import annotations

from pathlib import Path

from serving.contract import SAVED_MODEL_FILES, VARIABLES_DIR, has_saved_model, version_folders

Fingerprint = dict[str, tuple[int, int]]


def versions_on_disk(base_path: Path) -> list[int]:
    """Version folders that hold a SavedModel, ascending; raises OSError when base_path is unreadable."""
    return [version for version, path in version_folders(base_path).items() if has_saved_model(path)]


def fingerprint(version_path: Path) -> Fingerprint:
    """Relative name -> (size, mtime_ns) of the SavedModel file and the files under variables/; {} if unreadable."""
    files: Fingerprint = {}
    try:
        candidates = [version_path / name for name in SAVED_MODEL_FILES]
        variables = version_path / VARIABLES_DIR
        if variables.is_dir():
            candidates.extend(path for path in variables.rglob("*") if path.is_file())
        for path in candidates:
            if path.is_file():
                stat = path.stat()
                files[str(path.relative_to(version_path))] = (stat.st_size, stat.st_mtime_ns)
    except OSError:
        return {}
    return files


def missing_files(version_path: Path, loaded: Fingerprint) -> list[str]:
    """The files of `loaded` (a fingerprint taken at load time) that no longer exist."""
    return sorted(name for name in loaded if not (version_path / name).is_file())

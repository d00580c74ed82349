"""Sample the processes under load with py-spy (`pip install py-spy`, in the test extra) and summarise where
the time goes: the frames most often on top of the stack (self time) and the project functions most often
anywhere on it (inclusive time)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

PROJECT_PREFIXES = ("serving/", "bench/")
LINE_NUMBER = re.compile(r":\d+\)$")  # "f (file.py:12)" -> "f (file.py)": one entry per function


def py_spy() -> str:
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("py-spy not found: pip install the test extra (py-spy is pinned there)")
    return found


def start_recording(pid: int, seconds: float, out: Path, gil_only: bool, rate: int = 100) -> subprocess.Popen:
    """py-spy record in the background, collapsed-stack output; --nonblocking so the target never pauses.

    `gil_only` samples only the thread holding the GIL: the Python work of a process whose other threads
    mostly wait (gateway workers). Without it, threads that wait inside C calls are sampled too, which is
    what shows a model server's time inside TensorFlow (which runs without the GIL).
    """
    args = [
        py_spy(),
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, round(seconds))),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--nonblocking",
        "--output",
        str(out),
        *(["--gil"] if gil_only else []),
    ]
    out.unlink(missing_ok=True)
    with open(out.with_suffix(".log"), "wb") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)


def finish_recording(recorder: subprocess.Popen, out: Path) -> dict:
    """Wait for py-spy, then the summary of what it recorded, or why it recorded nothing."""
    recorder.wait(60)
    if recorder.returncode != 0 or not out.exists():
        lines = out.with_suffix(".log").read_text(errors="replace").strip().splitlines()
        return {"samples": 0, "error": lines[-1] if lines else f"py-spy exited with {recorder.returncode}"}
    return summarize(out)


def summarize(collapsed: Path, top: int = 12) -> dict:
    """Shares of samples: leaf frames (self) and project frames anywhere in a stack (inclusive)."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [LINE_NUMBER.sub(")", frame) for frame in stack.split(";")]
        total += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            if any(prefix in frame for prefix in PROJECT_PREFIXES):
                inclusive[frame] += count
    if not total:
        return {"samples": 0}
    return {
        "samples": total,
        "self": _shares(self_time, total, top),
        "inclusive_project": _shares(inclusive, total, top),
    }


def _shares(counter: Counter[str], total: int, top: int) -> list[dict]:
    return [{"frame": frame, "share": round(count / total, 3)} for frame, count in counter.most_common(top)]

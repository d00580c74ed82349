"""What every benchmark records about the machine it ran on, and how it saves its results as JSON."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any


def machine_load() -> list[float]:
    """The 1, 5 and 15-minute load averages: a benchmark on shared cores is read against them."""
    return [round(value, 2) for value in os.getloadavg()]


def machine_facts() -> dict[str, Any]:
    """CPUs, platform, Python and the load average before the run (add `load_average_after` at the end)."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": machine_load(),
    }


def save_json(path: Path, results: dict[str, Any]) -> None:
    """`results` as indented JSON at `path`, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")

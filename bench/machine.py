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


def cpu_model() -> str:
    """The CPU as /proc/cpuinfo names it, with its family and model numbers ("unknown" where there is none).

    Sessions have run on hosts 1.8x apart in speed for the same code, so each result says which CPU it ran on.
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", "unknown")
    return f"{name} (family {fields['cpu family']}, model {fields['model']})" if "cpu family" in fields else name


def machine_facts() -> dict[str, Any]:
    """CPUs, platform, Python and the load average before the run (add `load_average_after` at the end)."""
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": machine_load(),
    }


def save_json(path: Path, results: dict[str, Any]) -> None:
    """`results` as indented JSON at `path`, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")

"""nab.png: the normalised score per category and profile, and each file's standard score."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.nab.scorer import PROFILES


def plot_results(results: dict, path: Path) -> None:
    figure, (by_category, by_file) = plt.subplots(1, 2, figsize=(15, 6), width_ratios=[1, 2])
    groups = {
        name: scores
        for name, scores in {"all": results["normalised"], **results["by_category"]}.items()
        if scores is not None
    }
    profiles = [profile.name for profile in PROFILES]
    width = 0.8 / len(profiles)
    for k, profile in enumerate(profiles):
        by_category.bar(
            [i + k * width for i in range(len(groups))], [g[profile] for g in groups.values()], width, label=profile
        )
    by_category.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))], list(groups), rotation=30, ha="right")
    by_category.set_ylabel("normalised NAB score")
    by_category.legend(fontsize=8)
    files = results["files"]
    by_file.barh(range(len(files)), [f["scores"]["standard"]["score"] for f in files], color="tab:blue")
    by_file.set_yticks(range(len(files)), [f["file"].split("/")[-1] for f in files], fontsize=6)
    by_file.axvline(0, color="black", linewidth=0.5)
    by_file.set_xlabel("raw standard-profile score per file (detected windows minus misses and false alarms)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)

"""Draw a scored series: values with anomalous segments shaded, the score and threshold beneath.

Imports matplotlib (Agg backend, no display needed); only `--plot` loads this module.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd

from client.results import SeriesScore


def plot_scored_series(values: pd.DataFrame, result: SeriesScore, out: Path, title: str = "") -> None:
    """Write a PNG of `values` (one column per sensor, rows in the order that was scored) and `result`."""
    times = [p.timestamp for p in result.points]
    if len(times) != len(values):
        raise ValueError(f"{len(values)} rows but {len(times)} scored points")
    fig, (series_ax, score_ax) = plt.subplots(
        2, 1, sharex=True, figsize=(12, 6), height_ratios=(3, 1), layout="constrained"
    )
    for column in values.columns:
        series_ax.plot(times, values[column].to_numpy(), linewidth=0.8, label=str(column))
    for index, segment in enumerate(result.anomalies):
        for ax in (series_ax, score_ax):
            ax.axvspan(
                segment.start, segment.end, color="tab:red", alpha=0.25,
                label="anomaly" if index == 0 and ax is series_ax else None,
            )
    series_ax.set_ylabel("value")
    series_ax.legend(loc="upper left")
    series_ax.set_title(title or f"{len(result.anomalies)} anomalous segment(s)")
    scores = [float("nan") if p.score is None else p.score for p in result.points]
    score_ax.plot(times, scores, color="black", linewidth=0.8, label="score")
    score_ax.axhline(result.threshold, color="tab:red", linestyle="--", linewidth=0.8, label="threshold")
    score_ax.set_ylim(0, 1.05)
    score_ax.set_ylabel("score")
    score_ax.legend(loc="upper left")
    fig.savefig(out, dpi=100)
    plt.close(fig)

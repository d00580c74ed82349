"""Draw a scored series: values with events shaded, the surprise -log10(1 - score) and threshold beneath.

Imports matplotlib (Agg backend, no display needed); only `--plot` loads this module.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from client.results import SeriesScore


def plot_scored_series(values: pd.DataFrame, result: SeriesScore, out: Path, title: str = "") -> None:
    """Write a PNG of `values` (one column per sensor, rows in the order that was scored) and `result`.

    The score panel shows -log10(1 - score) (1 = one normal point in ten scores this high, 6 = one in a
    million), so the threshold sits inside the panel instead of on its top edge; events are shaded from
    their alarm to their last flagged point, with a marker at each alarm.
    """
    times = [p.timestamp for p in result.points]
    if len(times) != len(values):
        raise ValueError(f"{len(values)} rows but {len(times)} scored points")
    fig, (series_ax, score_ax) = plt.subplots(
        2, 1, sharex=True, figsize=(12, 6), height_ratios=(3, 2), layout="constrained"
    )
    width = 0.8 if len(times) < 2000 else 0.4  # thin lines keep a long series from becoming a solid band
    for column in values.columns:
        series_ax.plot(times, values[column].to_numpy(), linewidth=width, label=str(column))
    for index, event in enumerate(result.anomalies):
        for ax in (series_ax, score_ax):
            ax.axvspan(
                event.start,
                event.end,
                color="tab:red",
                alpha=0.25,
                label="event" if index == 0 and ax is series_ax else None,
            )
            ax.axvline(event.start, color="tab:red", linewidth=0.8)
    series_ax.set_ylabel("value")
    series_ax.legend(loc="upper left")
    series_ax.set_title(title or f"{len(result.anomalies)} event(s)")
    scores = np.array([np.nan if p.score is None else p.score for p in result.points], dtype=np.float64)
    surprise = -np.log10(np.clip(1.0 - scores, 1e-9, 1.0))
    score_ax.plot(times, surprise, color="black", linewidth=width, label="-log10(1 - score)")
    limit = -np.log10(max(1.0 - result.threshold, 1e-9))
    score_ax.axhline(limit, color="tab:red", linestyle="--", linewidth=0.8, label=f"threshold {result.threshold:.6g}")
    score_ax.set_ylim(0, max(limit * 1.5, float(np.nanmax(surprise, initial=0.0)) * 1.05, 1.0))
    score_ax.set_ylabel("surprise")
    score_ax.legend(loc="upper left")
    fig.savefig(out, dpi=100)
    plt.close(fig)

"""Read the gateway's own Prometheus histograms around a measurement: where a request's time went
(`gateway_stage_duration_seconds` per stage) and how many images shared a Predict (`gateway_batch_size`)."""

from __future__ import annotations

import re
import urllib.request

SAMPLE = re.compile(r"^(?P<name>\w+?)_(?P<kind>sum|count)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
LABEL = re.compile(r'(\w+)="([^"]*)"')

Snapshot = dict[tuple[str, str, tuple[tuple[str, str], ...]], float]


def snapshot(gateway_url: str) -> Snapshot:
    """Every histogram's `_sum` and `_count` sample on the gateway's /metrics page (all workers merged)."""
    with urllib.request.urlopen(f"{gateway_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: Snapshot = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            labels = tuple(sorted(LABEL.findall(match["labels"])))
            samples[(match["name"], match["kind"], labels)] = float(match["value"])
    return samples


def mean_between(before: Snapshot, after: Snapshot, name: str, **labels: str) -> float | None:
    """Mean of histogram `name` (matching `labels`) over the observations made between two snapshots."""
    totals = {"sum": 0.0, "count": 0.0}
    for (metric, kind, sample_labels), value in after.items():
        if metric == name and set(labels.items()) <= set(sample_labels):
            totals[kind] += value - before.get((metric, kind, sample_labels), 0.0)
    return totals["sum"] / totals["count"] if totals["count"] else None


def stage_means_ms(before: Snapshot, after: Snapshot, endpoint: str) -> dict[str, float]:
    """Mean milliseconds per request of the whole request and of each stage the gateway timed."""
    stages = {
        dict(labels).get("stage")
        for (metric, _, labels) in after
        if metric == "gateway_stage_duration_seconds" and dict(labels).get("endpoint") == endpoint
    }
    means = {"request": mean_between(before, after, "gateway_request_duration_seconds", endpoint=endpoint)}
    for stage in sorted(stage for stage in stages if stage):
        means[stage] = mean_between(before, after, "gateway_stage_duration_seconds", endpoint=endpoint, stage=stage)
    return {name: round(value * 1e3, 3) for name, value in means.items() if value is not None}

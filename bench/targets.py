"""The serving path's performance targets on the 2-core development machine, checked against one run.

Each target reads its measurement from the results; one that this run did not measure (a scenario or
concurrency level left out) is reported as "n/a" rather than passed or missed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TargetSpec:
    name: str
    limit: float
    unit: str
    at_most: bool  # True: measured <= limit passes; False: measured >= limit passes
    measure: Callable[[dict], float | None]


def _level(results: dict, scenario: str, concurrency: int) -> dict | None:
    levels = results.get("scenarios", {}).get(scenario, {}).get("levels", [])
    return next((row for row in levels if row["concurrency"] == concurrency), None)


def _from_level(scenario: str, concurrency: int, read: Callable[[dict], float]) -> Callable[[dict], float | None]:
    def measure(results: dict) -> float | None:
        row = _level(results, scenario, concurrency)
        return None if row is None else read(row)

    return measure


def _best_items_per_s(scenario: str) -> Callable[[dict], float | None]:
    def measure(results: dict) -> float | None:
        levels = results.get("scenarios", {}).get(scenario, {}).get("levels", [])
        return max((row["items_per_s"] for row in levels), default=None)

    return measure


def _all_errors(results: dict) -> float | None:
    """Failed requests over all levels; a level in which not one request finished counts as one more."""
    rows = [row for scenario in results.get("scenarios", {}).values() for row in scenario["levels"]]
    rows += results.get("microbatching", {}).get("off", {}).get("levels", [])
    return float(sum(row["errors"]["total"] + (row["requests"] == 0) for row in rows)) if rows else None


def _worker_peak_rss(results: dict) -> float | None:
    workers = results.get("memory", {}).get("gateway_workers", [])
    return max((worker["peak_rss_mb"] for worker in workers), default=None)


def _overhead(results: dict) -> float | None:
    return results.get("comparisons", {}).get("gateway_overhead_p50_ms")


def _import_seconds(results: dict) -> float | None:
    return results.get("import", {}).get("median_s")


def _tensorflow_loaded(results: dict) -> float | None:
    loaded = results.get("import", {}).get("tensorflow_loaded")
    return None if loaded is None else float(loaded)


TARGETS = (
    TargetSpec("gateway overhead, p50 over a direct gRPC Predict (1 digit)", 1.5, "ms", True, _overhead),
    TargetSpec(
        "single digits at 16 clients: throughput",
        800,
        "req/s",
        False,
        _from_level("digit_1", 16, lambda row: row["requests_per_s"]),
    ),
    TargetSpec(
        "single digits at 16 clients: p99 latency",
        50,
        "ms",
        True,
        _from_level("digit_1", 16, lambda row: row["latency_ms"]["p99"]),
    ),
    TargetSpec("digits in batches of 32: best throughput", 8000, "digits/s", False, _best_items_per_s("digits_32")),
    TargetSpec(
        "10,080-point series, p50 latency (1 client)",
        300,
        "ms",
        True,
        _from_level("series_10080", 1, lambda row: row["latency_ms"]["p50"]),
    ),
    TargetSpec("errors over every level (non-2xx + socket)", 0, "errors", True, _all_errors),
    TargetSpec("gateway worker peak RSS", 150, "MB", True, _worker_peak_rss),
    TargetSpec("import of the gateway app, median of fresh processes", 1.5, "s", True, _import_seconds),
    TargetSpec("tensorflow in sys.modules after that import (1 = yes)", 0, "", True, _tensorflow_loaded),
)


def evaluate(results: dict, specs: tuple[TargetSpec, ...] = TARGETS) -> list[dict]:
    rows = []
    for spec in specs:
        measured = spec.measure(results)
        if measured is None:
            status = "n/a"
        else:
            passed = measured <= spec.limit if spec.at_most else measured >= spec.limit
            status = "PASS" if passed else "MISS"
        rows.append(
            {
                "target": spec.name,
                "limit": f"{'<=' if spec.at_most else '>='} {spec.limit:g} {spec.unit}",
                "measured": measured,
                "unit": spec.unit,
                "status": status,
            }
        )
    return rows

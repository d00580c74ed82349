"""The issue's targets for the peers comparison, as ratios within one run (bench/targets.py's TargetSpec)."""

from __future__ import annotations

from collections.abc import Callable

from bench import targets as base
from bench.targets import TargetSpec

# The stacks a user would otherwise pick; the minimum (model server alone) is a reference, not a peer.
PICKABLE = ("kserve-rest", "kserve-grpc", "bentoml")
LEVEL = "16"


def _row(results: dict, peer: str, scenario: str, level: str = LEVEL) -> dict | None:
    return results.get("peers", {}).get(peer, {}).get(scenario, {}).get(level)


def _best_peer(results: dict, scenario: str) -> dict | None:
    rows = [row for peer in PICKABLE if (row := _row(results, peer, scenario)) is not None]
    return max(rows, key=lambda row: row["items_per_s"], default=None)


def _throughput_over_best_peer(scenario: str) -> Callable[[dict], float | None]:
    def measure(results: dict) -> float | None:
        ours, best = _row(results, "ours", scenario), _best_peer(results, scenario)
        return None if ours is None or best is None else round(ours["items_per_s"] / best["items_per_s"], 2)

    return measure


def _p99_over_best_peer(results: dict) -> float | None:
    ours, best = _row(results, "ours", "digit_1"), _best_peer(results, "digit_1")
    return None if ours is None or best is None else round(ours["p99_ms"] / best["p99_ms"], 2)


def _gateway_cpu(results: dict) -> float | None:
    ours = _row(results, "ours", "digit_1")
    return None if ours is None else ours["peer_cpu_ms_per_request"]


def _overhead(results: dict) -> float | None:
    return results.get("overhead", {}).get("overhead_p50_ms")


def _floor_over_ours(results: dict) -> float | None:
    levels = results.get("peers", {}).get("ours", {}).get("digits_32", {})
    floor = next((row for row in results.get("floor", []) if row["batch_size"] == 32), None)
    if not levels or floor is None:
        return None
    return round(floor["digits_per_s"] / max(row["items_per_s"] for row in levels.values()), 2)


def _errors(results: dict) -> float | None:
    rows = [
        row
        for scenarios in results.get("peers", {}).values()
        for levels in scenarios.values()
        for row in levels.values()
    ]
    return float(sum(row["errors"] for row in rows)) if rows else None


TARGETS = (
    TargetSpec(
        "single digits, 16 clients: ours / best peer req/s", 2.0, "x", False, _throughput_over_best_peer("digit_1")
    ),
    TargetSpec("single digits, 16 clients: ours / that peer's p99", 1.0, "x", True, _p99_over_best_peer),
    TargetSpec(
        "32 digits per request, 16 clients: ours / best peer digits/s",
        2.0,
        "x",
        False,
        _throughput_over_best_peer("digits_32"),
    ),
    TargetSpec("gateway CPU per single-digit request (16 clients)", 1.0, "ms", True, _gateway_cpu),
    TargetSpec("gateway overhead over a direct Predict, p50", 1.0, "ms", True, _overhead),
    TargetSpec("in-process floor / ours, digits/s in requests of 32", 2.0, "x", True, _floor_over_ours),
    TargetSpec("errors, every peer and level", 0, "errors", True, _errors),
)


def evaluate(results: dict) -> list[dict]:
    return base.evaluate(results, TARGETS)

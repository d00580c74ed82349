"""Medians over repeats, ratios to ours, and the peers' results as JSON, a plot and printed tables."""

from __future__ import annotations

import statistics
from pathlib import Path

from bench.machine import save_json

JSON_NAME = "peers.json"
PLOT_NAME = "peers.png"
MODEL_SERVER = "model server"
RATIO_FIELDS = (
    "requests_per_s",
    "items_per_s",
    "p50_ms",
    "p99_ms",
    "peer_cpu_ms_per_request",
    "model_server_cpu_ms_per_request",
    "peer_peak_rss_mb",
)


def _own_processes(row: dict) -> dict[str, dict]:
    """The peer's own processes in a level: not the model server, not the load generator."""
    return {
        name: usage
        for name, usage in row["processes"].items()
        if name != MODEL_SERVER and not name.startswith("load generator")
    }


def _cpu_ms_per_request(row: dict, names: list[str]) -> float:
    seconds = sum(row["processes"][name]["cpu_seconds"] or 0.0 for name in names)
    return seconds * 1e3 / row["requests"] if row["requests"] else float("nan")


def median_row(rows: list[dict]) -> dict:
    """One level's medians over its repeats: throughput, latency, CPU ms per request (per process and for the
    peer's processes together), the peer's peak RSS (all its processes, largest over the repeats), errors."""
    own = list(_own_processes(rows[0]))
    answered = [row for row in rows if row["requests"]] or rows  # CPU per request needs answered requests
    return {
        "repeats": len(rows),
        "requests_per_s": round(statistics.median(row["requests_per_s"] for row in rows), 1),
        "items_per_s": round(statistics.median(row["items_per_s"] for row in rows), 1),
        "p50_ms": round(statistics.median(row["latency_ms"]["p50"] for row in rows), 3),
        "p99_ms": round(statistics.median(row["latency_ms"]["p99"] for row in rows), 3),
        # None for the minimum: nothing runs between the client and the model server
        "peer_cpu_ms_per_request": round(statistics.median(_cpu_ms_per_request(row, own) for row in answered), 3)
        if own
        else None,
        "model_server_cpu_ms_per_request": round(
            statistics.median(_cpu_ms_per_request(row, [MODEL_SERVER]) for row in answered), 3
        ),
        "cpu_ms_per_request_by_process": {
            name: round(statistics.median(_cpu_ms_per_request(row, [name]) for row in answered), 3)
            for name in [*own, MODEL_SERVER]
        },
        "peer_peak_rss_mb": round(
            max(sum(usage["peak_rss_mb"] or 0.0 for usage in _own_processes(row).values()) for row in rows), 1
        )
        if own
        else None,
        "errors": sum(row["errors"]["total"] for row in rows),
        # a peer slower than the level's duration answers nothing in it (wrk counts only finished requests)
        "levels_without_answers": sum(row["requests"] == 0 for row in rows),
    }


def ratios(peers: dict) -> dict:
    """peer / ours for each field of each level (req/s under 1: slower than ours; p99 over 1: worse)."""
    ours = peers["ours"]
    out: dict = {}
    for name, scenarios in peers.items():
        if name == "ours":
            continue
        for scenario, levels in scenarios.items():
            for level, row in levels.items():
                base = ours.get(scenario, {}).get(level)
                if base is None:
                    continue
                out.setdefault(name, {}).setdefault(scenario, {})[level] = {
                    field: round(row[field] / base[field], 3) if row[field] is not None and base[field] else None
                    for field in RATIO_FIELDS
                }
    return out


def print_row(label: str, row: dict) -> None:
    latency = row["latency_ms"]
    cpu = "  ".join(f"{name} {usage['cpu_seconds']}s" for name, usage in row["processes"].items())
    print(
        f"{label:<44} c={row['concurrency']:<3} {row['requests_per_s']:>8.1f} req/s {row['items_per_s']:>9.1f} "
        f"digits/s  p50 {latency['p50']:>8.2f}  p99 {latency['p99']:>8.2f} ms  errors {row['errors']['total']}"
        f"  | cpu: {cpu}",
        flush=True,
    )


def write(results: dict, out: Path) -> None:
    save_json(out / JSON_NAME, results)
    plot(results, out / PLOT_NAME)


def plot(results: dict, path: Path) -> None:
    """Per scenario at its highest level: digits/s, p99, and CPU ms per request (peer and model server)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers = results["peers"]
    scenarios = list(next(iter(peers.values())))
    figure, axes = plt.subplots(len(scenarios), 3, figsize=(15, 4.2 * len(scenarios)), squeeze=False)
    for line, scenario in enumerate(scenarios):
        level = max(peers["ours"][scenario], key=int)
        names = [name for name in peers if level in peers[name].get(scenario, {})]
        rows = [peers[name][scenario][level] for name in names]
        colours = ["tab:green" if name == "ours" else "tab:grey" for name in names]
        throughput, latency, cpu = axes[line]
        throughput.bar(names, [row["items_per_s"] for row in rows], color=colours)
        throughput.set_ylabel("digits/s (median)")
        latency.bar(names, [row["p99_ms"] for row in rows], color=colours)
        latency.set_ylabel("p99 latency (ms)")
        latency.set_yscale("log")
        own_cpu = [row["peer_cpu_ms_per_request"] or 0.0 for row in rows]
        cpu.bar(names, own_cpu, label="serving stack", color=colours)
        cpu.bar(
            names,
            [row["model_server_cpu_ms_per_request"] for row in rows],
            color="tab:blue",
            alpha=0.6,
            bottom=own_cpu,
            label="model server",
        )
        cpu.set_ylabel("CPU ms per request")
        cpu.legend(fontsize=8)
        for axis in (throughput, latency, cpu):
            axis.set_title(f"{scenario}, {level} clients")
            axis.tick_params(axis="x", rotation=30, labelsize=8)
            axis.grid(True, axis="y", alpha=0.3)
        floor = next(
            (row for row in results.get("floor", []) if row["batch_size"] == (32 if "32" in scenario else 1)), None
        )
        if floor is not None:
            throughput.axhline(floor["digits_per_s"], color="tab:red", linestyle="--", label="in-process CNN floor")
            throughput.legend(fontsize=8)
    machine = results["machine"]
    figure.suptitle(
        f"peers side by side on {machine['cpus']} CPUs (load average before "
        f"{machine['load_average_before'][0]}), medians of {results['settings']['repeats']} repeats"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def print_summary(results: dict) -> None:
    print(
        "\npeer            scenario   c   req/s  digits/s   p50 ms   p99 ms  stack cpu ms/req  model server"
        "  peak RSS MB  errors"
    )
    for name, scenarios in results["peers"].items():
        for scenario, levels in scenarios.items():
            for level, row in levels.items():
                print(
                    f"{name:<15} {scenario:<9} {level:>3} {row['requests_per_s']:>7.1f} {row['items_per_s']:>9.1f}"
                    f" {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {_number(row['peer_cpu_ms_per_request']):>17}"
                    f" {row['model_server_cpu_ms_per_request']:>13.3f} {_number(row['peer_peak_rss_mb']):>12}"
                    f" {row['errors']:>7}"
                )
    print("\nratios peer / ours (req/s, p99, stack CPU per request, peak RSS)")
    for name, scenarios in results["ratios_to_ours"].items():
        for scenario, levels in scenarios.items():
            for level, ratio in levels.items():
                print(
                    f"  {name:<15} {scenario:<9} c={level:<3} req/s x{ratio['requests_per_s']}  p99 "
                    f"x{ratio['p99_ms']}  cpu x{ratio['peer_cpu_ms_per_request']}  rss x{ratio['peer_peak_rss_mb']}"
                )
    for name, reason in results.get("skipped", {}).items():
        print(f"  {name}: not measured ({reason})")
    print()
    for key, gateway in (("overhead", "gateway"), ("baseline_overhead", "baseline gateway")):
        if overhead := results.get(key):
            print(
                f"one request at a time: {gateway} (PNG) p50 {overhead['gateway_png_1']['p50_ms']} ms, direct gRPC "
                f"Predict p50 {overhead['grpc_1']['p50_ms']} ms: overhead {overhead['overhead_p50_ms']} ms"
            )
    for row in results.get("floor", []):
        print(f"in-process CNN, batch {row['batch_size']:>2}: p50 {row['p50_ms']} ms = {row['digits_per_s']} digits/s")
    print("\ntarget                                                          limit        measured   status")
    for row in results["targets"]:
        measured = "-" if row["measured"] is None else f"{row['measured']:g}"
        print(f"  {row['target']:<62} {row['limit']:<12} {measured:>9}   {row['status']}")
    machine = results["machine"]
    print(
        f"\nload average before {machine['load_average_before']}, after {machine['load_average_after']}; "
        f"{results['wall_seconds']} s; the machine was shared with other jobs: compare ratios within this run"
    )


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"

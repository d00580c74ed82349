"""Write the benchmark's results (bench.json, bench.png) and print them as short tables."""

from __future__ import annotations

from pathlib import Path

from bench.machine import save_json

JSON_NAME = "bench.json"
PLOT_NAME = "bench.png"
ITEM_UNITS = {"digit_1": "digits/s", "digits_32": "digits/s", "series_1000": "points/s", "series_10080": "points/s"}


def print_level(scenario: str, row: dict) -> None:
    latency = row["latency_ms"]
    cpu = "  ".join(f"{name} {usage['cpu_seconds']}s" for name, usage in row["processes"].items())
    print(
        f"{scenario:<26} c={row['concurrency']:<3} {row['requests_per_s']:>8.1f} req/s "
        f"{row['items_per_s']:>10.1f} items/s  p50 {latency['p50']:>8.2f}  p95 {latency['p95']:>8.2f}  "
        f"p99 {latency['p99']:>8.2f} ms  errors {row['errors']['total']}{_per_predict(row)}  | cpu: {cpu}",
        flush=True,
    )


def _per_predict(row: dict) -> str:
    value = row.get("images_per_predict")
    return "" if value is None else f"  images/Predict {value}"


def write(results: dict, out: Path) -> None:
    save_json(out / JSON_NAME, results)
    plot(results, out / PLOT_NAME)


def plot(results: dict, path: Path) -> None:
    """Per scenario: throughput (top) and p50/p99 latency (bottom) against concurrency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    scenarios = results.get("scenarios", {})
    columns = max(1, len(scenarios))
    figure, axes = plt.subplots(2, columns, figsize=(4.2 * columns, 7), squeeze=False)
    batching_off = results.get("microbatching", {}).get("off", {}).get("levels", [])
    for column, (name, scenario) in enumerate(scenarios.items()):
        series = [("gateway", scenario["levels"])]
        if name == "digit_1" and batching_off:
            series.append(("micro-batching off", batching_off))
        top, bottom = axes[0][column], axes[1][column]
        for label, rows in series:
            levels = [row["concurrency"] for row in rows]
            top.plot(levels, [row["items_per_s"] for row in rows], marker="o", label=label)
            bottom.plot(levels, [row["latency_ms"]["p50"] for row in rows], marker="o", label=f"{label} p50")
            bottom.plot(
                levels, [row["latency_ms"]["p99"] for row in rows], marker="x", linestyle="--", label=f"{label} p99"
            )
        top.set_title(f"{name} ({scenario['items_per_request']} per request)")
        top.set_ylabel(ITEM_UNITS.get(name, "items/s"))
        bottom.set_ylabel("latency (ms)")
        bottom.set_yscale("log")
        for axis in (top, bottom):
            axis.set_xscale("log", base=2)
            axis.set_xticks([row["concurrency"] for row in scenario["levels"]])
            axis.xaxis.set_major_formatter(ScalarFormatter())
            axis.set_xlabel("concurrent clients")
            axis.grid(True, alpha=0.3)
            axis.legend(fontsize=7)
    load_before = results["machine"]["load_average_before"][0]
    figure.suptitle(
        f"serving path on {results['machine']['cpus']} CPUs "
        f"(load average before: {load_before}), {results['settings']['duration_s']:g} s per level"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def print_summary(results: dict) -> None:
    print("\nscenario                    c    req/s      items/s    p50 ms    p95 ms    p99 ms  errors  cpu ms/req")
    for name, scenario in results.get("scenarios", {}).items():
        for row in scenario["levels"]:
            _print_row(name, row)
    for row in results.get("microbatching", {}).get("off", {}).get("levels", []):
        _print_row("digit_1, micro-batch off", row)
    batching = results.get("microbatching", {})
    on, off = (batching.get(key, {}).get("sequential") for key in ("on", "off"))
    if on and off:
        print(
            f"one digit at a time through the gateway, p50: micro-batching on {on['p50_ms']} ms, off {off['p50_ms']} ms"
        )
    for setting, rows in results.get("worker_balance", {}).items():
        for row in rows:
            print(
                f"digit_1 c={row['concurrency']:<3} {setting:<22} {row['requests_per_s']:>7.1f} req/s  worker CPU s "
                f"{row['worker_cpu_s']}  busiest worker's share {row['busiest_worker_share']}"
            )
    comparisons = results.get("comparisons")
    if comparisons:
        print("\nsequential latency (one Python client)     p50 ms    p95 ms    p99 ms")
        for name, row in comparisons["paths"].items():
            print(f"  {name:<40} {row['p50_ms']:>7.3f}   {row['p95_ms']:>7.3f}   {row['p99_ms']:>7.3f}")
        print(
            f"  gateway overhead (p50): {comparisons['gateway_overhead_p50_ms']:.3f} ms; inside the gateway app "
            "(mean ms): " + ", ".join(f"{k} {v}" for k, v in comparisons["gateway_png_1_stages_ms"].items())
        )
    workers = results.get("memory", {}).get("gateway_workers", [])
    if workers:
        print(
            "\ngateway workers: "
            + ", ".join(f"pid {w['pid']} RSS {w['rss_mb']} MB (peak {w['peak_rss_mb']} MB)" for w in workers)
        )
    imported = results.get("import", {})
    if imported:
        print(
            f"import {imported['module']}: median {imported['median_s']} s of {imported['all_s']}, "
            f"tensorflow loaded: {imported['tensorflow_loaded']}"
        )
    print("\ntarget                                                       limit              measured    status")
    for row in results.get("targets", []):
        measured = "-" if row["measured"] is None else f"{row['measured']:g}"
        print(f"  {row['target']:<58} {row['limit']:<18} {measured:>9}   {row['status']}")
    machine = results["machine"]
    print(
        f"\nload average before {machine['load_average_before']}, after {machine.get('load_average_after')}; "
        f"{results.get('wall_seconds')} s"
    )


def _print_row(name: str, row: dict) -> None:
    latency = row["latency_ms"]
    print(
        f"{name:<26} {row['concurrency']:>3} {row['requests_per_s']:>8.1f} {row['items_per_s']:>12.1f} "
        f"{latency['p50']:>9.2f} {latency['p95']:>9.2f} {latency['p99']:>9.2f} {row['errors']['total']:>7}"
        f"  {row['stack_cpu_ms_per_request']}"
    )

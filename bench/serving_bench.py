"""`python -m bench`: throughput, latency and memory of the serving path, on this machine, in one run.

Starts the local stack (model server + gateway under gunicorn, free ports) over a models folder, drives
it with wrk from a separate process at several concurrency levels, then compares side by side: the
gateway against a direct Predict, micro-batching on against off, and the model server's gRPC API
against its REST API. Writes bench-results/bench.json and bench.png and prints a table with the targets.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from bench import gatewaymetrics, load, payloads, profiling, report, sequential, stack, targets
from bench.importtime import measure_import
from bench.machine import machine_facts, machine_load
from bench.procstats import peak_rss_mb, rss_mb, wait_until_idle

DIGITS_PATH = "/v1/digits:predict"
SERIES_PATH = "/v1/anomaly:score"
SCENARIOS = ("digit_1", "digits_32", "series_1000", "series_10080")
MICROBATCH_ON_MS = "2"
WARMUP_CONCURRENCY = 4


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=Path("models"), help="folder with mnist/ and anomaly/")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="results folder")
    parser.add_argument("--duration", type=int, default=5, help="whole seconds of load per level (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="whole seconds of untimed load per scenario (0: none)")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, 4, 16, 64],
        help="concurrent connections per level (default 1 4 16 64)",
    )
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--workers", type=int, default=2, help="gateway worker processes (default 2)")
    parser.add_argument(
        "--requests", type=int, default=300, help="sequential requests per path in the side-by-side latency comparisons"
    )
    parser.add_argument("--import-runs", type=int, default=5, help="fresh-process imports of the app to time")
    payloads.add_mnist_data_argument(parser)
    parser.add_argument(
        "--gateway-env",
        nargs="*",
        default=[],
        metavar="GATEWAY_NAME=VALUE",
        help="extra settings for the gateway under test, e.g. GATEWAY_ANOMALY_CHUNK_POINTS=256",
    )
    parser.add_argument(
        "--profile",
        nargs="*",
        default=[],
        metavar="SCENARIO:CONCURRENCY",
        help="after the measurements, record py-spy profiles of the stack under this load",
    )
    args = parser.parse_args(argv)
    for spec in args.profile:
        name, _, level = spec.partition(":")
        if name not in args.scenarios or not (level or "16").isdigit():
            parser.error(f"--profile {spec!r}: expected SCENARIO:CONCURRENCY with a scenario of this run")
    if any("=" not in item for item in args.gateway_env):
        parser.error("--gateway-env takes NAME=VALUE items")
    if args.duration < 1 or args.warmup < 0:  # wrk takes whole seconds
        parser.error("--duration must be at least 1 and --warmup at least 0 (whole seconds)")
    return args


def build_targets(gateway_url: str, rest_url: str, args: argparse.Namespace) -> dict[str, load.Target]:
    images = payloads.digit_images(32, args.mnist_data)
    info = payloads.anomaly_info(rest_url)
    bodies = {
        "digit_1": (DIGITS_PATH, payloads.single_digit(images), 1),
        "digits_32": (DIGITS_PATH, payloads.multipart_digits(images), 32),
        "series_1000": (SERIES_PATH, payloads.series_json(1000, info), 1000),
        "series_10080": (SERIES_PATH, payloads.series_json(10_080, info), 10_080),
    }
    return {
        name: load.Target(name, gateway_url + path, body, items)
        for name, (path, body, items) in bodies.items()
        if name in args.scenarios
    }


def check_answer(target: load.Target) -> None:
    """One request before the load: the scenario must succeed, with one prediction per digit or point."""
    request = urllib.request.Request(
        target.url, data=target.body.content, headers={"Content-Type": target.body.content_type}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    key = "predictions" if target.url.endswith(DIGITS_PATH) else "points"
    if len(answer[key]) != target.items:
        raise RuntimeError(f"{target.name}: expected {target.items} {key}, got {len(answer[key])}")


def stack_pids(model_server: stack.ModelServer, gateway: stack.Gateway) -> dict[str, int]:
    pids = {"model server": model_server.service.pid}
    for index, pid in enumerate(gateway.service.worker_pids()):
        pids[f"gateway worker {index + 1}"] = pid
    return pids


def measure_level(gateway_url: str, target: load.Target, concurrency: int, duration: int, pids: dict[str, int]) -> dict:
    """A load level plus the gateway's own view of it: mean time per stage and images per Predict call."""
    before = gatewaymetrics.snapshot(gateway_url)
    row = load.run_level(target, concurrency, duration, pids)
    after = gatewaymetrics.snapshot(gateway_url)
    path = target.url[len(gateway_url) :]
    row["gateway_stages_ms"] = gatewaymetrics.stage_means_ms(before, after, path)
    if path == DIGITS_PATH:
        per_predict = gatewaymetrics.mean_between(before, after, "gateway_batch_size", model="mnist")
        row["images_per_predict"] = None if per_predict is None else round(per_predict, 2)
    return row


def run_scenarios(
    gateway_url: str,
    scenario_targets: dict[str, load.Target],
    levels: list[int],
    pids: dict[str, int],
    args: argparse.Namespace,
) -> dict[str, dict]:
    results = {}
    for name, target in scenario_targets.items():
        check_answer(target)
        if args.warmup > 0:
            load.run_level(target, min(max(levels), WARMUP_CONCURRENCY), args.warmup, pids)
        rows = []
        for concurrency in levels:
            row = measure_level(gateway_url, target, concurrency, args.duration, pids)
            report.print_level(name, row)
            rows.append(row)
        results[name] = {
            "path": target.url.split("//", 1)[1].split("/", 1)[1],
            "items_per_request": target.items,
            "body_bytes": len(target.body.content),
            "levels": rows,
        }
    return results


def compare_paths(gateway: stack.Gateway, model_server: stack.ModelServer, args: argparse.Namespace) -> dict:
    """Sequential latency: gateway vs direct gRPC Predict (1 digit), and gRPC vs REST on the model server."""
    images = payloads.digit_images(32, args.mnist_data)
    warmup = max(10, args.requests // 10)
    rest_predict = f"{model_server.rest_url}/v1/models/mnist:predict"
    before = gatewaymetrics.snapshot(gateway.url)
    rows = {
        "gateway_png_1": sequential.http_latency(
            gateway.url + DIGITS_PATH, payloads.single_digit(images), args.requests, warmup
        ),
        "grpc_1": sequential.grpc_latency(model_server.grpc_target, 1, args.requests, warmup),
        "grpc_32": sequential.grpc_latency(model_server.grpc_target, 32, args.requests, warmup),
        "rest_1": sequential.http_latency(rest_predict, payloads.rest_predict_json(images[:1]), args.requests, warmup),
        "rest_32": sequential.http_latency(rest_predict, payloads.rest_predict_json(images), args.requests, warmup),
    }
    return {
        "paths": rows,
        "gateway_png_1_stages_ms": gatewaymetrics.stage_means_ms(
            before, gatewaymetrics.snapshot(gateway.url), DIGITS_PATH
        ),
        "gateway_overhead_p50_ms": round(rows["gateway_png_1"]["p50_ms"] - rows["grpc_1"]["p50_ms"], 3),
        "note": "one request at a time from one Python client; the gateway itself always calls the model "
        "server over gRPC, the REST rows are the model server's own REST API for comparison",
    }


def worker_memory(gateway: stack.Gateway) -> list[dict]:
    return [
        {"pid": pid, "rss_mb": round(rss_mb(pid) or 0.0, 1), "peak_rss_mb": round(peak_rss_mb(pid) or 0.0, 1)}
        for pid in gateway.service.worker_pids()
    ]


def record_profiles(
    gateway_url: str,
    specs: list[str],
    scenario_targets: dict[str, load.Target],
    pids: dict[str, int],
    args: argparse.Namespace,
) -> dict:
    profiles = {}
    for spec in specs:
        name, _, level = spec.partition(":")
        target, concurrency = scenario_targets[name], int(level or 16)
        wait_until_idle(list(pids.values()))  # so that the recording covers the load, not the wait before it
        recorders = {}
        for process, pid in pids.items():
            out = args.out / f"profile-{name}-c{concurrency}-{process.replace(' ', '-')}.txt"
            gil_only = process.startswith("gateway")
            recorders[process] = (out, profiling.start_recording(pid, args.duration, out, gil_only))
        row = measure_level(gateway_url, target, concurrency, args.duration, pids)
        summaries = {
            process: profiling.finish_recording(recorder, out) for process, (out, recorder) in recorders.items()
        }
        profiles[spec] = {"load": row, "processes": summaries}
    return profiles


def compare_microbatching(
    model_server: stack.ModelServer,
    results: dict,
    levels: list[int],
    off_settings: dict[str, str],
    log_dir: Path,
    args: argparse.Namespace,
) -> dict:
    """Single digits at the higher levels through a second gateway, the same but with GATEWAY_MICROBATCH_MS=0."""
    compared = [c for c in levels if c >= 16] or levels
    on_rows = [row for row in results["scenarios"]["digit_1"]["levels"] if row["concurrency"] in compared]
    with stack.gateway(model_server.grpc_target, log_dir, "gateway-nobatch", args.workers, off_settings) as gateway:
        target = build_targets(gateway.url, model_server.rest_url, args)["digit_1"]
        pids = stack_pids(model_server, gateway)
        check_answer(target)
        if args.warmup > 0:
            load.run_level(target, max(compared), args.warmup, pids)
        off_rows = []
        for concurrency in compared:
            row = measure_level(gateway.url, target, concurrency, args.duration, pids)
            report.print_level("digit_1 (microbatch off)", row)
            off_rows.append(row)
        sequential_off = sequential.http_latency(target.url, target.body, args.requests, max(10, args.requests // 10))
    sequential_on = results.get("comparisons", {}).get("paths", {}).get("gateway_png_1")
    return {
        "on": {"microbatch_ms": float(MICROBATCH_ON_MS), "levels": on_rows, "sequential": sequential_on},
        "off": {"microbatch_ms": 0.0, "levels": off_rows, "sequential": sequential_off},
    }


def worker_shares(row: dict) -> dict:
    """CPU seconds of each gateway worker in one level and the busiest worker's share of their sum."""
    seconds = {
        name: usage["cpu_seconds"] or 0.0
        for name, usage in row["processes"].items()
        if name.startswith("gateway worker")
    }
    total = sum(seconds.values())
    return {
        "concurrency": row["concurrency"],
        "requests_per_s": row["requests_per_s"],
        "worker_cpu_s": seconds,
        "busiest_worker_share": round(max(seconds.values()) / total, 3) if total else None,
    }


def compare_worker_balance(
    model_server: stack.ModelServer,
    results: dict,
    levels: list[int],
    shared_settings: dict[str, str],
    log_dir: Path,
    args: argparse.Namespace,
) -> dict:
    """Single digits at 4 and 16 clients through a second gateway whose workers share one listening socket
    (GATEWAY_REUSE_PORT=0), against the main run's own socket per worker: CPU per worker, before and after."""
    compared = [c for c in levels if 1 < c <= 16] or levels
    own_rows = [row for row in results["scenarios"]["digit_1"]["levels"] if row["concurrency"] in compared]
    with stack.gateway(
        model_server.grpc_target, log_dir, "gateway-shared-socket", args.workers, shared_settings
    ) as gateway:
        target = build_targets(gateway.url, model_server.rest_url, args)["digit_1"]
        pids = stack_pids(model_server, gateway)
        check_answer(target)
        shared_rows = []
        for concurrency in compared:
            row = measure_level(gateway.url, target, concurrency, args.duration, pids)
            report.print_level("digit_1 (shared socket)", row)
            shared_rows.append(row)
    return {
        "own_socket_per_worker": [worker_shares(row) for row in own_rows],
        "shared_socket": [worker_shares(row) for row in shared_rows],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    log_dir = args.out / "logs"
    log_dir.mkdir(exist_ok=True)
    levels = sorted(set(args.concurrency))
    results: dict = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "settings": {
            "models": str(args.models),
            "duration_s": args.duration,
            "concurrency": levels,
            "gateway_workers": args.workers,
            "gateway_env": args.gateway_env,
            "load_generator": "wrk (1 thread, closed loop, keep-alive)",
        },
    }
    started = time.monotonic()
    results["import"] = measure_import(args.import_runs)
    with stack.model_server(args.models, log_dir) as model_server:
        extra = dict(item.split("=", 1) for item in args.gateway_env)
        on_settings = {"GATEWAY_MICROBATCH_MS": MICROBATCH_ON_MS, **extra}
        with stack.gateway(model_server.grpc_target, log_dir, "gateway", args.workers, on_settings) as gateway:
            pids = stack_pids(model_server, gateway)
            scenario_targets = build_targets(gateway.url, model_server.rest_url, args)
            results["scenarios"] = run_scenarios(gateway.url, scenario_targets, levels, pids, args)
            results["comparisons"] = compare_paths(gateway, model_server, args)
            results["memory"] = {
                "gateway_workers": worker_memory(gateway),
                "model_server_peak_rss_mb": round(peak_rss_mb(model_server.service.pid) or 0, 1),
            }
            results["profiles"] = record_profiles(gateway.url, args.profile, scenario_targets, pids, args)
        if "digit_1" in args.scenarios:
            off_settings = {**on_settings, "GATEWAY_MICROBATCH_MS": "0"}
            results["microbatching"] = compare_microbatching(model_server, results, levels, off_settings, log_dir, args)
            results["worker_balance"] = compare_worker_balance(
                model_server, results, levels, {**on_settings, "GATEWAY_REUSE_PORT": "0"}, log_dir, args
            )
    results["machine"]["load_average_after"] = machine_load()
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    results["targets"] = targets.evaluate(results)
    report.write(results, args.out)
    report.print_summary(results)
    return 0

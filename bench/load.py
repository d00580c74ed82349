"""Closed-loop HTTP load with `wrk` (Debian package `wrk`): N connections, each sending the next request as
soon as the previous answer arrives, for a fixed time.

wrk is a C event-loop client: one thread drives hundreds of connections for a few percent of a core,
so on a 2-core machine it takes far less CPU from the stack under test than a Python client would. The
request body (PNG, multipart or JSON bytes) comes from a file that `wrk_post.lua` reads; its `done`
hook prints the counts, errors and latency percentiles as one JSON line.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.payloads import Body
from bench.procstats import CpuWindow, run_child, wait_until_idle

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk_post.lua"
RESULT_PREFIX = "BENCH_RESULT "
LOAD_GENERATOR = "load generator (wrk)"


@dataclass(frozen=True)
class Target:
    """Where to send load and what one request carries (`items`: digits or series points per request)."""

    name: str
    url: str
    body: Body
    items: int


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk not found: install the Debian package (apt-get install -y wrk)")
    return path


def run_level(
    target: Target, concurrency: int, duration_s: int, processes: dict[str, int], timeout_s: float = 30.0
) -> dict:
    """One load level: `concurrency` connections for `duration_s`; throughput, latency, errors, CPU and RSS.

    Starts once the servers are idle, so a level never inherits the previous one's queued requests. Requests
    still in flight when the time is up are not counted (wrk's rule), so a level with very slow requests
    reports slightly less than it did; `completed` is False when no request finished at all.
    """
    with tempfile.NamedTemporaryFile(suffix=".body") as body_file:
        body_file.write(target.body.content)
        body_file.flush()
        args = [
            wrk_path(),
            "-t1",
            f"-c{concurrency}",
            f"-d{duration_s}s",
            f"--timeout={timeout_s:g}s",
            "-s",
            str(LUA_SCRIPT),
            target.url,
        ]
        env = {"BENCH_BODY_FILE": body_file.name, "BENCH_CONTENT_TYPE": target.body.content_type}
        return run_generator(args, env, target.items, concurrency, processes, duration_s + timeout_s + 30)


def run_generator(
    args: list[str], env: dict[str, str], items: int, concurrency: int, processes: dict[str, int], timeout_s: float
) -> dict:
    """Run a load generator that prints one `BENCH_RESULT {json}` line as wrk_post.lua does (wrk, or
    bench/peers/grpc_load.py for gRPC), once the servers are idle; its numbers with the servers' CPU and RSS."""
    settle_s = wait_until_idle(list(processes.values()))
    window = CpuWindow(processes)
    child = run_child(args, env, timeout=timeout_s)
    usage = window.finish()
    lines = [line for line in child.output.splitlines() if line.startswith(RESULT_PREFIX)]
    if child.returncode != 0 or not lines:
        raise RuntimeError(f"{Path(args[0]).name} failed ({child.returncode}): {child.output[-2000:]}")
    raw = json.loads(lines[-1][len(RESULT_PREFIX) :])
    usage[LOAD_GENERATOR] = {"cpu_seconds": child.cpu_seconds, "peak_rss_mb": child.peak_rss_mb}
    seconds = raw["duration_us"] / 1e6
    stack_cpu = sum(usage[name]["cpu_seconds"] or 0.0 for name in processes)
    errors = raw["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    return {
        "concurrency": concurrency,
        "settle_s": settle_s,
        "completed": raw["requests"] > 0,
        "duration_s": round(seconds, 3),
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / seconds, 1),
        "items_per_s": round(raw["requests"] * items / seconds, 1),
        "latency_ms": {key: round(value / 1000, 3) for key, value in raw["latency_us"].items()},
        "errors": {
            "non_2xx": errors["status"],
            "socket": socket_errors,
            "total": errors["status"] + socket_errors,
            "detail": errors,
        },
        "processes": usage,
        # CPU the servers spent per answered request: unlike req/s, hardly affected by other load on the machine.
        "stack_cpu_ms_per_request": round(stack_cpu * 1e3 / raw["requests"], 3) if raw["requests"] else None,
    }

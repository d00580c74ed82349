"""`python -m bench.streams`: stream appends under load, per store, and what 100,000 streams cost the store.

Starts the local model server and, per store (SQLite file; a redis-server with its append-only file as in
docker-compose), a gateway. At each concurrency level N, N streams are warmed up with `--warmup-points`
readings (100; 10,000 makes them long-lived streams whose baselines are full), then N client threads (in
separate processes, so the client's GIL does not cap the rate) each append one reading at a time to their own
stream for `--duration` seconds. Reported: appends/s, latency percentiles, the gateway's
own stage means, and store round trips per append (`gateway_stream_store_operations_total` of the append's
operations, get and replace, over appends; the live-stream recounts of scrapes are reported apart).
Then `--memory-streams` streams with a real state blob are written straight into a fresh store: Redis
`used_memory` and the SQLite file size per stream. Writes bench-results/streams.json and streams.png.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import gatewaymetrics, stack
from bench.machine import save_json
from bench.sequential import summarize
from serving.gateway.streams.store import open_store

APPEND_ENDPOINT = "/v1/streams/<stream_id>:append"
WARMUP_POINTS = 100  # the default
MEMORY_SAMPLE_APPENDS = 200  # one-reading appends after the warm-up: the stream whose state the memory test copies
COUNTER = re.compile(r'^gateway_stream_(store_operations|appends)_total\{\w+="(\w+)"\} (\S+)$')
APPEND_OPERATIONS = ("get", "replace")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.streams", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=Path("models"), help="folder with anomaly/")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="results folder")
    parser.add_argument("--stores", nargs="+", choices=("sqlite", "redis"), default=["sqlite", "redis"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64], help="concurrent streams")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per level (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="gateway worker processes (default 2)")
    parser.add_argument(
        "--warmup-points", type=int, default=WARMUP_POINTS, help=f"readings per stream first (default {WARMUP_POINTS})"
    )
    parser.add_argument("--memory-streams", type=int, default=100_000, help="streams written for the memory test")
    args = parser.parse_args(argv)
    if args.duration <= 0 or min(args.concurrency) < 1 or args.memory_streams < 1:
        parser.error("--duration, --concurrency and --memory-streams must be positive")
    if not 1 <= args.warmup_points <= 10_000:
        parser.error("--warmup-points must be 1 to 10,000 (one append, the gateway's default limit)")
    return args


# ---------------------------------------------------------------- stores


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A redis-server as docker-compose runs it (append-only file, fsync every second) on a free port."""
    path = shutil.which("redis-server")
    if path is None:
        raise SystemExit("redis-server not found: install the Debian package (apt-get install -y redis-server)")
    port = stack.free_port()
    folder.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [
            path,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        store = open_store(url, timeout_seconds=1.0)
        deadline = time.monotonic() + 20
        while True:
            try:
                store.count()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        store.close()
        yield url
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def store_url(kind: str, folder: Path) -> Iterator[str]:
    if kind == "redis":
        with redis_server(folder / "redis") as url:
            yield url
    else:
        folder.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{folder / 'streams.db'}"


# ---------------------------------------------------------------- load


def readings(start: int, count: int, interval: float) -> dict[str, list]:
    """A daily sine with a little deterministic wobble, `count` readings from step `start`."""
    steps = range(start, start + count)
    return {
        "timestamps": [1_700_000_000 + k * interval for k in steps],
        "values": [20 + 10 * math.sin(2 * math.pi * k * interval / 86_400) + 0.3 * math.sin(k * 1.7) for k in steps],
    }


def client_process(url: str, streams: list[str], interval: float, duration: float, warmup: int, queue: Any) -> None:
    """Threads, one per stream, each appending one reading at a time for `duration` s; puts latencies (ms)."""
    import threading

    millis: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + duration

    def run(stream: str) -> None:
        parts = urlsplit(url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        step, after = warmup, readings(warmup - 1, 1, interval)["timestamps"][0]
        mine: list[float] = []
        try:
            while time.monotonic() < stop_at:
                body = json.dumps({"after": after, **readings(step, 1, interval)}).encode()
                started = time.perf_counter()
                connection.request("POST", f"/v1/streams/{stream}:append", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = response.read()
                if response.status != 200:
                    with lock:
                        errors[0] += 1
                    continue
                mine.append((time.perf_counter() - started) * 1e3)
                after, step = json.loads(answer)["end"], step + 1
        except (OSError, http.client.HTTPException):
            # the stream's position is unknown after a broken exchange: an error, and this stream stops
            with lock:
                errors[0] += 1
        finally:
            with lock:
                millis.extend(mine)

    threads = [threading.Thread(target=run, args=(stream,)) for stream in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put((millis, errors[0]))


def counters(url: str) -> dict[str, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = COUNTER.match(line)
        if match:
            key = match[1] if match[1] == "appends" else match[2]  # appends in all; store calls by operation
            totals[key] = totals.get(key, 0.0) + float(match[3])
    return totals


def request(url: str, method: str, path: str, body: dict) -> dict:
    data = json.dumps(body).encode()
    call = urllib.request.Request(url + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(call, timeout=60) as response:
        return json.loads(response.read() or b"{}")


def measure_level(url: str, concurrency: int, duration: float, interval: float, warmup: int) -> dict[str, Any]:
    streams = [f"bench-{concurrency}-{i}" for i in range(concurrency)]
    for stream in streams:
        request(url, "PUT", f"/v1/streams/{stream}", {})
        request(url, "POST", f"/v1/streams/{stream}:append", {"after": None, **readings(0, warmup, interval)})
    processes = min(4, concurrency)
    queue: Any = multiprocessing.Queue()
    before, before_histograms = counters(url), gatewaymetrics.snapshot(url)
    children = [
        multiprocessing.Process(
            target=client_process, args=(url, streams[k::processes], interval, duration, warmup, queue)
        )
        for k in range(processes)
    ]
    started = time.monotonic()
    for child in children:
        child.start()
    results = [queue.get(timeout=duration + 120) for _ in children]  # a dead client process fails the run
    elapsed = time.monotonic() - started
    for child in children:
        child.join()
    after, after_histograms = counters(url), gatewaymetrics.snapshot(url)
    millis = [m for chunk, _ in results for m in chunk]

    def grown(key: str) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    appends = grown("appends")
    return {
        "concurrency": concurrency,
        "appends": len(millis),
        "appends_per_s": round(len(millis) / elapsed, 1),
        "errors": sum(errors for _, errors in results),
        "latency_ms": summarize(millis) if len(millis) > 1 else {},
        "store_round_trips_per_append": round(sum(grown(op) for op in APPEND_OPERATIONS) / appends, 3)
        if appends
        else None,
        "store_counts": grown("count"),
        "stage_means_ms": gatewaymetrics.stage_means_ms(before_histograms, after_histograms, APPEND_ENDPOINT),
    }


# ---------------------------------------------------------------- memory


def measure_memory(kind: str, folder: Path, blob: bytes, count: int) -> dict[str, Any]:
    """Write `count` streams holding `blob` into a fresh store; bytes per stream in Redis memory or on disk."""
    with store_url(kind, folder / f"memory-{kind}") as url:
        store = open_store(url, timeout_seconds=5.0)
        baseline = _used_bytes(kind, url)
        started = time.monotonic()
        for i in range(count):
            store.create("bench", f"s{i}", blob, ttl_seconds=86_400, max_streams=0)
        seconds = time.monotonic() - started
        used = _used_bytes(kind, url) - baseline
        assert store.count() == count
        store.close()
    return {
        "streams": count,
        "blob_bytes": len(blob),
        "store_bytes": used,
        "bytes_per_stream": round(used / count, 1),
        "write_s": round(seconds, 2),
    }


def _used_bytes(kind: str, url: str) -> int:
    if kind == "redis":
        import redis

        return int(redis.Redis.from_url(url).info("memory")["used_memory"])
    path = Path(url.removeprefix("sqlite:///"))
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


# ---------------------------------------------------------------- run


def run_store(kind: str, args: argparse.Namespace, upstream: str, folder: Path, interval: float) -> dict[str, Any]:
    with (
        store_url(kind, folder / kind) as url,
        stack.gateway(
            upstream,
            folder,
            f"gateway-{kind}",
            args.workers,
            {"GATEWAY_STREAM_STORE": url, "GATEWAY_STREAM_MAX_PER_KEY": "0"},
        ) as gateway,
    ):
        levels = []
        for concurrency in args.concurrency:
            row = measure_level(gateway.url, concurrency, args.duration, interval, args.warmup_points)
            latency = row["latency_ms"]
            print(
                f"{kind:7} {concurrency:4} streams  {row['appends_per_s']:8.1f} appends/s  "
                f"p50 {latency.get('p50_ms', 0):7.1f} ms  p99 {latency.get('p99_ms', 0):7.1f} ms  "
                f"{row['store_round_trips_per_append']} store round trips/append  errors {row['errors']}",
                flush=True,
            )
            levels.append(row)
        request(gateway.url, "PUT", "/v1/streams/memory-sample", {})
        after = request(
            gateway.url,
            "POST",
            "/v1/streams/memory-sample:append",
            {"after": None, **readings(0, args.warmup_points, interval)},
        )["end"]
        for step in range(args.warmup_points, args.warmup_points + MEMORY_SAMPLE_APPENDS):  # as a live stream grows
            after = request(
                gateway.url, "POST", "/v1/streams/memory-sample:append", {"after": after, **readings(step, 1, interval)}
            )["end"]
        sample = open_store(url, timeout_seconds=5.0)
        record = sample.get("", "memory-sample")
        sample.close()
    assert record is not None
    memory = measure_memory(kind, folder, record.blob, args.memory_streams)
    memory["stream_points"] = args.warmup_points + MEMORY_SAMPLE_APPENDS
    print(
        f"{kind:7} {memory['streams']} streams of {memory['stream_points']} points: "
        f"{memory['store_bytes'] / 2**20:.1f} MiB ({memory['bytes_per_stream']:.0f} bytes per stream; "
        f"state blob {memory['blob_bytes']} bytes)",
        flush=True,
    )
    return {"levels": levels, "memory": memory}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(6, 7))
    for kind, result in results["stores"].items():
        levels = [row["concurrency"] for row in result["levels"]]
        top.plot(levels, [row["appends_per_s"] for row in result["levels"]], marker="o", label=kind)
        for cut, style in (("p50_ms", "-"), ("p99_ms", "--")):
            bottom.plot(
                levels,
                [row["latency_ms"].get(cut, 0) for row in result["levels"]],
                marker="o",
                linestyle=style,
                label=f"{kind} {cut[:3]}",
            )
    top.set_ylabel("appends/s (1 reading each)")
    bottom.set_ylabel("append latency (ms)")
    for axis in (top, bottom):
        axis.set_xlabel("concurrent streams")
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(
        f"stream appends, {results['settings']['duration_s']:g} s per level, {results['machine']['cpus']} CPUs"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    results: dict[str, Any] = {
        "machine": {"cpus": multiprocessing.cpu_count(), "python": sys.version.split()[0]},
        "settings": {
            "duration_s": args.duration,
            "concurrency": args.concurrency,
            "workers": args.workers,
            "warmup_points": args.warmup_points,
        },
        "stores": {},
    }
    try:
        with stack.model_server(args.models, folder, models=("anomaly",)) as model_server:
            interval = _interval(model_server.rest_url)
            for kind in args.stores:
                results["stores"][kind] = run_store(kind, args, model_server.grpc_target, folder, interval)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    save_json(args.out / "streams.json", results)
    plot(results, args.out / "streams.png")
    print(f"results in {args.out / 'streams.json'} and {args.out / 'streams.png'}")
    return 0


def _interval(rest_url: str) -> float:
    from bench.payloads import anomaly_info

    return float(anomaly_info(rest_url).interval_seconds)


if __name__ == "__main__":
    raise SystemExit(main())

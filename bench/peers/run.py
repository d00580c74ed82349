"""`python -m bench.peers` (`make bench-peers`): our gateway against the stacks a user would otherwise build.

Starts one model server and, in front of it, every peer at once: our gateway (gunicorn, 2 workers), KServe's
Python model server as a transformer calling the model server's REST v1 API (`kserve-rest`, as KServe
documents it) and the same calling its gRPC Predict (`kserve-grpc`), BentoML with adaptive batching calling
gRPC (`bentoml`), and the minimum: the model server's own REST and gRPC APIs with the client doing the
preprocessing (`minimum-rest`, `minimum-grpc`). KServe and BentoML each run from their own venv
(bench/peers/venvs.py) and reuse the gateway's preprocessing functions. Then, round-robin over the peers so
that other load on the machine hits all of them alike, each scenario and level is repeated and the medians
kept. Last, the CNN's in-process compute floor (bench/peers/floor.py) and the gateway's overhead over a
direct Predict, one request at a time. Writes bench-results/peers/peers.json and peers.png and prints the
table, the ratios to ours and the targets.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psutil

from bench import load, payloads, sequential, stack
from bench.machine import machine_facts, machine_load
from bench.payloads import Body
from bench.peers import report, targets, venvs
from bench.procstats import wait_until_idle

PEERS = ("ours", "kserve-rest", "kserve-grpc", "bentoml", "minimum-rest", "minimum-grpc")
BASELINE = "ours-baseline"  # our gateway from another checkout (--baseline), for before/after in one run
SCENARIOS = {"digit_1": 1, "digits_32": 32}
GATEWAY_WORKERS = 2
READY_TIMEOUT_S = 120.0


@dataclass
class Peer:
    """A running peer: how to send it a scenario, and its processes (the model server's are counted apart)."""

    name: str
    send: Callable[[int], tuple[str, Body]] | None  # images per request -> (URL, body); None: gRPC
    root_pid: int | None  # its top process; None when it is the model server itself

    def processes(self) -> dict[str, int]:
        if self.root_pid is None:
            return {}
        try:
            root = psutil.Process(self.root_pid)
            found = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return {}
        return {f"{self.name} {index}: {process.name()}": process.pid for index, process in enumerate(found)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=Path("models"), help="folder with mnist/ and anomaly/")
    parser.add_argument("--out", type=Path, default=Path("bench-results/peers"), help="results folder")
    parser.add_argument(
        "--venvs",
        type=Path,
        default=Path("bench-results/peers-venvs"),
        help="where the peers' own venvs are built (git-ignored)",
    )
    parser.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS))
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16], help="clients per level")
    parser.add_argument("--duration", type=int, default=3, help="whole seconds per level (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="times each level is measured (median kept)")
    parser.add_argument("--requests", type=int, default=300, help="sequential requests for the overhead")
    parser.add_argument("--floor-calls", type=int, default=200, help="timed calls per batch for the floor")
    parser.add_argument(
        "--baseline",
        type=Path,
        help=f"another checkout of this repository (e.g. `git worktree add` of main): its gateway runs beside ours "
        f"as `{BASELINE}`, in the same rounds, for before/after ratios measured in one run",
    )
    payloads.add_mnist_data_argument(parser)
    args = parser.parse_args(argv)
    if "ours" not in args.peers:
        parser.error("--peers must include ours: every other peer is reported as a ratio to it")
    if args.duration < 1 or args.repeats < 1:
        parser.error("--duration and --repeats must be at least 1")
    return args


def instances_body(images: list[bytes]) -> Body:
    """KServe's v1 body, which the gateway and the BentoML peer take too: PNGs as base64 instances."""
    instances = [{"b64": base64.b64encode(png).decode()} for png in images]
    return Body(json.dumps({"instances": instances}).encode(), "application/json")


def http_peer(name: str, url: str, root_pid: int, pngs: list[bytes]) -> Peer:
    return Peer(name, lambda count: (url, instances_body(pngs[:count])), root_pid)


def wait_http(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while stack.http_status(url) != 200:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} not ready:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)


@contextmanager
def peer_process(
    name: str, args: list[str], env: dict[str, str], ready_url: str, log_dir: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen]:
    """A peer started in its own session (its workers too), stopped with its whole process group."""
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=cwd, start_new_session=True
        )
    try:
        wait_http(ready_url, process, log_path)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()


@contextmanager
def kserve(
    name: str, venv: Path, model_server: stack.ModelServer, grpc_predict: bool, log_dir: Path
) -> Iterator[tuple[str, int]]:
    port = stack.free_port()
    args = [
        str(venvs.python(venv)),
        str(venvs.PEERS_DIR / "kserve" / "transformer.py"),
        f"--http_port={port}",
        f"--grpc_port={stack.free_port()}",
        "--enable_grpc=false",
        f"--workers={GATEWAY_WORKERS}",
        "--model_name=mnist",
        f"--predictor_host={model_server.rest_url.split('//', 1)[1]}",
        "--predictor_protocol=v1",
        "--enable_latency_logging=false",
        *([f"--predict-grpc={model_server.grpc_target}"] if grpc_predict else []),
    ]
    env = {"PEER_PROTOS_DIR": str(venv.resolve() / venvs.PROTOS_DIR)}
    base = f"http://127.0.0.1:{port}"
    with peer_process(name, args, env, f"{base}/v1/models/mnist", log_dir) as process:
        yield f"{base}/v1/models/mnist:predict", process.pid


@contextmanager
def bentoml(venv: Path, model_server: stack.ModelServer, log_dir: Path) -> Iterator[tuple[str, int]]:
    port = stack.free_port()
    args = [
        str((venv / "bin" / "bentoml").resolve()),
        "serve",
        "service:Digits",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    env = {
        "PEER_GRPC_TARGET": model_server.grpc_target,
        "PEER_FRONT_WORKERS": str(GATEWAY_WORKERS),
        "BENTOML_HOME": str(venv.resolve() / "home"),
        "BENTOML_DO_NOT_TRACK": "True",
    }
    base = f"http://127.0.0.1:{port}"
    with peer_process("bentoml", args, env, f"{base}/readyz", log_dir, cwd=venvs.PEERS_DIR / "bentoml") as process:
        yield f"{base}/predict", process.pid


def start_peers(
    names: list[str],
    model_server: stack.ModelServer,
    images: np.ndarray,
    pngs: list[bytes],
    args: argparse.Namespace,
    log_dir: Path,
    exits: ExitStack,
) -> tuple[dict[str, Peer], dict[str, str]]:
    """Every peer asked for, running; and the reason for each that could not start (its venv did not build)."""
    peers: dict[str, Peer] = {}
    skipped: dict[str, str] = {}
    for name in names:
        try:
            if name == "ours":
                gateway = exits.enter_context(
                    stack.gateway(model_server.grpc_target, log_dir, "gateway", GATEWAY_WORKERS, {})
                )
                peers[name] = http_peer(name, gateway.url + "/v1/digits:predict", gateway.service.pid, pngs)
            elif name.startswith("kserve"):
                venv = venvs.ensure("kserve", args.venvs)
                url, pid = exits.enter_context(kserve(name, venv, model_server, name == "kserve-grpc", log_dir))
                peers[name] = http_peer(name, url, pid, pngs)
            elif name == "bentoml":
                url, pid = exits.enter_context(bentoml(venvs.ensure("bentoml", args.venvs), model_server, log_dir))
                peers[name] = http_peer(name, url, pid, pngs)
            elif name == "minimum-rest":
                url = f"{model_server.rest_url}/v1/models/mnist:predict"
                peers[name] = Peer(name, lambda count, url=url: (url, payloads.rest_predict_json(images[:count])), None)
            else:
                peers[name] = Peer(name, None, None)
        except (venvs.PeerUnavailable, RuntimeError) as exc:
            skipped[name] = str(exc)[-500:]
            print(f"{name}: not measured: {skipped[name]}", flush=True)
    if args.baseline:
        gateway = exits.enter_context(
            stack.gateway(model_server.grpc_target, log_dir, BASELINE, GATEWAY_WORKERS, {}, source=args.baseline)
        )
        peers[BASELINE] = http_peer(BASELINE, gateway.url + "/v1/digits:predict", gateway.service.pid, pngs)
    return peers, skipped


def check_answer(url: str, body: Body, count: int) -> None:
    request = urllib.request.Request(url, data=body.content, headers={"Content-Type": body.content_type})
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = json.load(response)
    if len(answer["predictions"]) != count:
        raise RuntimeError(f"{url}: expected {count} predictions, got {len(answer['predictions'])}")


def measure(
    peer: Peer, model_server: stack.ModelServer, count: int, concurrency: int, args: argparse.Namespace
) -> dict:
    processes = {**peer.processes(), "model server": model_server.service.pid}
    if peer.send is None:
        command = [
            sys.executable,
            "-m",
            "bench.peers.grpc_load",
            f"--target={model_server.grpc_target}",
            f"--batch={count}",
            f"--concurrency={concurrency}",
            f"--duration={args.duration}",
            f"--mnist-data={args.mnist_data}",
        ]
        return load.run_generator(command, {}, count, concurrency, processes, args.duration + 60)
    url, body = peer.send(count)
    return load.run_level(load.Target(peer.name, url, body, count), concurrency, args.duration, processes)


def run_rounds(peers: dict[str, Peer], model_server: stack.ModelServer, args: argparse.Namespace) -> dict:
    """raw[peer][scenario][concurrency] = the rows of every repeat, peers interleaved level by level."""
    raw: dict = {name: {scenario: {c: [] for c in args.concurrency} for scenario in args.scenarios} for name in peers}
    for repeat in range(args.repeats):
        for scenario in args.scenarios:
            for concurrency in args.concurrency:
                for name, peer in peers.items():
                    row = measure(peer, model_server, SCENARIOS[scenario], concurrency, args)
                    raw[name][scenario][concurrency].append(row)
                    report.print_row(f"{name} {scenario} (repeat {repeat + 1}/{args.repeats})", row)
    return raw


def run_floor(args: argparse.Namespace) -> list[dict]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.peers.floor",
            f"--models={args.models}",
            f"--calls={args.floor_calls}",
            "--batch-sizes",
            "1",
            "32",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"floor failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def gateway_overhead(peer: Peer, model_server: stack.ModelServer, images: np.ndarray, args: argparse.Namespace) -> dict:
    """One request at a time: the gateway with one PNG body against a direct gRPC Predict of one image."""
    wait_until_idle([model_server.service.pid, *peer.processes().values()])
    url = peer.send(1)[0] if peer.send else ""
    warmup = max(10, args.requests // 10)
    gateway_row = sequential.http_latency(url, Body(payloads.png(images[0]), "image/png"), args.requests, warmup)
    direct = sequential.grpc_latency(model_server.grpc_target, 1, args.requests, warmup)
    return {
        "gateway_png_1": gateway_row,
        "grpc_1": direct,
        "overhead_p50_ms": round(gateway_row["p50_ms"] - direct["p50_ms"], 3),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log_dir = args.out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    images = payloads.digit_images(max(SCENARIOS.values()), args.mnist_data)
    pngs = [payloads.png(image) for image in images]
    results: dict = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_facts(),
        "settings": {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()},
    }
    started = time.monotonic()
    with stack.model_server(args.models, log_dir) as model_server, ExitStack() as exits:
        peers, results["skipped"] = start_peers(args.peers, model_server, images, pngs, args, log_dir, exits)
        for peer in peers.values():
            if peer.send is not None:
                for count in (SCENARIOS[scenario] for scenario in args.scenarios):
                    check_answer(*peer.send(count), count)
        raw = run_rounds(peers, model_server, args)
        results["overhead"] = gateway_overhead(peers["ours"], model_server, images, args)
        if BASELINE in peers:
            results["baseline_overhead"] = gateway_overhead(peers[BASELINE], model_server, images, args)
    results["floor"] = run_floor(args)
    results["peers"] = {
        name: {
            scenario: {str(c): report.median_row(rows) for c, rows in levels.items()}
            for scenario, levels in scenarios.items()
        }
        for name, scenarios in raw.items()
    }
    results["raw"] = raw
    results["ratios_to_ours"] = report.ratios(results["peers"])
    results["machine"]["load_average_after"] = machine_load()
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    results["targets"] = targets.evaluate(results)
    report.write(results, args.out)
    report.print_summary(results)
    return 0

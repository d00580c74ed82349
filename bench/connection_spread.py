"""How keep-alive connections land on the gateway's workers: a socket per worker (SO_REUSEPORT) vs one shared.

    python -m bench.connection_spread --workers 2 --connections 16 --trials 20

Starts a gateway (no model server needed: `/healthz` only) once with `GATEWAY_REUSE_PORT=1` and once with 0.
Each trial opens `--connections` keep-alive connections at once, as wrk does at the start of a level, sends
one request on each, and counts from /proc which worker process holds each connection; a connection stays
on that worker for its whole life. Prints and writes (bench-results/connection_spread.json) the counts and
the busiest worker's share, the number behind "one gunicorn worker did all the work".
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import time
from pathlib import Path

from bench import stack
from bench.machine import save_json

TCP_ESTABLISHED = "01"  # socket state in /proc/net/tcp


def established_inodes(port: int) -> set[str]:
    """Inodes of the server side of established TCP connections on local `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == TCP_ESTABLISHED and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def connections_per_worker(port: int, workers: list[int]) -> list[int]:
    wanted = {f"socket:[{inode}]" for inode in established_inodes(port)}
    counts = []
    for pid in workers:
        fds = Path(f"/proc/{pid}/fd")
        counts.append(sum(1 for fd in fds.iterdir() if _link(fd) in wanted))
    return counts


def _link(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:  # closed meanwhile
        return ""


def trial(port: int, workers: list[int], connections: int) -> list[int]:
    clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(connections)]
    try:
        for client in clients:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n\r\n")
        for client in clients:
            client.recv(4096)  # answered: the worker holding it has accepted it
        return connections_per_worker(port, workers)
    finally:
        for client in clients:
            client.close()


def measure(reuse_port: str, args: argparse.Namespace, log_dir: Path) -> dict:
    settings = {"GATEWAY_REUSE_PORT": reuse_port}
    # /healthz does not call the model server, so the upstream may be an unused port
    with stack.gateway(
        f"127.0.0.1:{stack.free_port()}",
        log_dir,
        f"gateway-reuse-port-{reuse_port}",
        args.workers,
        settings,
        ready_path="/healthz",
    ) as gateway:
        port = int(gateway.url.rsplit(":", 1)[1])
        workers = gateway.service.worker_pids()
        counts = []
        for _ in range(args.trials):
            counts.append(sorted(trial(port, workers, args.connections), reverse=True))
            time.sleep(0.2)  # let the workers see the closed connections
    shares = [row[0] / sum(row) for row in counts]
    return {
        "reuse_port": int(reuse_port),
        "connections_per_worker": counts,
        "busiest_worker_share_median": round(statistics.median(shares), 3),
        "busiest_worker_share_max": round(max(shares), 3),
        "trials_with_an_idle_worker": sum(row[-1] == 0 for row in counts),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections opened per trial")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    log_dir = args.out / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    results = {
        "settings": {"workers": args.workers, "connections": args.connections, "trials": args.trials},
        "runs": [measure(reuse_port, args, log_dir) for reuse_port in ("1", "0")],
    }
    save_json(args.out / "connection_spread.json", results)
    for run in results["runs"]:
        print(
            f"GATEWAY_REUSE_PORT={run['reuse_port']}: busiest worker's share median "
            f"{run['busiest_worker_share_median']}, max {run['busiest_worker_share_max']}, trials with an idle "
            f"worker {run['trials_with_an_idle_worker']}/{args.trials}; counts {run['connections_per_worker']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

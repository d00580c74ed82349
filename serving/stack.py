"""`python -m serving.stack`: the local stack of `make run`, no Docker needed.

Starts the model server (`python -m serving.modelserver`, which speaks TF Serving's protocol; production uses
the official tensorflow/serving image) on the project's TF Serving config with base paths mapped to a local
models folder, waits until every model is AVAILABLE, then starts the gateway under gunicorn and, when nginx is
installed, the front proxy of the containers in front of it (serving/proxy/), prints the URLs and runs until
Ctrl-C (or SIGTERM), stopping all. A child that exits is restarted with backoff (serving/supervisor.py).
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from serving.contract import ANOMALY_MODEL, MNIST_MODEL, version_folders
from serving.ports import busy_ports_message
from serving.proxy.local import nginx_binary, proxy_command
from serving.supervisor import Child, supervise

CONFIG_DIR = Path(__file__).resolve().parent / "config"
MODELS = (MNIST_MODEL, ANOMALY_MODEL)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m serving.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=Path("models"), help="folder with mnist/ and anomaly/")
    parser.add_argument("--port", type=int, default=8080, help="public HTTP port: the proxy's, else the gateway's")
    parser.add_argument("--no-proxy", action="store_true", help="serve the gateway itself on --port, without nginx")
    parser.add_argument("--grpc-port", type=int, default=8500, help="model server gRPC port (default 8500)")
    parser.add_argument("--rest-port", type=int, default=8501, help="model server REST port (default 8501)")
    parser.add_argument("--workers", type=int, default=2, help="gateway worker processes (default 2)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the models to load")
    return parser.parse_args(argv)


def model_available(rest_url: str, name: str) -> bool:
    try:
        with urllib.request.urlopen(f"{rest_url}/v1/models/{name}", timeout=2) as response:
            states = [v.get("state") for v in json.load(response).get("model_version_status", [])]
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return "AVAILABLE" in states


def wait_until(check, process: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    # Our process must be alive before a passing check counts: the check could reach someone else's server.
    while process.poll() is not None or not check():
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} not ready after {timeout:.0f}s")
        time.sleep(0.25)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    busy = busy_ports_message(
        {"gateway HTTP": args.port, "model server gRPC": args.grpc_port, "model server REST": args.rest_port}
    )
    if busy:
        # Checked first: a stack already running answers the readiness checks below, so starting a second one
        # would print the "ready" banner for the other stack and then fail to bind.
        print(
            f"{busy}\nstop it (another `make run`?) or choose other ports: make run PORT=8081 GRPC_PORT=8510 "
            "REST_PORT=8511, or python -m serving.stack --port P --grpc-port G --rest-port R",
            file=sys.stderr,
        )
        return 2
    missing = [name for name in MODELS if not version_folders(args.models / name)]
    if missing:
        print(f"no versions of {', '.join(missing)} under {args.models}/: run `make models` first", file=sys.stderr)
        return 2
    generated = args.models / "models.config"  # written by the training job: every model it trained
    models_config = generated if generated.is_file() else CONFIG_DIR / "models.config"
    nginx = None if args.no_proxy else nginx_binary()
    gateway_port = _free_port() if nginx else args.port
    model_server = Child(
        "model server",
        [
            sys.executable,
            "-m",
            "serving.modelserver",
            f"--port={args.grpc_port}",
            f"--rest_api_port={args.rest_port}",
            f"--model_config_file={models_config}",
            f"--models_dir={args.models}",
            "--model_config_file_poll_wait_seconds=10",
            f"--monitoring_config_file={CONFIG_DIR / 'monitoring.config'}",
        ],
    )
    gateway = Child(
        "gateway",
        [
            sys.executable,
            "-m",
            "serving.gateway",
            f"--port={gateway_port}",
            f"--upstream=127.0.0.1:{args.grpc_port}",
            f"--workers={args.workers}",
            *(["--host=127.0.0.1"] if nginx else []),
        ],
        # Behind nginx no slow client reaches the gateway, and gthread shares the CPU more fairly than
        # gevent's greenlets (serving/gateway/worker.py); facing clients itself, it keeps gevent.
        env={
            "GATEWAY_MODELS_CONFIG": str(models_config.resolve()),
            **({"GATEWAY_WORKER_CLASS": "gthread"} if nginx else {}),
        },
    )
    children = [model_server, gateway]
    if nginx:
        children.append(Child("proxy", proxy_command(nginx, args.port, f"127.0.0.1:{gateway_port}")))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        rest_url = f"http://127.0.0.1:{args.rest_port}"
        all_available = lambda: all(model_available(rest_url, m) for m in MODELS)  # noqa: E731
        wait_until(all_available, model_server.start(), args.timeout, "model server")
        wait_until(lambda: _ready(f"http://127.0.0.1:{gateway_port}/readyz"), gateway.start(), 60, "gateway")
        public_url = f"http://localhost:{args.port}"
        if nginx:
            wait_until(lambda: _ready(f"{public_url}/healthz"), children[2].start(), 30, "proxy")
        print(
            f"\n  web page and API:  {public_url}/   (API reference {public_url}/docs, metrics {public_url}/metrics)"
            + (
                f"\n  front proxy:       nginx on {args.port} -> gateway 127.0.0.1:{gateway_port}"
                if nginx
                else "\n  front proxy:       none (nginx not installed, or --no-proxy)"
            )
            + f"\n  model server:      gRPC 127.0.0.1:{args.grpc_port}, REST {rest_url}/v1/models/mnist"
            "\n  A child that exits is restarted; Ctrl-C stops all.\n",
            flush=True,
        )
        supervise(children)
    except KeyboardInterrupt:
        return 0
    finally:
        for child in reversed(children):
            child.stop()
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


if __name__ == "__main__":
    sys.exit(main())

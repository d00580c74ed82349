"""`python -m serving.stack`: the local stack of `make run`, no Docker needed.

Starts the model server (`python -m serving.modelserver`, which speaks TF Serving's protocol; production uses
the official tensorflow/serving image) on the project's TF Serving config with base paths mapped to a local
models folder, waits until every model is AVAILABLE, then starts the gateway under gunicorn, prints the URLs
and runs until Ctrl-C (or SIGTERM), stopping both.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from serving.ports import busy_ports_message

CONFIG_DIR = Path(__file__).resolve().parent / "config"
MODELS = ("mnist", "anomaly")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m serving.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=Path("models"), help="folder with mnist/ and anomaly/")
    parser.add_argument("--port", type=int, default=8080, help="gateway HTTP port (default 8080)")
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
    missing = [name for name in MODELS if not any((args.models / name).glob("[0-9]*"))]
    if missing:
        print(f"no versions of {', '.join(missing)} under {args.models}/: run `make models` first", file=sys.stderr)
        return 2
    model_server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serving.modelserver",
            f"--port={args.grpc_port}",
            f"--rest_api_port={args.rest_port}",
            f"--model_config_file={CONFIG_DIR / 'models.config'}",
            f"--models_dir={args.models}",
            f"--monitoring_config_file={CONFIG_DIR / 'monitoring.config'}",
        ]
    )
    processes = [model_server]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        rest_url = f"http://127.0.0.1:{args.rest_port}"
        all_available = lambda: all(model_available(rest_url, m) for m in MODELS)  # noqa: E731
        wait_until(all_available, model_server, args.timeout, "model server")
        gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "serving.gateway",
                f"--port={args.port}",
                f"--upstream=127.0.0.1:{args.grpc_port}",
                f"--workers={args.workers}",
            ]
        )
        processes.append(gateway)
        gateway_url = f"http://localhost:{args.port}"
        wait_until(lambda: _ready(f"{gateway_url}/readyz"), gateway, 60, "gateway")
        print(
            f"\n  web page and API:  {gateway_url}/   (API reference {gateway_url}/docs, metrics {gateway_url}/metrics)"
            f"\n  model server:      gRPC 127.0.0.1:{args.grpc_port}, REST {rest_url}/v1/models/mnist"
            "\n  Ctrl-C stops both.\n",
            flush=True,
        )
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


if __name__ == "__main__":
    sys.exit(main())

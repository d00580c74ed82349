"""`python -m serving.gateway --port 8080 --upstream localhost:8500 [--workers N]`; see README.md here."""

from __future__ import annotations

import argparse
import os
import sys

from serving.gateway.config import GatewayConfig


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m serving.gateway",
        description="HTTP gateway in front of TensorFlow Serving (every flag also reads GATEWAY_<FLAG>).",
    )
    parser.add_argument("--port", type=int, help="HTTP port (GATEWAY_PORT, default 8080)")
    parser.add_argument("--host", help="address to bind (GATEWAY_HOST, default 0.0.0.0)")
    parser.add_argument("--upstream", help="model server gRPC host:port (GATEWAY_UPSTREAM, default localhost:8500)")
    parser.add_argument("--workers", type=int, help="worker processes (GATEWAY_WORKERS, default 2)")
    parser.add_argument("--threads", type=int, help="threads per worker (GATEWAY_THREADS, default 4)")
    parser.add_argument(
        "--deadline-seconds", type=float, help="time limit per request upstream (GATEWAY_DEADLINE_SECONDS, default 5)"
    )
    parser.add_argument(
        "--microbatch-ms",
        type=float,
        help="micro-batching window for digits, 0 = off (GATEWAY_MICROBATCH_MS, default 2)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        config = GatewayConfig.from_env(os.environ, **vars(args))
    except ValueError as exc:
        sys.exit(f"serving.gateway: {exc}")
    from serving.gateway.server import serve

    serve(config)

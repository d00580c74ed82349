"""`python -m serving.modelserver`: flags named like tensorflow_model_server's."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

DESCRIPTION = """\
A small model server speaking TensorFlow Serving's gRPC and REST protocol, for development machines
without Docker and for tests. Production runs the official tensorflow/serving image with the same
config files; this server is not a replacement for it.

Local run against a models/ folder with the container config:
  python -m serving.modelserver --model_config_file=serving/config/models.config --models_dir=models
"""


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false", "1", "0"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return lowered in ("true", "1")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m serving.modelserver",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500)")
    parser.add_argument("--rest_api_port", type=int, default=8501, help="REST port; 0 disables REST (8501)")
    parser.add_argument("--model_config_file", default="", help="ModelServerConfig text file")
    parser.add_argument(
        "--model_config_file_poll_wait_seconds",
        type=float,
        default=0.0,
        help="seconds between re-reads of --model_config_file (models added or removed); 0 = never (default)",
    )
    parser.add_argument("--model_name", default="default", help="model name without a config file")
    parser.add_argument("--model_base_path", default="", help="model base path without a config file")
    parser.add_argument(
        "--models_dir",
        default="",
        help="(this server only) serve base paths under /models/ from this folder instead, e.g. models",
    )
    parser.add_argument(
        "--file_system_poll_wait_seconds",
        type=float,
        default=1.0,
        help="seconds between scans for new versions; 0 loads once at startup (default 1)",
    )
    parser.add_argument(
        "--max_num_load_retries", type=int, default=5, help="retries of a version that failed to load (default 5)"
    )
    parser.add_argument(
        "--load_retry_interval_micros",
        type=int,
        default=60_000_000,
        help="pause between load retries in microseconds (default 60000000)",
    )
    parser.add_argument(
        "--enable_batching",
        type=_bool,
        nargs="?",
        const=True,
        default=False,
        help="merge concurrent Predict calls into batches (default false)",
    )
    parser.add_argument(
        "--enable_model_warmup",
        type=_bool,
        nargs="?",
        const=True,
        default=True,
        help="replay assets.extra/tf_serving_warmup_requests when loading (default true)",
    )
    parser.add_argument("--batching_parameters_file", default="", help="BatchingParameters text file")
    parser.add_argument("--monitoring_config_file", default="", help="MonitoringConfig text file")
    parser.add_argument("--grpc_max_threads", type=int, default=16, help="gRPC worker threads (default 16)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    from serving.modelserver.config import ConfigError
    from serving.modelserver.server import ModelServer  # TensorFlow loads only after --help had its chance

    try:
        server = ModelServer.from_args(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    stop.wait()
    server.stop()
    return 0

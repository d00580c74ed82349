"""`python -m bench.app_cost`: the gateway app's CPU per single-digit request, without an HTTP server, and its parts.

What the gateway's CPU per request is made of, apart from the HTTP server and the worker model around it: a real
model server over `--models`, the gateway's Flask app built in this process (micro-batching off: one Predict per
request), and a PNG digit sent straight to the WSGI callable. Each part is timed the same way, in CPU seconds of
this process (`time.process_time`: grpcio's own threads included), as a median over rounds of many calls:

- `whole request`: `POST /v1/digits:predict` through the app, as gunicorn would call it;
- `flask and hooks`: `GET /healthz`, the app's per-request machinery around a route that does nothing;
- `image to digit`: `decode_image` + `image_to_views` (one row for an MNIST-style PNG);
- `predict`: `UpstreamClient.predict` of one prepared digit (the gRPC call and both tensor conversions);
- `metric write`: one counter increment in prometheus-client's multiprocess mode.

    python -m bench.app_cost --models models --out bench-results/app_cost.json
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import payloads, stack
from bench.machine import machine_facts, machine_load, save_json


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="folder with mnist/ and anomaly/ versions")
    parser.add_argument("--calls", type=int, default=500, help="calls per round (default 500)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per part; the median is kept (default 5)")
    parser.add_argument("--out", type=Path, default=Path("bench-results/app_cost.json"))
    payloads.add_mnist_data_argument(parser)
    args = parser.parse_args(argv)
    if args.calls < 1 or args.rounds < 1:
        parser.error("--calls and --rounds must be at least 1")
    return args


def cpu_ms_per_call(call: Callable[[], object], calls: int, rounds: int) -> list[float]:
    """CPU milliseconds per call, one value per round, after `calls` untimed calls to warm up."""
    for _ in range(calls):
        call()
    per_round = []
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(calls):
            call()
        per_round.append(1000 * (time.process_time() - started) / calls)
    return per_round


def wsgi_caller(app: Any, method: str, path: str, body: bytes = b"", content_type: str = "") -> Callable[[], str]:
    """A call of the WSGI app with a fresh body stream each time, as a server would make it; returns the status."""
    template = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
    }

    def call() -> str:
        statuses: list[str] = []
        environ = {**template, "wsgi.input": io.BytesIO(body)}
        b"".join(app(environ, lambda status, _headers, _exc=None: statuses.append(status)))
        return statuses[0]

    return call


def measure(grpc_target: str, digit_png: bytes, calls: int, rounds: int) -> dict[str, list[float]]:
    """Per part: CPU ms per call in each round (see the module docstring)."""
    from serving.contract import IMAGE_INPUT
    from serving.gateway import metrics
    from serving.gateway.app import create_app
    from serving.gateway.config import GatewayConfig
    from serving.gateway.digits import DIGITS_ROUTE
    from serving.gateway.images import decode_image, image_to_views
    from serving.gateway.upstream import UpstreamClient, model_spec

    config = GatewayConfig.from_env({}, upstream=grpc_target, models_config="", microbatch_ms=0.0)
    app = create_app(config)
    predict_request = wsgi_caller(app, "POST", DIGITS_ROUTE, digit_png, "image/png")
    health = wsgi_caller(app, "GET", "/healthz")
    for name, call in ((f"POST {DIGITS_ROUTE}", predict_request), ("GET /healthz", health)):
        if not (status := call()).startswith("200"):
            raise SystemExit(f"{name} answered {status}")
    upstream = UpstreamClient(grpc_target, retries=0)
    spec = model_spec(config.mnist_model)
    digit = image_to_views(decode_image(digit_png))[..., None]
    counter = metrics.labelled(metrics.REQUESTS, DIGITS_ROUTE, "POST", "200")
    parts: dict[str, Callable[[], object]] = {
        "whole request": predict_request,
        "flask and hooks": health,
        "image to digit": lambda: image_to_views(decode_image(digit_png)),
        "predict": lambda: upstream.predict(spec, {IMAGE_INPUT: digit}, time.monotonic() + 10),
        "metric write": counter.inc,
    }
    return {name: cpu_ms_per_call(call, calls, rounds) for name, call in parts.items()}


def plot(results: dict[str, Any], path: Path) -> None:
    """One bar per part: its median CPU per call, with every round's value as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["parts"])
    figure, axes = plt.subplots(figsize=(7, 3.2))
    axes.barh(names, [results["parts"][name]["median_ms"] for name in names], color="#4c72b0")
    for row, name in enumerate(names):
        values = results["parts"][name]["rounds_ms"]
        axes.plot(values, [row] * len(values), "k.", markersize=4)
    axes.invert_yaxis()
    axes.set_xlabel("CPU ms per call (bars: median; dots: rounds)")
    axes.set_title("Gateway app, one PNG digit, no HTTP server, micro-batching off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # prometheus-client picks its multiprocess mode at import, as in a gunicorn worker: set before the app loads.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="app-cost-metrics-"))
    digit_png = payloads.png(payloads.digit_images(1, args.mnist_data)[0])
    models = args.models.resolve()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": machine_facts(), "calls": args.calls, "rounds": args.rounds}
    with stack.model_server_over(models, args.out.parent) as server:
        rounds = measure(server.grpc_target, digit_png, args.calls, args.rounds)
    results["machine"]["load_average_after"] = machine_load()
    results["parts"] = {
        name: {"median_ms": round(statistics.median(values), 4), "rounds_ms": [round(v, 4) for v in values]}
        for name, values in rounds.items()
    }
    whole = results["parts"]["whole request"]["median_ms"]
    load = results["machine"]["load_average_before"]
    print(f"CPU per call, median of {args.rounds} rounds of {args.calls} calls (load average before: {load})")
    for name, part in results["parts"].items():
        print(f"  {name:16s} {part['median_ms']:8.3f} ms  ({100 * part['median_ms'] / whole:5.1f}% of a request)")
    save_json(args.out, results)
    plot(results, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

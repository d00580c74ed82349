"""How many of the project's modules and functions one request passes through (docs/architecture.md).

Starts a real model server over `--models`, builds the gateway app in this process, sends one digit request and
one series request through Flask's test client (each once to warm up, then once under `sys.setprofile`), and
counts the distinct project modules and functions (under serving/) that ran. Writes JSON with the lists.

    python -m bench.request_path --models models --out bench-results/request_path.json
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from PIL import Image

from bench import stack
from bench.machine import save_json

ROOT = Path(__file__).resolve().parent.parent
SERIES_POINTS = 600


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="folder with mnist/ and anomaly/ versions")
    parser.add_argument("--out", type=Path, default=Path("bench-results/request_path.json"))
    parser.add_argument("--timed", type=int, default=100, help="requests per route timed after the trace (default 100)")
    args = parser.parse_args(argv)
    if args.timed < 1:
        parser.error("--timed must be at least 1")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    models = args.models.resolve()
    with stack.model_server_over(models, args.out.parent) as server:
        client = _gateway_client(server.grpc_target)
        png, csv = _digit_png(), _series_csv()
        results = {
            "digit": _trace(lambda: client.post("/v1/digits:predict", data=png, content_type="image/png"), args.timed),
            "series": _trace(lambda: client.post("/v1/anomaly:score", data=csv, content_type="text/csv"), args.timed),
        }
    for name, result in results.items():
        print(
            f"{name:7s} {result['modules']:3d} modules  {result['functions']:3d} functions  ({result['calls']} calls)"
            f"  median {result['median_ms']:.2f} ms over {result['timed']} requests"
        )
    save_json(args.out, results)
    print(f"wrote {args.out}")
    return 0


def _trace(send: Callable[[], Any], timed: int) -> dict[str, Any]:
    """Send once to warm up (channel, version caches), once while recording every project function call, then
    `timed` times for the latency through the gateway in process (no HTTP server, no gunicorn)."""
    response = send()
    if response.status_code != 200:
        raise SystemExit(f"warm-up request failed: {response.status_code} {response.get_data(as_text=True)[:300]}")
    calls: list[tuple[str, str]] = []
    package = str(ROOT / "serving")

    def record(frame: FrameType, event: str, _arg: object) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(package):
            module = str(Path(frame.f_code.co_filename).relative_to(ROOT).with_suffix("")).replace("/", ".")
            calls.append((module, frame.f_code.co_qualname))

    sys.setprofile(record)
    try:
        response = send()
    finally:
        sys.setprofile(None)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    functions = sorted({f"{module}.{name}" for module, name in calls if not name.rsplit(".", 1)[-1].startswith("<")})
    modules = sorted({module for module, _ in calls})
    seconds = []
    for _ in range(timed):
        started = time.perf_counter()
        send()
        seconds.append(time.perf_counter() - started)
    return {
        "timed": timed,
        "median_ms": round(1000 * float(np.median(seconds)), 3),
        "modules": len(modules),
        "functions": len(functions),
        "calls": len(calls),
        "module_list": modules,
        "function_list": functions,
    }


def _gateway_client(target: str) -> Any:
    sys.path.insert(0, str(ROOT))
    from serving.gateway.app import create_app
    from serving.gateway.config import GatewayConfig

    app = create_app(GatewayConfig.from_env({}, upstream=target, models_config=""))
    return app.test_client()


def _digit_png() -> bytes:
    canvas = np.zeros((28, 28), np.uint8)
    canvas[6:22, 13:16] = 255  # a "1"
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG")
    return buffer.getvalue()


def _series_csv() -> str:
    rng = np.random.default_rng(0)
    start = np.datetime64("2024-01-01T00:00:00")
    rows = [
        f"{start + np.timedelta64(300 * i, 's')}Z,{value:.4f}"
        for i, value in enumerate(50 + 10 * np.sin(np.arange(SERIES_POINTS) / 20) + rng.normal(0, 1, SERIES_POINTS))
    ]
    return "timestamp,value\n" + "\n".join(rows) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

"""Predict latency of a model server over gRPC, measured from this (separate) client process.

    python -m bench.modelserver_latency --target localhost:8500
    python -m bench.modelserver_latency --models-dir models   # starts python -m serving.modelserver

Sends MNIST-shaped batches (1 and 64 images by default) with the TF-free client messages the gateway
uses, prints p50/p95/p99 in milliseconds and writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import grpc
import numpy as np

from bench.stack import free_port
from serving import protos, tensors
from serving.protos import tfs_lite_pb2


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="", help="host:port of a running server (else one is started)")
    parser.add_argument("--models-dir", default="models", help="models folder for the server started here")
    parser.add_argument("--model", default="mnist")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per batch size")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests first")
    parser.add_argument("--out", default="bench-results/modelserver_latency.json")
    return parser.parse_args()


@contextmanager
def own_server(models_dir: str, model: str) -> Iterator[str]:
    """`python -m serving.modelserver` for one model, stopped on exit; yields its gRPC target."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "serving.modelserver",
        f"--port={port}",
        "--rest_api_port=0",
        f"--model_name={model}",
        f"--model_base_path={Path(models_dir, model).resolve()}",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(30)


def measure(target: str, model: str, batch_size: int, requests: int, warmup: int) -> dict[str, float]:
    images = np.random.default_rng(batch_size).integers(0, 256, (batch_size, 28, 28, 1), dtype=np.uint8)
    request = tfs_lite_pb2.PredictRequest()
    request.model_spec.name = model
    tensors.to_tensor_proto(images, out=request.inputs["image"])
    with grpc.insecure_channel(target) as channel:
        predict = channel.unary_unary(
            protos.PREDICT,
            request_serializer=tfs_lite_pb2.PredictRequest.SerializeToString,
            response_deserializer=tfs_lite_pb2.PredictResponse.FromString,
        )
        for _ in range(warmup):
            predict(request, timeout=30)
        millis = []
        for _ in range(requests):
            started = time.perf_counter()
            response = predict(request, timeout=30)
            millis.append((time.perf_counter() - started) * 1e3)
    assert tensors.from_tensor_proto(response.outputs["digit"]).shape == (batch_size,)
    cuts = statistics.quantiles(millis, n=100, method="inclusive")
    return {
        "batch_size": batch_size,
        "requests": requests,
        "p50_ms": cuts[49],
        "p95_ms": cuts[94],
        "p99_ms": cuts[98],
        "mean_ms": statistics.fmean(millis),
    }


def main() -> int:
    args = parse_args()
    server = nullcontext(args.target) if args.target else own_server(args.models_dir, args.model)
    with server as target:
        results = [measure(target, args.model, size, args.requests, args.warmup) for size in args.batch_sizes]
    for row in results:
        print(
            f"batch {row['batch_size']:>4}: p50 {row['p50_ms']:.3f} ms  p95 {row['p95_ms']:.3f} ms"
            f"  p99 {row['p99_ms']:.3f} ms  ({row['requests']} requests)"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"target": args.target or "own server", "model": args.model, "results": results}
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

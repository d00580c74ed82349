"""Closed-loop gRPC Predict load (wrk has no gRPC): N concurrent calls, each sending the next when its answer
arrives, for a fixed time; prints the same `BENCH_RESULT {json}` line as bench/wrk_post.lua.

    python -m bench.peers.grpc_load --target 127.0.0.1:8500 --batch 1 --concurrency 16 --duration 5

One asyncio loop on grpc.aio in one process. The images are MNIST arrays already preprocessed on the client,
so this is the model server's own gRPC API with nothing in front: the minimum a client can pay.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import grpc
import numpy as np

from bench import payloads
from serving import protos, tensors
from serving.protos import tfs_lite_pb2

RESULT_PREFIX = "BENCH_RESULT "


async def drive(target: str, request: tfs_lite_pb2.PredictRequest, concurrency: int, seconds: float) -> dict:
    millis: list[float] = []
    errors = 0
    async with grpc.aio.insecure_channel(target) as channel:
        predict = channel.unary_unary(
            protos.PREDICT,
            request_serializer=tfs_lite_pb2.PredictRequest.SerializeToString,
            response_deserializer=tfs_lite_pb2.PredictResponse.FromString,
        )
        await predict(request, timeout=30)  # connect before the clock starts
        stop_at = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                try:
                    await predict(request, timeout=30)
                except grpc.aio.AioRpcError:
                    errors += 1
                    continue
                millis.append((time.perf_counter() - started) * 1e3)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return summary(millis, errors, elapsed)


def summary(millis: list[float], errors: int, elapsed: float) -> dict:
    """wrk_post.lua's fields, in microseconds."""
    cuts = np.percentile(millis, [50, 90, 95, 99]) * 1e3 if millis else [0, 0, 0, 0]
    latency = {
        "min": min(millis, default=0) * 1e3,
        "mean": float(np.mean(millis)) * 1e3 if millis else 0,
        "p50": cuts[0],
        "p90": cuts[1],
        "p95": cuts[2],
        "p99": cuts[3],
        "max": max(millis, default=0) * 1e3,
    }
    return {
        "requests": len(millis),
        "duration_us": round(elapsed * 1e6),
        "bytes": 0,
        "errors": {"connect": 0, "read": 0, "write": 0, "status": errors, "timeout": 0},
        "latency_us": {key: round(float(value), 1) for key, value in latency.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="model server gRPC host:port")
    parser.add_argument("--batch", type=int, default=1, help="images per Predict")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds")
    payloads.add_mnist_data_argument(parser)
    args = parser.parse_args()
    request = tfs_lite_pb2.PredictRequest()
    request.model_spec.name = "mnist"
    images = payloads.digit_images(args.batch, args.mnist_data)
    tensors.to_tensor_proto(images[..., np.newaxis], out=request.inputs["image"])
    result = asyncio.run(drive(args.target, request, args.concurrency, args.duration))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Side-by-side latency of one request at a time over different paths, all timed from this Python process.

The gateway, the model server's REST API and its gRPC API are each called by a Python client from the
same process (http.client with a kept-alive connection; grpcio through `bench.modelserver_latency`), so
the client's own cost is about the same on every path and differences are the servers'.
"""

from __future__ import annotations

import http.client
import statistics
import time
from urllib.parse import urlsplit

from bench import modelserver_latency
from bench.payloads import Body


def summarize(millis: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(millis, n=100, method="inclusive")
    return {
        "requests": len(millis),
        "p50_ms": round(cuts[49], 3),
        "p95_ms": round(cuts[94], 3),
        "p99_ms": round(cuts[98], 3),
        "mean_ms": round(statistics.fmean(millis), 3),
    }


def http_latency(url: str, body: Body, requests: int, warmup: int) -> dict[str, float]:
    """POST `body` to `url` `warmup + requests` times on one keep-alive connection; stats of the timed ones."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    headers = {"Content-Type": body.content_type}
    millis = []
    try:
        for index in range(warmup + requests):
            started = time.perf_counter()
            connection.request("POST", parts.path, body=body.content, headers=headers)
            response = connection.getresponse()
            response.read()
            elapsed = (time.perf_counter() - started) * 1e3
            if response.status != 200:
                raise RuntimeError(f"POST {url} answered {response.status}")
            if index >= warmup:
                millis.append(elapsed)
    finally:
        connection.close()
    return summarize(millis)


def grpc_latency(target: str, batch_size: int, requests: int, warmup: int) -> dict[str, float]:
    """Direct Predict on the model server over gRPC (the model-server engineer's measurement)."""
    row = modelserver_latency.measure(target, "mnist", batch_size, requests, warmup)
    return {
        key: round(value, 3) if isinstance(value, float) else value for key, value in row.items() if key != "batch_size"
    }

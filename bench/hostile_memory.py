"""Peak RSS of the gateway workers and the model server under the largest hostile requests the limits allow.

    python -m bench.hostile_memory --gateway http://127.0.0.1:8080 --gateway-pid PID \\
        --modelserver 127.0.0.1:8500 --modelserver-pid PID

Each case runs `--concurrency` copies at once (4, as in the issue's report). Peaks are the kernel's high-water
marks (VmHWM in /proc/PID/status), so nothing between samples is missed: for the gateway the largest over its
workers, which are children of the master PID. Results feed docs/security.md and the k8s memory limits.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
from PIL import Image
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving import tensors

MAX_BODY = 32 * 1024 * 1024


def high_water_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def workers(master: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def post(base: str, path: str, content_type: str, body: bytes, chunked: bool = False) -> int:
    """A raw POST (chunked when asked); returns the status."""
    host, port = base.removeprefix("http://").split(":")
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    head = f"POST {path} HTTP/1.1\r\nHost: b\r\nContent-Type: {content_type}\r\n{framing}\r\nConnection: close\r\n\r\n"
    with socket.create_connection((host, int(port)), timeout=120) as sock:
        sock.sendall(head.encode())
        try:
            if chunked:
                for start in range(0, len(body), 1 << 20):
                    piece = body[start : start + (1 << 20)]
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                sock.sendall(b"0\r\n\r\n")
            else:
                sock.sendall(body)
        except OSError:
            pass  # refused early; the status line is waiting
        return int(sock.recv(64).split(b" ")[1])


def series_body(points: int) -> bytes:
    stamps = list(range(0, points * 60, 60))
    values = np.random.default_rng(0).normal(size=points).round(6).tolist()
    return json.dumps({"timestamps": stamps, "values": values}).encode()


def png(side: int) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(side).integers(0, 256, (side, side), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=0)
    return buffer.getvalue()


def gateway_cases(base: str) -> dict[str, Callable[[], int]]:
    numbers = b'{"timestamps": [' + b"1," * (12 << 20) + b'1], "values": []}'
    big_series = series_body(100_000)
    images = png(3800)  # 14.4 M pixels, under the 16 M per-image limit
    boundary = "b0undary"
    multipart = (
        b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{i}.png"\r\n'
            f"Content-Type: image/png\r\n\r\n".encode()
            + images
            + b"\r\n"
            for i in range(2)
        )
        + f"--{boundary}--\r\n".encode()
    )
    return {
        "series: 24 MB, 12 M numbers (refused by separators)": lambda: post(
            base, "/v1/anomaly:score", "application/json", numbers
        ),
        f"series: 100,000 points ({len(big_series) >> 20} MB)": lambda: post(
            base, "/v1/anomaly:score", "application/json", big_series
        ),
        "digits: chunked 48 MB body": lambda: post(base, "/v1/digits:predict", "image/png", b"\0" * (48 << 20), True),
        f"digits: multipart of two 14.4 Mpx PNGs ({len(multipart) >> 20} MB)": lambda: post(
            base, "/v1/digits:predict", f"multipart/form-data; boundary={boundary}", multipart
        ),
    }


def modelserver_cases(target: str) -> dict[str, Callable[[], str]]:
    def predict(request: predict_pb2.PredictRequest) -> str:
        with grpc.insecure_channel(target) as channel:
            try:
                prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=120)
                return "OK"
            except grpc.RpcError as error:
                return error.code().name

    def filled(shape: list[int]) -> predict_pb2.PredictRequest:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "mnist"
        proto = request.inputs["image"]
        proto.dtype = tensors.DT.DT_UINT8
        tensors.fill_shape_proto(proto.tensor_shape, shape)
        proto.int_val.append(0)
        return request

    largest = predict_pb2.PredictRequest()
    largest.model_spec.name = "mnist"
    tensors.to_tensor_proto(np.zeros((1337, 28, 28, 1), np.uint8), out=largest.inputs["image"])
    return {
        "mnist: [510000,28,28,1] from one int_val": lambda: predict(filled([510000, 28, 28, 1])),
        "mnist: largest allowed batch, 1,337 images": lambda: predict(largest),
    }


def run(cases: dict[str, Callable[[], object]], concurrency: int, pids: Callable[[], list[int]]) -> None:
    for name, case in cases.items():
        with ThreadPoolExecutor(concurrency) as pool:
            results = [future.result() for future in [pool.submit(case) for _ in range(concurrency)]]
        peak = max(high_water_mb(pid) for pid in pids())
        print(f"{name:60} -> {sorted(set(map(str, results)))}  peak RSS so far {peak:.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--gateway-pid", type=int, required=True, help="gunicorn master")
    parser.add_argument("--modelserver", required=True, help="gRPC host:port")
    parser.add_argument("--modelserver-pid", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    print(
        f"gateway workers at start: {max(high_water_mb(p) for p in workers(args.gateway_pid)):.0f} MB; "
        f"model server at start: {high_water_mb(args.modelserver_pid):.0f} MB"
    )
    run(gateway_cases(args.gateway), args.concurrency, lambda: workers(args.gateway_pid))
    run(modelserver_cases(args.modelserver), args.concurrency, lambda: [args.modelserver_pid])


if __name__ == "__main__":
    main()

"""Raw-socket HTTP for hostile-client tests: bytes no HTTP library would send, and clients that stall.

`exchange(port, raw)` sends `raw` and reads one response (status, headers, body); `SlowClients` holds many
connections that sent a request's headers and part of its body and then stop.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def is_json(self) -> bool:
        return self.headers.get("content-type", "").startswith("application/json")

    def json(self) -> Any:
        return json.loads(self.body)


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a complete response head: {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def read_response(sock: socket.socket) -> RawResponse:
    """One response from `sock`, skipping interim 1xx answers; the body by Content-Length, else to EOF."""
    head, rest = _read_head(sock)
    while head.split(b" ", 2)[1].startswith(b"1"):
        if b"\r\n\r\n" not in rest:
            rest += sock.recv(65536)
        head, _, rest = rest.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    body = rest
    while length is None or len(body) < int(length):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return RawResponse(status, headers, body if length is None else body[: int(length)])


def exchange(port: int, raw: bytes, timeout: float = 30.0, host: str = "127.0.0.1") -> RawResponse:
    """Send `raw` on a new connection and read the answer (a hang fails the caller with TimeoutError)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        # The server may answer and close before reading all of a body it refuses.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        return read_response(sock)


@dataclass
class SlowClients:
    """`count` connections that each send a request head and a few body bytes of a declared 1000, then stall."""

    port: int
    count: int
    path: str = "/v1/digits:predict"
    sockets: list[socket.socket] = field(default_factory=list)

    def __enter__(self) -> SlowClients:
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            'Content-Length: 1000\r\n\r\n{"inst'
        ).encode()
        for _ in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            sock.sendall(head)
            self.sockets.append(sock)
        time.sleep(0.2)  # let the server accept them all before the caller measures anything
        return self

    def __exit__(self, *_exc: object) -> None:
        for sock in self.sockets:
            sock.close()

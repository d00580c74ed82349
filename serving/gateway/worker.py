"""The gateway's gunicorn workers (gevent or gthread): read deadlines, JSON errors, no `Server` header, one send.

`GatewayWorker` (gevent, the default): a gthread worker gives each connection a thread until its request
is read, so a handful of clients that send headers and then stall (or trickle a body) hold every thread,
and `/healthz` waits behind them. Here each connection is a greenlet: an idle client costs a few kilobytes,
and the other requests of the worker go on. gRPC is switched to gevent-friendly polling right after gevent
patches the standard library, before the app opens its channel. The price: greenlets are not preempted, so
CPU-heavy requests delay the others of their worker (measured: `/healthz` median 428 ms, max 2.5 s while four
100,000-point series were scored, against 24 / 287 ms with gthread).

`GatewayThreadWorker` (gthread) is for running behind the proxy (compose, Kubernetes), which reads whole
requests before passing them on, so slow clients never reach the gateway and threads share the CPU fairly.

Both give every socket read a deadline (`GATEWAY_READ_TIMEOUT_SECONDS`), so a stalled header or body is
dropped (or answered 408) instead of held forever.

gunicorn answers malformed requests (bad request line, header too large, CR/NUL in a header, bad
chunked framing...) itself, before the app sees them, in plain text. `json_write_error` replaces that
writer in the worker process with one that sends the gateway's JSON error shape.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import orjson
from gunicorn import util
from gunicorn.http import wsgi
from gunicorn.workers.ggevent import GeventWorker
from gunicorn.workers.gthread import ThreadWorker

SOCKET_ERROR_MESSAGE = "Socket error processing request."

# gunicorn's status for each HTTP-level rejection, as the gateway's stable error codes.
HTTP_LEVEL_CODES = {
    400: "bad_request",
    403: "forbidden",
    408: "request_timeout",
    414: "uri_too_long",
    417: "expectation_failed",
    431: "headers_too_large",
    500: "internal",
}
# gunicorn answers an unknown transfer coding with 501; it is the client's request that is wrong, so 400 (as
# the proxy answers it too): a hostile request never gets a 5xx.
CLIENT_STATUS = {501: (400, "Bad Request")}


def json_write_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's `util.write_error`, answering `{"error": {...}}` instead of an HTML page."""
    status_int, reason = CLIENT_STATUS.get(status_int, (status_int, reason))
    code = HTTP_LEVEL_CODES.get(status_int, f"http_{status_int}")
    body = orjson.dumps({"error": {"code": code, "message": f"{reason}: {mesg}"[:512]}})
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


_default_headers = wsgi.Response.default_headers


def _headers_without_server(response: wsgi.Response) -> list[str]:
    """gunicorn's default headers minus `Server: gunicorn` (no product banner on any answer)."""
    return [line for line in _default_headers(response) if not line.startswith("Server:")]


_write = wsgi.Response.write


class _Gathered:
    """Stands in for a response's socket during its first `write`, keeping what gunicorn would send."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.parts.append(data)


def _write_head_with_body(response: wsgi.Response, data: bytes) -> None:
    """gunicorn's `Response.write`, but the first call sends the head and the body in one `sendall`.

    gunicorn sends the head and then each body chunk, two sends (two syscalls, on loopback two passes through
    the TCP stack) for a whole JSON answer; the profile of a worker at 16 clients had ~11% of its time in them.
    """
    if response.headers_sent:
        _write(response, data)
        return
    sock, gathered = response.sock, _Gathered()
    response.sock = gathered
    try:
        _write(response, data)
    finally:
        response.sock = sock
    if gathered.parts:
        sock.sendall(b"".join(gathered.parts))


class _DropReadTimeouts(logging.Filter):
    """A client that stalls past the read timeout is expected, not a server fault worth a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (record.getMessage() == SOCKET_ERROR_MESSAGE and isinstance(exc, TimeoutError))


def _closing_on_request(app: Any) -> Any:
    """Honour `Connection: close` from the app (gunicorn drops hop-by-hop headers and would keep the connection).

    The gateway says it after refusing a body it did not read to the end: reusing the connection would
    make gunicorn drain the rest first (up to gigabytes) or read it as the next request. `start_response`
    is a bound method of gunicorn's Response, whose `force_close` is the switch.
    """

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if any(name.lower() == "connection" and value.lower() == "close" for name, value in headers):
                start_response.__self__.force_close()
            return start_response(status, headers, exc_info)

        return app(environ, start)

    return wrapped


def _harden_gunicorn() -> None:
    """In this worker process: JSON for gunicorn's own error answers, no Server header, no read-timeout noise,
    head and body in one send."""
    util.write_error = json_write_error
    wsgi.Response.default_headers = _headers_without_server  # type: ignore[method-assign]
    wsgi.Response.write = _write_head_with_body  # type: ignore[method-assign]
    logging.getLogger("gunicorn.error").addFilter(_DropReadTimeouts())


class _DeadlineSocket(socket.socket):
    """A client socket whose blocking mode has a deadline: gthread sets sockets blocking before each read."""

    read_timeout: float = 10.0

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(self.read_timeout)
        else:
            super().setblocking(False)


class GatewayWorker(GeventWorker):
    """gunicorn's gevent worker plus the gateway's socket deadline (see the module docstring)."""

    def patch(self) -> None:
        super().patch()
        from grpc.experimental import gevent as grpc_gevent

        grpc_gevent.init_gevent()
        _harden_gunicorn()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = _closing_on_request(self.wsgi)

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        # GeventWorker.handle would make the socket blocking without a deadline; give every read one.
        client.settimeout(self.app.gateway_config.read_timeout_seconds)
        super(GeventWorker, self).handle(listener, client, addr)


class GatewayThreadWorker(ThreadWorker):
    """gunicorn's gthread worker plus the gateway's socket deadline (see the module docstring)."""

    def init_process(self) -> None:
        _harden_gunicorn()
        _DeadlineSocket.read_timeout = self.app.gateway_config.read_timeout_seconds
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.wsgi = _closing_on_request(self.wsgi)

    def enqueue_req(self, conn: Any) -> None:
        # Every connection passes here before a thread reads from it; swap its socket for a _DeadlineSocket
        # on the same descriptor (non-blocking, as TConn left it).
        if not isinstance(conn.sock, _DeadlineSocket):
            plain = conn.sock
            conn.sock = _DeadlineSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
            conn.sock.setblocking(False)
        super().enqueue_req(conn)

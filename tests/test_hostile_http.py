"""Hostile HTTP clients against the gateway, directly and through the front proxy (nginx).

Slow and idle clients, request lines and headers no library would send, broken chunked framing, bodies over
the limits. Every answer must be JSON, none a 5xx, none without a reply (a hang fails the read), none with a
`Server` banner; `/healthz` must answer within a second while 200 connections stall.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from serving.gateway.app import create_app
from serving.gateway.config import GatewayConfig
from serving.proxy.local import nginx_binary
from tests.fixtures_gateway import GatewayHandle, start_gateway
from tests.fixtures_proxy import ProxyHandle, start_proxy
from tests.processes import REPO_ROOT, ManagedProcess, free_port, http_ok, missing_tool
from tests.rawhttp import RawResponse, SlowClients, exchange, read_response

pytestmark = pytest.mark.slow
READ_TIMEOUT_SECONDS = 2
MAX_BODY_BYTES = 1024 * 1024
MAX_SERIES_POINTS = 1000
DIGITS = "/v1/digits:predict"
SERIES = "/v1/anomaly:score"


def _request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + b"\r\n" + body


# Each is answered by gunicorn, nginx or the app; each must be a JSON 4xx.
HOSTILE_REQUESTS: dict[str, bytes] = {
    "request line over 8 KB": _request(f"GET /{'a' * 20000} HTTP/1.1\nHost: t\n"),
    "one header of 20 KB": _request(f"GET /healthz HTTP/1.1\nHost: t\nX-Big: {'b' * 20000}\n"),
    "200 headers": _request("GET /healthz HTTP/1.1\nHost: t\n" + "".join(f"X-{i}: 1\n" for i in range(200))),
    "NUL in the method": b"G\x00T / HTTP/1.1\r\nHost: t\r\n\r\n",
    "lower-case method": _request("get / HTTP/1.1\nHost: t\n"),
    "unknown method": _request("BREW /healthz HTTP/1.1\nHost: t\n"),
    "TRACE": _request("TRACE / HTTP/1.1\nHost: t\n"),
    "CONNECT": _request("CONNECT example.com:443 HTTP/1.1\nHost: t\n"),
    "HTTP/3.0 on HTTP/1 framing": _request("GET / HTTP/3.0\nHost: t\n"),
    "garbage version": _request("GET / HTTP/x.y\nHost: t\n"),
    "bare CR inside a header": b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n",
    "space in a header name": _request("GET / HTTP/1.1\nHost: t\nX A: 1\n"),
    "obsolete line folding": _request("GET / HTTP/1.1\nHost: t\nX-A: 1\n folded\n"),
    "Content-Length and chunked": _request(
        f"POST {DIGITS} HTTP/1.1\nHost: t\nContent-Length: 5\nTransfer-Encoding: chunked\n", b"0\r\n\r\n"
    ),
    "two Content-Lengths": _request(f"POST {DIGITS} HTTP/1.1\nHost: t\nContent-Length: 1\nContent-Length: 2\n", b"ab"),
    "negative Content-Length": _request(f"POST {DIGITS} HTTP/1.1\nHost: t\nContent-Length: -1\n"),
    "Transfer-Encoding gzip": _request(f"POST {DIGITS} HTTP/1.1\nHost: t\nTransfer-Encoding: gzip\n"),
    "unknown transfer coding": _request(f"POST {DIGITS} HTTP/1.1\nHost: t\nTransfer-Encoding: foo, chunked\n"),
    "chunked twice": _request(f"POST {DIGITS} HTTP/1.1\nHost: t\nTransfer-Encoding: chunked, chunked\n"),
    "chunk size not hex": _request(
        f"POST {DIGITS} HTTP/1.1\nHost: t\nContent-Type: image/png\nTransfer-Encoding: chunked\n",
        b"zz\r\nabc\r\n0\r\n\r\n",
    ),
    "chunk without its CRLF": _request(
        f"POST {SERIES} HTTP/1.1\nHost: t\nContent-Type: application/json\nTransfer-Encoding: chunked\n",
        b"3\r\nabcXX0\r\n\r\n",
    ),
    "chunk extension garbage": _request(
        f"POST {DIGITS} HTTP/1.1\nHost: t\nContent-Type: image/png\nTransfer-Encoding: chunked\n",
        b"3;\x01=\x02\r\nabc\r\n0\r\n\r\n",
    ),
    "Expect: 999": _request(f"POST {DIGITS} HTTP/1.1\nHost: t\nExpect: 999-nonsense\nContent-Length: 1\n", b"a"),
    "declared body over the limit": _request(
        f"POST {DIGITS} HTTP/1.1\nHost: t\nContent-Type: image/png\nContent-Length: {MAX_BODY_BYTES * 40}\n"
    ),
    "more series values than any series may have": _request(
        f"POST {SERIES} HTTP/1.1\nHost: t\nContent-Type: application/json\nContent-Length: 60003\n",
        b"[" + b"0," * 30000 + b"0]",
    ),
}


STARTED_WORKERS: dict[str, set[int]] = {}  # worker class -> the gateway's worker pids once it is ready


def _gateway(model_server, folder: Path, worker_class: str) -> GatewayHandle:
    handle = start_gateway(
        model_server.grpc_target,
        log_dir=folder,
        worker_class=worker_class,
        read_timeout_seconds=READ_TIMEOUT_SECONDS,
        max_request_bytes=MAX_BODY_BYTES,
        max_series_points=MAX_SERIES_POINTS,
    )
    handle.wait_ready()
    STARTED_WORKERS[worker_class] = handle.worker_pids()
    return handle


@pytest.fixture(scope="module")
def hardened_gateway(model_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayHandle]:
    """The default gevent workers: meant to face clients directly."""
    handle = _gateway(model_server, tmp_path_factory.mktemp("gateway"), "gevent")
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def threaded_gateway(model_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayHandle]:
    """gthread workers: meant to run behind the proxy (compose, Kubernetes)."""
    handle = _gateway(model_server, tmp_path_factory.mktemp("gateway"), "gthread")
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def proxies(hardened_gateway: GatewayHandle, threaded_gateway: GatewayHandle) -> Iterator[dict[str, ProxyHandle]]:
    handles = {
        name: start_proxy(gateway.url, max_body_bytes=MAX_BODY_BYTES)
        for name, gateway in (("gevent", hardened_gateway), ("gthread", threaded_gateway))
    }
    yield handles
    for handle in handles.values():
        handle.stop()


@dataclass(frozen=True)
class Front:
    """Where a test's requests go: a gateway's own port, or a proxy's in front of it."""

    port: int
    proxied: bool


def _front(request: pytest.FixtureRequest) -> Front:
    worker_class, _, proxied = request.param.partition("+")
    if proxied:
        return Front(request.getfixturevalue("proxies")[worker_class].port, True)
    gateway = request.getfixturevalue("hardened_gateway" if worker_class == "gevent" else "threaded_gateway")
    return Front(int(gateway.url.rsplit(":", 1)[1]), False)


@pytest.fixture(params=["gevent", "gevent+proxy", "gthread", "gthread+proxy"])
def front(request: pytest.FixtureRequest) -> Front:
    return _front(request)


@pytest.fixture(params=["gevent", "gevent+proxy", "gthread+proxy"])
def slow_client_front(request: pytest.FixtureRequest) -> Front:
    """The set-ups that must survive many slow clients: gthread alone holds a thread per stalled request."""
    return _front(request)


def assert_json_client_error(response: RawResponse, case: str) -> None:
    assert 400 <= response.status < 500, f"{case}: {response.status} {response.body[:300]!r}"
    assert response.is_json, f"{case}: {response.headers} {response.body[:300]!r}"
    assert set(response.json()["error"]) == {"code", "message"}, case
    assert "server" not in response.headers, f"{case}: {response.headers['server']}"


@pytest.mark.parametrize("case", HOSTILE_REQUESTS)
def test_hostile_request_gets_a_json_client_error(front: Front, case: str) -> None:
    assert_json_client_error(exchange(front.port, HOSTILE_REQUESTS[case], timeout=20), case)


def _allowed(response: RawResponse) -> set[str]:
    return {method.strip() for method in response.headers.get("allow", "").split(",") if method.strip()}


def test_a_trace_the_proxy_refuses_names_what_the_gateway_allows(
    proxies: dict[str, ProxyHandle], threaded_gateway: GatewayHandle
) -> None:
    """nginx refuses TRACE itself, before the gateway sees it: its 405 must carry the `Allow` the gateway gives
    for that path (RFC 9110), and a path the gateway lacks must be a 404 as from the gateway. Every route of the
    app is tried, so a new route the proxy's map does not know fails here."""
    rules = create_app(GatewayConfig()).url_map.iter_rules()
    paths = {re.sub(r"<path:[^>]+>", "a1/b2", re.sub(r"<[^:>]+>", "a1", rule.rule)) for rule in rules}
    paths |= {"/nope", "/v1/models/mnist", "/v1/streams/a1/b2", "/v1/digits:predict/x"}
    gateway_port = int(threaded_gateway.url.rsplit(":", 1)[1])
    for path in sorted(paths):
        for query in ("", "?a=1"):
            direct = exchange(gateway_port, _request(f"PATCH {path}{query} HTTP/1.1\nHost: t\n"))
            refused = exchange(proxies["gthread"].port, _request(f"TRACE {path}{query} HTTP/1.1\nHost: t\n"))
            assert direct.status in (404, 405), (path, direct.status)
            assert (refused.status, _allowed(refused)) == (direct.status, _allowed(direct)), path + query
            assert_json_client_error(refused, f"TRACE {path}{query}")


def test_healthz_answers_within_a_second_while_200_connections_stall(slow_client_front: Front) -> None:
    port = slow_client_front.port
    with SlowClients(port, 200):
        for _ in range(5):
            started = time.monotonic()
            response = exchange(port, _request("GET /healthz HTTP/1.1\nHost: t\n"), timeout=5)
            assert response.status == 200
            assert time.monotonic() - started < 1.0
            assert "server" not in response.headers


def test_a_stalled_body_is_dropped(front: Front) -> None:
    """The gateway answers 408 after its read timeout; nginx (client_body_timeout) closes the connection."""
    direct = not front.proxied
    with SlowClients(front.port, 3) as stalled:
        for sock in stalled.sockets:
            sock.settimeout(30)  # the proxy's body timeout is 10 s; a hang fails with TimeoutError
            try:
                response = read_response(sock)
            except (ConnectionError, OSError) as exc:
                assert not direct, f"the gateway closed without an answer: {exc}"
                continue
            assert response.status == 408
            assert response.json()["error"]["code"] == "request_timeout"


def test_chunked_body_over_the_limit_is_refused(front: Front) -> None:
    """Chunked bodies have no declared length: they are counted as they arrive and refused at the limit."""
    chunk = b"\x00" * 65536
    with socket.create_connection(("127.0.0.1", front.port), timeout=20) as sock:
        head = f"POST {DIGITS} HTTP/1.1\nHost: t\nContent-Type: image/png\nTransfer-Encoding: chunked\n"
        sock.sendall(_request(head))
        try:
            for _ in range(2 * MAX_BODY_BYTES // len(chunk)):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the end: the answer is already waiting
        response = read_response(sock)
    assert_json_client_error(response, "chunked over the limit")
    assert response.status == 413


def test_body_cut_short_is_a_400(hardened_gateway: GatewayHandle) -> None:
    port = int(hardened_gateway.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(
            _request(
                f"POST {SERIES} HTTP/1.1\nHost: t\nContent-Type: application/json\nContent-Length: 100\n",
                b'{"values": [1,',
            )
        )
        sock.shutdown(socket.SHUT_WR)
        response = read_response(sock)
    assert_json_client_error(response, "short body")


def _float_tiff(*specials: float) -> bytes:
    pixels = np.zeros((40, 40), dtype=np.float32)
    pixels[10:30, 18:22] = 5.0
    pixels[5, 5 : 5 + len(specials)] = specials
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="F").save(buffer, format="TIFF")
    return buffer.getvalue()


HOSTILE_BODIES: dict[str, tuple[str, bytes]] = {
    "float TIFF with +inf": ("image/tiff", _float_tiff(np.inf)),
    "float TIFF with -inf": ("image/tiff", _float_tiff(-np.inf)),
    "float TIFF with +inf and -inf": ("image/tiff", _float_tiff(np.inf, -np.inf)),
    "float TIFF with NaN and max float": ("image/tiff", _float_tiff(np.nan, np.finfo(np.float32).max)),
    "multipart with 5,000 empty parts": (
        "multipart/form-data; boundary=b",
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n\r\n' * 5000 + b"--b--\r\n",
    ),
    "multipart without a closing boundary": (
        "multipart/form-data; boundary=b",
        b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n' + b"\x89PNG" * 1000,
    ),
}


ROW = ",".join(["0"] * 28)


def _pixels_starting_with(first: str) -> bytes:
    """A digits JSON body of 28x28 pixels whose first value is the literal `first`."""
    rows = [f"[{first}," + ",".join(["0"] * 27) + "]"] + [f"[{ROW}]"] * 27
    return ('{"instances": [{"pixels": [' + ",".join(rows) + "]}]}").encode()


NON_FINITE_JSON: dict[str, tuple[str, bytes]] = {
    "pixels holding 1e400": (DIGITS, _pixels_starting_with("1e400")),
    "pixels holding NaN": (DIGITS, _pixels_starting_with("NaN")),
    "series value 1e400": (SERIES, b'{"timestamps": [0, 60, 120], "values": [1, 1e400, 2]}'),
    "series value Infinity": (SERIES, b'{"timestamps": [0, 60, 120], "values": [1, Infinity, 2]}'),
    "series value -NaN": (SERIES, b'{"timestamps": [0, 60, 120], "values": [1, -NaN, 2]}'),
    "timestamp 1e400": (SERIES, b'{"timestamps": [0, 1e400, 120], "values": [1, 2, 3]}'),
    "threshold NaN": (SERIES, b'{"timestamps": [0, 60, 120], "values": [1, 2, 3], "threshold": NaN}'),
}


@pytest.mark.parametrize("case", HOSTILE_BODIES)
def test_hostile_digit_body_gets_a_json_client_error(front: Front, case: str) -> None:
    content_type, body = HOSTILE_BODIES[case]
    head = f"POST {DIGITS} HTTP/1.1\nHost: t\nContent-Type: {content_type}\nContent-Length: {len(body)}\n"
    assert_json_client_error(exchange(front.port, _request(head, body), timeout=30), case)


@pytest.mark.parametrize("case", NON_FINITE_JSON)
def test_non_finite_numbers_get_a_json_client_error(front: Front, case: str) -> None:
    path, body = NON_FINITE_JSON[case]
    head = f"POST {path} HTTP/1.1\nHost: t\nContent-Type: application/json\nContent-Length: {len(body)}\n"
    assert_json_client_error(exchange(front.port, _request(head, body), timeout=30), case)


@pytest.mark.parametrize("path", [DIGITS, SERIES, "/v1/streams/s1:append"])
def test_a_compressed_body_is_refused_with_415_not_misread(front: Front, path: str) -> None:
    """A gzip body read as it is would be "not JSON"; it is refused as compressed, saying what is accepted."""
    body = gzip.compress(b'{"timestamps": [0, 60, 120], "values": [1, 2, 3], "after": null}')
    head = (
        f"POST {path} HTTP/1.1\nHost: t\nContent-Type: application/json\nContent-Encoding: gzip\n"
        f"Content-Length: {len(body)}\n"
    )
    response = exchange(front.port, _request(head, body), timeout=30)
    assert_json_client_error(response, path)
    assert (response.status, response.json()["error"]["code"]) == (415, "unsupported_content_encoding")
    assert response.headers["accept-encoding"] == "identity"


def test_public_answers_name_no_internal_address(tmp_path) -> None:
    """With the model server down, /readyz and the API say so without its address (which stays in the log)."""
    dead = free_port()
    gateway = start_gateway(f"127.0.0.1:{dead}", log_dir=tmp_path, deadline_seconds=1, upstream_retries=0)
    try:
        port = int(gateway.url.rsplit(":", 1)[1])
        for raw in (
            _request("GET /readyz HTTP/1.1\nHost: t\n"),
            _request("GET /v1/models HTTP/1.1\nHost: t\n"),
            _request(f"POST {DIGITS} HTTP/1.1\nHost: t\nContent-Type: application/json\nContent-Length: 2\n", b"{}"),
        ):
            response = exchange(port, raw)
            assert response.status in (400, 422, 503), response.body
            assert str(dead) not in response.body.decode() and "127.0.0.1" not in response.body.decode()
    finally:
        gateway.stop()


def test_connections_per_client_are_limited_but_health_checks_are_not(hardened_gateway: GatewayHandle) -> None:
    limited = start_proxy(hardened_gateway.url, max_body_bytes=MAX_BODY_BYTES, connections_per_client=5)
    try:
        with SlowClients(limited.port, 5):  # five uploads in progress hold the client's five connections
            refused = exchange(limited.port, _request("GET /v1/models HTTP/1.1\nHost: t\n"))
            assert_json_client_error(refused, "sixth connection")
            assert refused.status == 429 and refused.headers["retry-after"] == "1"
            assert exchange(limited.port, _request("GET /healthz HTTP/1.1\nHost: t\n")).status == 200
    finally:
        limited.stop()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # self-signed, on purpose
def test_the_proxy_container_entrypoint_serves_tls_with_a_self_signed_certificate(
    hardened_gateway: GatewayHandle, tmp_path
) -> None:
    """serving/proxy/entrypoint.sh as the image runs it (templates and prefix pointed at the repository)."""
    if nginx_binary() is None or shutil.which("envsubst") is None or shutil.which("openssl") is None:
        missing_tool("nginx, envsubst (gettext-base) and openssl are needed")
    http_port, tls_port = free_port(), free_port()
    env = {
        "PATH": f"{Path(nginx_binary()).parent}:{os.environ['PATH']}",
        "PROXY_TEMPLATES": str(REPO_ROOT / "serving" / "proxy"),
        "PROXY_PREFIX": str(tmp_path / "nginx"),
        "PROXY_LISTEN": f"127.0.0.1:{http_port}",
        "PROXY_TLS_PORT": f"127.0.0.1:{tls_port}",
        "PROXY_UPSTREAM": hardened_gateway.url.removeprefix("http://"),
        "PROXY_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "PROXY_CONNECTIONS_PER_CLIENT": "64",
    }
    process = ManagedProcess(
        [str(REPO_ROOT / "serving" / "proxy" / "entrypoint.sh")],
        tmp_path / "proxy.log",
        ready=lambda: http_ok(f"http://127.0.0.1:{http_port}/healthz"),
        env=env,
        timeout=60,
    )
    try:
        response = requests.get(f"https://127.0.0.1:{tls_port}/healthz", verify=False, timeout=10)
        assert response.status_code == 200 and response.json() == {"status": "ok"}
        assert "server" not in response.headers
        certificate = ssl.get_server_certificate(("127.0.0.1", tls_port))
        assert "BEGIN CERTIFICATE" in certificate
        assert "self-signed" in process.log()
        refused = requests.post(
            f"https://127.0.0.1:{tls_port}/v1/digits:predict",
            data=b"x" * (MAX_BODY_BYTES + 1),
            verify=False,
            timeout=30,
        )
        assert refused.status_code == 413 and refused.json()["error"]["code"] == "payload_too_large"
    finally:
        process.stop()


def test_a_worker_holds_a_bounded_amount_of_body_bytes(model_server, tmp_path) -> None:
    """One worker whose budget is one full body: while a stalled upload holds it, the next big body waits a
    few seconds and is told 503 `busy`; once the upload is gone, bodies are read again."""
    gateway = start_gateway(
        model_server.grpc_target,
        log_dir=tmp_path,
        workers=1,
        read_timeout_seconds=30,
        max_request_bytes=MAX_BODY_BYTES,
        max_inflight_body_bytes=MAX_BODY_BYTES,
    )
    port = int(gateway.url.rsplit(":", 1)[1])
    body = b"\x00" * (MAX_BODY_BYTES // 2)
    head = f"POST {DIGITS} HTTP/1.1\nHost: t\nContent-Type: image/png\nContent-Length: {len(body)}\n"
    try:
        holder = socket.create_connection(("127.0.0.1", port), timeout=30)
        holder.sendall(
            _request(
                f"POST {DIGITS} HTTP/1.1\nHost: t\nContent-Type: image/png\nContent-Length: {MAX_BODY_BYTES}\n",
                b"\x89PNG",
            )
        )
        time.sleep(0.5)
        busy = exchange(port, _request(head, body))
        assert busy.is_json and "server" not in busy.headers
        assert busy.status == 503 and busy.json()["error"]["code"] == "busy"
        assert busy.headers["retry-after"] == "1"
        holder.close()
        time.sleep(0.5)
        assert exchange(port, _request(head, body)).status == 415  # read again: not an image
    finally:
        gateway.stop()


def test_no_worker_died_and_no_bug_was_logged(hardened_gateway: GatewayHandle, threaded_gateway: GatewayHandle) -> None:
    """Runs last in this module: after every hostile case above, both gateways kept their workers and logged no
    traceback (an unhandled error is logged with one)."""
    for worker_class, gateway in (("gevent", hardened_gateway), ("gthread", threaded_gateway)):
        assert gateway.worker_pids() == STARTED_WORKERS[worker_class], f"{worker_class}: a worker died"
        assert "Traceback" not in gateway.log(), gateway.log()[-3000:]

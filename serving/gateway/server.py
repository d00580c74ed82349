"""Run the gateway under gunicorn through its Python API (`gunicorn.app.base.BaseApplication`).

Workers are gevent greenlets by default (serving/gateway/worker.py: slow clients cost a greenlet, not a
thread, and every socket read has a deadline); `gthread` and `sync` remain for comparisons. Both gevent and
gthread keep client connections alive between requests and let the micro-batcher gather concurrent
requests of one worker into one Predict call. The app is not
preloaded: each worker imports it and opens its own gRPC channel after the fork.

Metrics use prometheus-client's multiprocess mode: PROMETHEUS_MULTIPROC_DIR is set here, in the
master, before any worker imports prometheus_client; stale files are removed at start, and the
`child_exit` hook marks dead workers so their live gauges disappear.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from serving.gateway.config import GatewayConfig
from serving.ports import holders, port_free

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The gateway's own subclasses of gunicorn's workers (serving/gateway/worker.py); `sync` stays gunicorn's.
WORKER_CLASS_PATHS = {
    "gevent": "serving.gateway.worker.GatewayWorker",
    "gthread": "serving.gateway.worker.GatewayThreadWorker",
}


def prepare_metrics_dir(environ: dict[str, str] | os._Environ[str] = os.environ) -> tuple[Path, bool]:
    """A clean PROMETHEUS_MULTIPROC_DIR (the given one emptied, else a fresh temporary one, exported).

    Returns the directory and whether it was created here (and so is removed at shutdown).
    """
    given = environ.get(MULTIPROC_ENV)
    if not given:
        path = Path(tempfile.mkdtemp(prefix="gateway-metrics-"))
        environ[MULTIPROC_ENV] = str(path)
        return path, True
    path = Path(given)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    return path, False


def _child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _no_request_line_log(_worker: Any, _request: Any) -> None:
    """gunicorn's default `pre_request` logs each request line at debug level, ~5 us a request with debug off."""


class GatewayServer(BaseApplication):
    """gunicorn with the gateway's settings; `load()` builds the Flask app inside each worker."""

    def __init__(self, config: GatewayConfig) -> None:
        self.gateway_config = config
        super().__init__()

    def load_config(self) -> None:
        config = self.gateway_config
        settings = {
            "bind": [f"{config.host}:{port}" for port in (config.port, config.metrics_port) if port],
            "workers": config.workers,
            "worker_class": WORKER_CLASS_PATHS.get(config.worker_class, config.worker_class),
            "threads": config.threads,
            "worker_connections": config.worker_connections,
            # A worker busy longer than any request may take is stuck: let the master replace it.
            "timeout": max(30, int(config.deadline_seconds * 4)),
            "graceful_timeout": 10,
            "keepalive": 15,
            "loglevel": config.log_level,
            "errorlog": "-",
            "child_exit": _child_exit,
            **({} if config.log_level == "debug" else {"pre_request": _no_request_line_log}),
            "proc_name": "serving.gateway",
            # gunicorn's control socket has one fixed default path: two gateways on a host would clash.
            "control_socket_disable": True,
            # Each worker binds its own SO_REUSEPORT socket (gunicorn does that when reuse_port is set), so the
            # kernel spreads new connections over the workers; with one shared socket, keep-alive clients
            # stuck to whichever worker accepted them first (one worker did all the work at 4 and 16 clients).
            "reuse_port": bool(config.reuse_port),
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from serving.gateway.app import create_app

        return create_app(self.gateway_config)


def check_ports_free(config: GatewayConfig) -> None:
    """Refuse to start on a port another server listens on.

    With SO_REUSEPORT a second gateway of the same user would bind the same port silently and take half the
    connections; a probe bound without that flag fails on any listener, so the clash is reported instead.
    """
    for port in (config.port, config.metrics_port):
        if port and not port_free(port, config.host):
            who = "; ".join(holders(port)) or "another process"
            raise SystemExit(f"serving.gateway: port {port} is in use by {who}")


def serve(config: GatewayConfig) -> None:
    """Start the master and its workers; returns when gunicorn stops (SIGTERM, SIGINT)."""
    check_ports_free(config)
    metrics_dir, temporary = prepare_metrics_dir()
    master = os.getpid()
    try:
        GatewayServer(config).run()
    finally:
        # Workers leave through sys.exit() in a fork of this frame; only the master cleans up.
        if temporary and os.getpid() == master:
            shutil.rmtree(metrics_dir, ignore_errors=True)

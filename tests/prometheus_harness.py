"""Run a real Prometheus (the Debian `prometheus` binary) against loopback targets, with our rules loaded.

`start_prometheus` derives a test configuration from `monitoring/prometheus.yml`: the jobs named in
`scrape_targets` keep their metrics path and get loopback targets, the other jobs are dropped, scrape and
rule evaluation run every second, and the rule files are resolved to absolute paths. The returned handle
answers PromQL through the HTTP API.

The dashboard helpers extract every panel query from the Grafana dashboards so a test can check that each
one parses (`PrometheusHandle.query` raises `PromQLError` on a 400) and, against a Prometheus that scraped
real traffic, which ones return data (`panels_without_data`).
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.processes import REPO_ROOT, ManagedProcess, free_port, http_ok

MONITORING_DIR = REPO_ROOT / "monitoring"
PROMETHEUS_YML = MONITORING_DIR / "prometheus.yml"
DASHBOARD_DIR = MONITORING_DIR / "grafana" / "dashboards"

# Grafana's built-in variables, replaced by plain durations before a query is sent to Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


class PromQLError(RuntimeError):
    """Prometheus rejected a query (syntax or evaluation error)."""


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str


class PrometheusHandle:
    """A running Prometheus: PromQL queries, alerts and rule groups over its HTTP API."""

    def __init__(self, process: ManagedProcess, url: str, config_path: Path) -> None:
        self.process = process
        self.url = url
        self.config_path = config_path

    def _get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            detail = json.loads(error.read() or b"{}")
            raise PromQLError(f"{error.code} {detail.get('errorType')}: {detail.get('error')}") from error
        if body.get("status") != "success":
            raise PromQLError(str(body))
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (or a one-element list for a scalar)."""
        data = self._get("/api/v1/query", query=promql)
        result = data["result"]
        return result if data["resultType"] in ("vector", "matrix") else [{"value": result}]

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing), each with labels, annotations, state and value."""
        return self._get("/api/v1/alerts")["alerts"]

    def rule_groups(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/rules")["groups"]

    def targets(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/targets")["activeTargets"]

    def wait_for(self, promql: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll `promql` until it returns a non-empty result; raise TimeoutError with the last state."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"no data for {promql!r} after {timeout}s; targets: {self.targets()}")
            time.sleep(0.5)

    def stop(self) -> None:
        self.process.stop()


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def derive_config(
    scrape_targets: dict[str, list[str]],
    metrics_paths: dict[str, str] | None = None,
    rule_files: list[Path] | None = None,
    source: Path = PROMETHEUS_YML,
    interval: str = "1s",
) -> dict[str, Any]:
    """The test configuration: `source` with loopback targets, fast intervals and absolute rule paths.

    A job in `scrape_targets` that `source` lacks is added (its path from `metrics_paths`, else /metrics);
    `metrics_paths` also overrides the path of an existing job.
    """
    config = yaml.safe_load(source.read_text())
    metrics_paths = metrics_paths or {}
    jobs = {job["job_name"]: job for job in config.get("scrape_configs", [])}
    scrape_configs = []
    for name, targets in scrape_targets.items():
        job = dict(jobs.get(name, {"job_name": name}))
        job["static_configs"] = [{"targets": list(targets)}]
        job["metrics_path"] = metrics_paths.get(name, job.get("metrics_path", "/metrics"))
        job["scrape_interval"] = interval
        job.pop("scrape_timeout", None)
        scrape_configs.append(job)
    config["scrape_configs"] = scrape_configs
    config["global"] = {
        **config.get("global", {}),
        "scrape_interval": interval,
        "evaluation_interval": interval,
    }
    if rule_files is None:
        rule_files = [source.parent / pattern for pattern in config.get("rule_files", [])]
    config["rule_files"] = [str(Path(path).resolve()) for path in rule_files]
    return config


def start_prometheus(
    scrape_targets: dict[str, list[str]],
    workdir: Path,
    metrics_paths: dict[str, str] | None = None,
    rule_files: list[Path] | None = None,
    source: Path = PROMETHEUS_YML,
    interval: str = "1s",
    timeout: float = 60.0,
) -> PrometheusHandle:
    """Start Prometheus on a free loopback port, scraping `scrape_targets` ({job: ["host:port", ...]}).

    Data, configuration and log live under `workdir`. Stop it with `handle.stop()`.
    """
    binary = prometheus_binary()
    if binary is None:
        raise FileNotFoundError("prometheus binary not found (Debian package `prometheus`)")
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "prometheus.yml"
    config = derive_config(scrape_targets, metrics_paths, rule_files, source, interval)
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = ManagedProcess(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        log_path=workdir / "prometheus.log",
        ready=lambda: http_ok(f"{url}/-/ready"),
        timeout=timeout,
        cwd=workdir,
    )
    return PrometheusHandle(process, url, config_path)


def dashboard_files(directory: Path = DASHBOARD_DIR) -> list[Path]:
    return sorted(directory.glob("*.json"))


def panel_queries(dashboard: Path) -> list[PanelQuery]:
    """Every PromQL target of every panel (rows included), Grafana variables replaced by durations."""
    document = json.loads(dashboard.read_text())
    queries = []

    def visit(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                queries.append(PanelQuery(dashboard.name, panel.get("title", ""), target.get("refId", ""), expr))
            visit(panel.get("panels", []))

    visit(document.get("panels", []))
    return queries


def all_panel_queries(directory: Path = DASHBOARD_DIR) -> list[PanelQuery]:
    return [query for path in dashboard_files(directory) for query in panel_queries(path)]


def unparsable_panels(prometheus: PrometheusHandle, queries: list[PanelQuery]) -> dict[PanelQuery, str]:
    """Queries that Prometheus rejects, with its error message."""
    errors = {}
    for query in queries:
        try:
            prometheus.query(query.expr)
        except PromQLError as error:
            errors[query] = str(error)
    return errors


def panels_without_data(prometheus: PrometheusHandle, queries: list[PanelQuery]) -> list[PanelQuery]:
    """Queries that return no series on `prometheus` (call after it scraped real traffic).

    A panel may legitimately be empty (an error panel while nothing fails), so the caller decides which
    of these are acceptable.
    """
    return [query for query in queries if not prometheus.query(query.expr)]

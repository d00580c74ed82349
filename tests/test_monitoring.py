"""Prometheus configuration, rules and Grafana dashboards, checked with promtool and a real Prometheus."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.processes import ManagedProcess, free_port, http_ok, tool
from tests.prometheus_harness import (
    DASHBOARD_DIR,
    MONITORING_DIR,
    PROMETHEUS_YML,
    PrometheusHandle,
    PromQLError,
    all_panel_queries,
    derive_config,
    start_prometheus,
    unparsable_panels,
)

RULES_DIR = MONITORING_DIR / "rules"
RULE_TESTS = sorted((MONITORING_DIR / "tests").glob("*.yml"))
PROVISIONING = MONITORING_DIR / "grafana" / "provisioning"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, cwd=MONITORING_DIR, timeout=120)


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict]:
    return [rule for group in load_yaml(RULES_DIR / "alerts.yml")["groups"] for rule in group["rules"]]


def test_promtool_check_config() -> None:
    result = promtool("check", "config", str(PROMETHEUS_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", *map(str, sorted(RULES_DIR.glob("*.yml"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rule_unit_tests() -> None:
    assert RULE_TESTS, "no rule unit tests in monitoring/tests"
    result = promtool("test", "rules", *map(str, RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """A wrong expectation makes `promtool test rules` fail, so the suite above proves something."""
    broken = load_yaml(MONITORING_DIR / "tests" / "alerts_test.yml")
    broken["rule_files"] = [str(RULES_DIR / "recording.yml"), str(RULES_DIR / "alerts.yml")]
    first = broken["tests"][0]["alert_rule_test"][0]
    first["exp_alerts"] = [{"exp_labels": {"severity": "critical"}}]
    path = tmp_path / "broken_test.yml"
    path.write_text(yaml.safe_dump(broken))
    result = promtool("test", "rules", str(path))
    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing() -> None:
    fired = {
        case["alertname"]
        for path in RULE_TESTS
        for test in load_yaml(path)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "alerts without a firing unit test"


def test_alerts_have_severity_and_summary() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    assert {
        "ModelNotReady",
        "GatewayHighErrorRatio",
        "GatewayHighLatencyP99",
        "GatewayUpstreamErrors",
        "AnomalyRateSpike",
        "DigitConfidenceDrop",
    } <= {rule["alert"] for rule in alert_rules()}
    model_not_ready = next(rule for rule in alert_rules() if rule["alert"] == "ModelNotReady")
    assert model_not_ready["expr"].strip() == "gateway_model_ready == 0"
    assert model_not_ready["for"] == "1m"


def test_prometheus_config_scrapes_gateway_and_model_server() -> None:
    jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS_YML)["scrape_configs"]}
    assert jobs["gateway"]["metrics_path"] == "/metrics"
    assert jobs["gateway"]["static_configs"][0]["targets"] == ["gateway:9102"]
    assert jobs["tfserving"]["metrics_path"] == "/monitoring/prometheus/metrics"
    assert jobs["tfserving"]["static_configs"][0]["targets"] == ["tfserving:8501"]


def test_grafana_provisioning_matches_dashboards() -> None:
    datasource = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"][0]
    assert datasource["type"] == "prometheus"
    provider = load_yaml(PROVISIONING / "dashboards" / "dashboards.yml")["providers"][0]
    assert provider["type"] == "file"
    dashboards = sorted(DASHBOARD_DIR.glob("*.json"))
    assert dashboards
    for path in dashboards:
        document = json.loads(path.read_text())
        panels = document["panels"]
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in panels:
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
            assert panel["targets"], panel["title"]
            assert all(target["datasource"]["uid"] == datasource["uid"] for target in panel["targets"])


def test_dashboard_covers_the_product() -> None:
    text = " ".join(query.expr for query in all_panel_queries())
    for metric in (
        "gateway_requests_total",
        "gateway_request_duration_seconds_bucket",
        "gateway_stage_duration_seconds_bucket",
        "gateway_batch_size",
        "gateway_digit_predictions_total",
        "gateway_digit_confidence",
        "gateway_anomaly_points_flagged_total",
        "gateway_anomaly_events_total",
        "gateway_streams_active",
        "gateway_stream_appends_total",
        "gateway_stream_events_total",
        "gateway_stream_store_errors_total",
        "gateway_model_version_responses_total",
        "gateway_model_ready",
        "gateway_upstream_errors_total",
        ":tensorflow:serving:request_count",
        ":tensorflow:serving:request_latency_bucket",
    ):
        assert metric in text, f"no dashboard panel uses {metric}"


def test_derived_config_rewrites_targets_and_rules() -> None:
    config = derive_config({"gateway": ["127.0.0.1:1234"], "extra": ["127.0.0.1:99"]}, {"extra": "/m"})
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"gateway", "extra"}
    assert jobs["gateway"]["static_configs"] == [{"targets": ["127.0.0.1:1234"]}]
    assert jobs["extra"]["metrics_path"] == "/m"
    assert all(Path(path).is_absolute() and Path(path).exists() for path in config["rule_files"])


# A tiny exporter with gateway metric names: 1 of 4 requests fails and the mnist model is not ready.
EXPORTER = """
import sys, time
from prometheus_client import Counter, Gauge, start_http_server
ready = Gauge("gateway_model_ready", "model AVAILABLE upstream", ["model"])
ready.labels(model="mnist").set(0)
ready.labels(model="anomaly").set(1)
requests = Counter("gateway_requests_total", "requests", ["endpoint", "method", "status"])
start_http_server(int(sys.argv[1]), addr="127.0.0.1")
while True:
    requests.labels("/v1/digits:predict", "POST", "200").inc(3)
    requests.labels("/v1/digits:predict", "POST", "500").inc(1)
    time.sleep(0.1)
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusHandle]:
    tool("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    exporter = ManagedProcess(
        [sys.executable, "-c", EXPORTER, str(port)],
        log_path=workdir / "exporter.log",
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/metrics"),
        timeout=30,
    )
    handle = start_prometheus({"gateway": [f"127.0.0.1:{port}"]}, workdir)
    try:
        yield handle
    finally:
        handle.stop()
        exporter.stop()


@pytest.mark.slow
def test_real_prometheus_scrapes_and_evaluates_rules(prometheus: PrometheusHandle) -> None:
    up = prometheus.wait_for('up{job="gateway"} == 1')
    assert len(up) == 1
    ratio = prometheus.wait_for("endpoint:gateway_request_errors:ratio_rate5m")
    assert ratio[0]["metric"] == {
        "__name__": "endpoint:gateway_request_errors:ratio_rate5m",
        "endpoint": "/v1/digits:predict",
    }
    assert float(ratio[0]["value"][1]) == pytest.approx(0.25, abs=0.02)
    groups = prometheus.rule_groups()
    rule_files = {str(RULES_DIR / "recording.yml"), str(RULES_DIR / "alerts.yml")}
    assert {group["file"] for group in groups} == rule_files
    unhealthy = [
        (rule["name"], rule.get("lastError")) for group in groups for rule in group["rules"] if rule["health"] == "err"
    ]
    assert unhealthy == []


@pytest.mark.slow
def test_real_prometheus_raises_model_not_ready(prometheus: PrometheusHandle) -> None:
    prometheus.wait_for('ALERTS{alertname="ModelNotReady"}')
    alerts = [alert for alert in prometheus.alerts() if alert["labels"]["alertname"] == "ModelNotReady"]
    assert [alert["labels"]["model"] for alert in alerts] == ["mnist"]
    assert alerts[0]["state"] in {"pending", "firing"}
    assert alerts[0]["labels"]["severity"] == "critical"


@pytest.mark.slow
def test_every_dashboard_query_parses(prometheus: PrometheusHandle) -> None:
    queries = all_panel_queries()
    assert len(queries) >= 20
    assert unparsable_panels(prometheus, queries) == {}


@pytest.mark.slow
def test_query_check_rejects_bad_promql(prometheus: PrometheusHandle) -> None:
    with pytest.raises(PromQLError, match="400 bad_data"):
        prometheus.query("sum by (endpoint (rate(gateway_requests_total[1m]))")

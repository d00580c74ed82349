"""Kubernetes manifests: built by `kubectl kustomize`, checked by kubernetes-validate and a CRD schema."""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.processes import REPO_ROOT, tool

K8S = REPO_ROOT / "k8s"
OVERLAYS = ("cpu", "gpu", "fleet")
# Oldest and newest Kubernetes versions whose schemas kubernetes-validate ships offline that we support
# (autoscaling/v2 and policy/v1 need 1.23+; the package ships 1.25 to 1.37).
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
SERVICE_MONITOR_SCHEMA = K8S / "schemas" / "servicemonitor-v1.schema.json"
CUSTOM_KINDS = {"ServiceMonitor"}


@cache
def build(overlay: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def find(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    matches = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def workloads(docs: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] in {"Deployment", "Job", "StatefulSet"}]


def container(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(item for item in pod_spec(doc)["containers"] if item["name"] == name)


def kubernetes_validate(docs: list[dict[str, Any]], version: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"manifests-{version}.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return subprocess.run(
        [tool("kubernetes-validate"), "--strict", "--kubernetes-version", version, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_every_resource(overlay: str) -> None:
    kinds = sorted((doc["kind"], doc["metadata"]["name"]) for doc in build(overlay))
    fleet = [("Job", "training-fleet"), ("PersistentVolumeClaim", "asset-data")] if overlay == "fleet" else []
    assert [(kind, name) for kind, name in kinds if kind not in ("ConfigMap", "Secret")] == sorted(
        [
            *fleet,
            ("Namespace", "digits-sensors"),
            ("PersistentVolumeClaim", "models"),
            ("Job", "training"),
            ("Deployment", "tfserving"),
            ("Service", "tfserving"),
            ("Deployment", "gateway"),
            ("Service", "gateway"),
            ("StatefulSet", "redis"),
            ("Service", "redis"),
            ("NetworkPolicy", "redis-ingress"),
            ("HorizontalPodAutoscaler", "gateway"),
            ("Deployment", "proxy"),
            ("Service", "proxy"),
            ("PodDisruptionBudget", "tfserving"),
            ("PodDisruptionBudget", "gateway"),
            ("NetworkPolicy", "tfserving-ingress"),
            ("NetworkPolicy", "default-deny"),
            ("NetworkPolicy", "dns-egress"),
            ("NetworkPolicy", "proxy"),
            ("NetworkPolicy", "gateway"),
            ("NetworkPolicy", "training-egress"),
            ("ServiceMonitor", "gateway"),
            ("ServiceMonitor", "tfserving"),
        ]
    )
    assert all(
        doc["metadata"].get("namespace") == "digits-sensors" for doc in build(overlay) if doc["kind"] != "Namespace"
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_builtin_kinds_pass_strict_kubernetes_validate(overlay: str, version: str, tmp_path: Path) -> None:
    docs = [doc for doc in build(overlay) if doc["kind"] not in CUSTOM_KINDS]
    result = kubernetes_validate(docs, version, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count(" passed for resource ") == len(docs), output
    assert "WARN" not in output and "ERROR" not in output, output


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path) -> None:
    deployment = json.loads(json.dumps(find(build("cpu"), "Deployment", "gateway")))
    container(deployment, "gateway")["securityContext"]["readOnlyRootFileSystem"] = True
    result = kubernetes_validate([deployment], KUBERNETES_VERSIONS[-1], tmp_path)
    assert result.returncode != 0
    assert "readOnlyRootFileSystem" in result.stdout + result.stderr


@cache
def service_monitor_validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SERVICE_MONITOR_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_monitors_match_crd_schema_and_services(overlay: str) -> None:
    docs = build(overlay)
    monitors = [doc for doc in docs if doc["kind"] == "ServiceMonitor"]
    assert len(monitors) == 2
    for monitor in monitors:
        errors = [error.message for error in service_monitor_validator().iter_errors(monitor)]
        assert errors == [], monitor["metadata"]["name"]
        service = find(docs, "Service", monitor["metadata"]["name"])
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        ports = {port["name"] for port in service["spec"]["ports"]}
        assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= ports
    paths = {monitor["metadata"]["name"]: monitor["spec"]["endpoints"][0]["path"] for monitor in monitors}
    assert paths == {"gateway": "/metrics", "tfserving": "/monitoring/prometheus/metrics"}


def test_service_monitor_schema_rejects_bad_values() -> None:
    monitor = json.loads(json.dumps(find(build("cpu"), "ServiceMonitor", "gateway")))
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    monitor["spec"]["endpoints"][0]["pathh"] = "/metrics"
    messages = " ".join(error.message for error in service_monitor_validator().iter_errors(monitor))
    assert "15 seconds" in messages and "pathh" in messages


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_locked_down(overlay: str) -> None:
    for workload in workloads(build(overlay)):
        spec = pod_spec(workload)
        assert spec["automountServiceAccountToken"] is False, workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for item in spec["containers"]:
            context = item["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, item["name"]
            assert context["allowPrivilegeEscalation"] is False, item["name"]
            assert context["capabilities"]["drop"] == ["ALL"], item["name"]
            assert {"cpu", "memory"} <= item["resources"]["requests"].keys(), item["name"]
            assert {"cpu", "memory"} <= item["resources"]["limits"].keys(), item["name"]
            assert ":" in item["image"] and not item["image"].endswith(":latest"), item["image"]


def test_gpu_overlay_requests_gpus_and_gpu_images() -> None:
    gpu, cpu = build("gpu"), build("cpu")
    for kind, name in (("Job", "training"), ("Deployment", "tfserving")):
        assert container(find(gpu, kind, name), name)["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert container(find(gpu, kind, name), name)["image"].endswith("-gpu")
        assert "nvidia.com/gpu" in {t["key"] for t in pod_spec(find(gpu, kind, name))["tolerations"]}
        assert "nvidia.com/gpu" not in container(find(cpu, kind, name), name)["resources"]["limits"]
        assert not container(find(cpu, kind, name), name)["image"].endswith("-gpu")
    assert container(find(gpu, "Deployment", "gateway"), "gateway")["image"] == "digits-sensors/gateway:0.1.0"


def test_fleet_overlay_shards_an_indexed_job_and_serves_the_generated_config() -> None:
    docs = build("fleet")
    job = find(docs, "Job", "training-fleet")
    assert job["spec"]["completionMode"] == "Indexed"
    trainer = container(job, "training")
    shard_count = next(item["value"] for item in trainer["env"] if item["name"] == "SHARD_COUNT")
    assert int(shard_count) == job["spec"]["completions"]
    assert trainer["args"][:3] == ["anomaly", "--data", "/data"]
    assert {(m["name"], m["mountPath"]) for m in trainer["volumeMounts"]} >= {("models", "/models"), ("data", "/data")}
    tfserving = container(find(docs, "Deployment", "tfserving"), "tfserving")["args"]
    assert "--model_config_file=/models/models.config" in tfserving
    assert "--model_config_file_poll_wait_seconds=60" in tfserving
    gateway = container(find(docs, "Deployment", "gateway"), "gateway")
    assert {"name": "GATEWAY_MODELS_CONFIG", "value": "/models/models.config"} in gateway["env"]
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in gateway["volumeMounts"]


def test_tfserving_config_copies_match_serving_config() -> None:
    copies = K8S / "base" / "tfserving-config"
    originals = REPO_ROOT / "serving" / "config"
    assert sorted(path.name for path in copies.iterdir()) == sorted(path.name for path in originals.iterdir())
    for original in originals.iterdir():
        assert (copies / original.name).read_text() == original.read_text(), (
            f"k8s/base/tfserving-config/{original.name} differs from serving/config: copy it again"
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_tfserving_reads_files_of_the_generated_config_map(overlay: str) -> None:
    docs = build(overlay)
    deployment = find(docs, "Deployment", "tfserving")
    volumes = {volume["name"]: volume for volume in pod_spec(deployment)["volumes"]}
    server = container(deployment, "tfserving")
    mounts = {mount["mountPath"]: mount for mount in server["volumeMounts"]}
    config_map_name = volumes[mounts["/config"]["name"]]["configMap"]["name"]
    config_map = find(docs, "ConfigMap", config_map_name)
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in server["args"] if "=" in arg)
    generated = overlay == "fleet"  # the fleet's models.config is the training job's, on the models volume
    assert flags["model_config_file"] == ("/models/models.config" if generated else "/config/models.config")
    for flag in ("batching_parameters_file", "monitoring_config_file", *(() if generated else ("model_config_file",))):
        assert flags[flag].startswith("/config/")
        assert flags[flag].removeprefix("/config/") in config_map["data"], flag
    assert {"--enable_model_warmup", "--enable_batching"} <= set(server["args"])
    assert mounts["/models"]["readOnly"] is True
    claim = volumes[mounts["/models"]["name"]]["persistentVolumeClaim"]["claimName"]
    assert find(docs, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]
    assert "--if-missing" in container(find(docs, "Job", "training"), "training")["args"]


def test_tfserving_readiness_probe_is_the_compose_healthcheck() -> None:
    probe = container(find(build("cpu"), "Deployment", "tfserving"), "tfserving")["readinessProbe"]
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    assert ["CMD", *probe["exec"]["command"]] == compose["services"]["tfserving"]["healthcheck"]["test"]


def test_services_pdbs_hpa_and_annotations_select_the_right_pods() -> None:
    docs = build("cpu")
    for name, port in (("gateway", 9102), ("tfserving", 8501)):
        deployment = find(docs, "Deployment", name)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        for kind in ("Service", "PodDisruptionBudget"):
            doc = find(docs, kind, name)
            selector = doc["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            assert selector.items() <= labels.items(), f"{kind}/{name}"
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        containers = pod_spec(deployment)["containers"]
        container_ports = {declared["containerPort"] for item in containers for declared in item["ports"]}
        assert port in container_ports
    hpa = find(docs, "HorizontalPodAutoscaler", "gateway")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gateway"}
    assert hpa["spec"]["minReplicas"] >= 2
    gateway = container(find(docs, "Deployment", "gateway"), "gateway")
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {item["name"]: item["value"] for item in gateway["env"]}
    assert env["GATEWAY_UPSTREAM"] == "tfserving:8500"
    mounts = {mount["mountPath"] for mount in gateway["volumeMounts"]}
    assert env["PROMETHEUS_MULTIPROC_DIR"] in mounts and "/tmp" in mounts


def test_network_policy_admits_only_gateway_and_prometheus_to_tfserving() -> None:
    docs = build("cpu")
    policy = find(docs, "NetworkPolicy", "tfserving-ingress")
    tfserving_labels = find(docs, "Deployment", "tfserving")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= tfserving_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = policy["spec"]["ingress"]
    gateway_labels = find(docs, "Deployment", "gateway")["spec"]["template"]["metadata"]["labels"]
    grpc, metrics = rules
    assert grpc["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}]
    assert grpc["from"][0]["podSelector"]["matchLabels"].items() <= gateway_labels.items()
    assert grpc["ports"] == [{"protocol": "TCP", "port": 8500}]
    assert "namespaceSelector" in metrics["from"][0] and "podSelector" in metrics["from"][0]
    assert metrics["ports"] == [{"protocol": "TCP", "port": 8501}]


def test_network_policies_deny_by_default_and_open_only_the_front_door() -> None:
    docs = build("cpu")
    deny = find(docs, "NetworkPolicy", "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    proxy = find(docs, "NetworkPolicy", "proxy")
    assert "from" not in proxy["spec"]["ingress"][0]  # anyone may reach the proxy's ports
    assert {p["port"] for p in proxy["spec"]["ingress"][0]["ports"]} == {8080, 8443}
    assert proxy["spec"]["egress"][0]["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}]
    gateway = find(docs, "NetworkPolicy", "gateway")
    api, metrics = gateway["spec"]["ingress"]
    assert api["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "proxy"}}}]
    assert api["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert metrics["ports"] == [{"protocol": "TCP", "port": 9102}]
    assert gateway["spec"]["egress"] == [
        {
            "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "tfserving"}}}],
            "ports": [{"protocol": "TCP", "port": 8500}],
        },
        {
            "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "redis"}}}],
            "ports": [{"protocol": "TCP", "port": 6379}],
        },
    ]
    redis = find(docs, "NetworkPolicy", "redis-ingress")["spec"]["ingress"]
    assert redis == [
        {
            "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway"}}}],
            "ports": [{"protocol": "TCP", "port": 6379}],
        }
    ]
    for policy in (doc for doc in docs if doc["kind"] == "NetworkPolicy" and doc["metadata"]["name"] != "default-deny"):
        for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", []):
            assert rule.get("ports"), f"{policy['metadata']['name']}: a rule without ports opens every port"


def test_gateway_reads_its_keys_from_the_generated_secret() -> None:
    docs = build("cpu")
    deployment = find(docs, "Deployment", "gateway")
    gateway = container(deployment, "gateway")
    env = {item["name"]: item["value"] for item in gateway["env"]}
    mounts = {mount["name"]: mount["mountPath"] for mount in gateway["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod_spec(deployment)["volumes"]}
    secret_name = volumes["api-keys"]["secret"]["secretName"]
    secret = find(docs, "Secret", secret_name)
    key_file = Path(env["GATEWAY_API_KEYS_FILE"])
    assert str(key_file.parent) == mounts["api-keys"]
    assert key_file.name in secret["data"]

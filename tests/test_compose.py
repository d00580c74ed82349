"""Compose files and Dockerfiles: compose-spec schema, Debian's docker-compose, hadolint, references."""

from __future__ import annotations

import fnmatch
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.processes import REPO_ROOT, ManagedProcess, free_port, python_module, tool

BASE = REPO_ROOT / "docker-compose.yml"
GPU = REPO_ROOT / "docker-compose.gpu.yml"
VARIANTS = {"cpu": (BASE,), "gpu": (BASE, GPU)}
DOCKERFILE_PATHS = ("training/Dockerfile", "serving/Dockerfile", "serving/proxy/Dockerfile")
DOCKERFILES = tuple(REPO_ROOT / path for path in DOCKERFILE_PATHS)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120, check=False)


@cache
def resolved(variant: str) -> dict[str, Any]:
    """The merged configuration as Debian's docker-compose (v1.29) resolves it."""
    files = [arg for path in VARIANTS[variant] for arg in ("-f", str(path))]
    result = run(tool("docker-compose"), *files, "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_files_match_compose_spec() -> None:
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(BASE), str(GPU))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_spec_check_rejects_a_bad_condition(tmp_path: Path) -> None:
    broken = yaml.safe_load(BASE.read_text())
    broken["services"]["gateway"]["depends_on"]["tfserving"]["condition"] = "service_ready"
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path))
    assert result.returncode != 0
    assert "service_ready" in result.stdout + result.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_docker_compose_resolves_the_stack(variant: str) -> None:
    services = resolved(variant)["services"]
    assert set(services) == {"training", "tfserving", "gateway", "redis", "proxy", "prometheus", "grafana"}
    completed = {"condition": "service_completed_successfully"}
    assert services["tfserving"]["depends_on"] == {"training": completed}
    healthy = {"condition": "service_healthy"}
    assert services["gateway"]["depends_on"] == {"tfserving": healthy, "redis": healthy}
    assert services["gateway"]["environment"]["GATEWAY_STREAM_STORE"] == "redis://redis:6379/0"
    assert "--appendonly" in services["redis"]["command"] and services["redis"]["volumes"] == ["redis-data:/data:rw"]
    assert "--if-missing" in services["training"]["command"]
    assert "--enable_model_warmup" in services["tfserving"]["command"]
    for name, service in services.items():
        assert ":" in service["image"] and not service["image"].endswith(":latest"), name
    gpu_devices = [
        device
        for name in ("training", "tfserving")
        for device in services[name].get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    ]
    if variant == "gpu":
        assert services["training"]["build"]["target"] == "gpu"
        assert services["tfserving"]["image"].endswith("-gpu")
        assert gpu_devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}] * 2
    else:
        assert services["training"]["build"]["target"] == "cpu"
        assert gpu_devices == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_only_the_proxy_is_published(variant: str) -> None:
    """Everything but the proxy is reached inside the compose network, or from the host's loopback only."""
    services = resolved(variant)["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            published = port if isinstance(port, dict) else {"host_ip": port.rsplit(":", 2)[0]}
            if name == "proxy":
                assert not published.get("host_ip"), port
            else:
                assert published.get("host_ip") == "127.0.0.1", f"{name} publishes {port}"
    assert {port["target"] for port in services["proxy"]["ports"]} == {8080, 8443}
    gateway = services["gateway"]["environment"]
    assert gateway["GATEWAY_API_KEYS_FILE"].startswith("/run/secrets/")
    assert gateway["GATEWAY_METRICS_PORT"] == "9102"
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD__FILE"].startswith("/run/secrets/")


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_reference_exists(variant: str) -> None:
    config = resolved(variant)
    services = config["services"]
    for name, service in services.items():
        assert set(service.get("depends_on", {})) <= set(services), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("/"):
                assert Path(source).exists(), f"{name}: bind mount {source} missing"
            else:
                assert source in config["volumes"], f"{name}: volume {source} not declared"
        if "build" in service:
            context = Path(service["build"]["context"])
            dockerfile = context / service["build"].get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), dockerfile
            target = service["build"].get("target")
            assert target is None or target in parse_dockerfile(dockerfile).stages, f"{name}: target {target}"


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """The host file behind `container_path`, through the service's bind mounts (longest match wins)."""
    target = PurePosixPath(container_path)
    best: tuple[int, Path] | None = None
    for volume in service.get("volumes", []):
        source, mount = volume.split(":")[:2]
        mount_path = PurePosixPath(mount)
        if source.startswith("/") and (target == mount_path or mount_path in target.parents):
            length = len(mount_path.parts)
            if best is None or length > best[0]:
                best = (length, Path(source) / target.relative_to(mount))
    assert best is not None, f"{container_path} is not inside a bind mount"
    return best[1]


def flag_values(args: list[str]) -> dict[str, str]:
    return dict(arg.removeprefix("--").split("=", 1) for arg in args if arg.startswith("--") and "=" in arg)


def test_mounted_config_files_exist() -> None:
    services = resolved("cpu")["services"]
    tfserving = services["tfserving"]
    flags = flag_values(tfserving["command"])
    for flag in ("model_config_file", "batching_parameters_file", "monitoring_config_file"):
        assert host_path(tfserving, flags[flag]).is_file(), flag
    models_config = host_path(tfserving, flags["model_config_file"]).read_text()
    assert re.findall(r'base_path: "([^"]+)"', models_config) == ["/models/mnist", "/models/anomaly"]
    assert any(volume.endswith(":/models:ro") for volume in tfserving["volumes"])

    prometheus = services["prometheus"]
    config_path = flag_values(prometheus["command"])["config.file"]
    config = yaml.safe_load(host_path(prometheus, config_path).read_text())
    for rule_file in config["rule_files"]:
        assert host_path(prometheus, str(PurePosixPath(config_path).parent / rule_file)).is_file(), rule_file

    grafana = services["grafana"]
    providers = host_path(grafana, "/etc/grafana/provisioning/dashboards/dashboards.yml")
    dashboards_dir = yaml.safe_load(providers.read_text())["providers"][0]["options"]["path"]
    assert list(host_path(grafana, dashboards_dir).glob("*.json"))
    assert host_path(grafana, grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]).is_file()
    assert host_path(grafana, "/etc/grafana/provisioning/datasources/prometheus.yml").is_file()


def test_gateway_runs_read_only_with_writable_metrics_dir() -> None:
    gateway = resolved("cpu")["services"]["gateway"]
    assert gateway["read_only"] is True
    assert gateway["cap_drop"] == ["ALL"]
    image_env = dict(parse_dockerfile(REPO_ROOT / "serving" / "Dockerfile").env())
    assert image_env["PROMETHEUS_MULTIPROC_DIR"] in gateway["tmpfs"]
    assert "/tmp" in gateway["tmpfs"]


@dataclass
class Dockerfile:
    """The instructions of a Dockerfile, grouped by stage, with ARG defaults before the first FROM."""

    args: dict[str, str] = field(default_factory=dict)
    stages: dict[str, list[tuple[str, str]]] = field(default_factory=dict)

    def env(self, stage: str | None = None) -> list[tuple[str, str]]:
        instructions = self.stages[stage or list(self.stages)[-1]]
        pairs = []
        for instruction, value in instructions:
            if instruction == "ENV":
                pairs += re.findall(r"(\w+)=(\S+)", value)
        return pairs


@cache
def parse_dockerfile(path: Path) -> Dockerfile:
    text = re.sub(r"\\\n", " ", path.read_text())
    parsed = Dockerfile()
    current: list[tuple[str, str]] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, value = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            parts = value.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else f"stage{len(parsed.stages)}"
            current = parsed.stages.setdefault(name, [])
        if current is None:
            if instruction == "ARG":
                key, _, default = value.partition("=")
                parsed.args[key] = default
            continue
        current.append((instruction, value.strip()))
    return parsed


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda path: path.parent.name)
def test_hadolint(path: Path) -> None:
    result = run(tool("hadolint"), "--no-color", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda path: path.parent.name)
def test_dockerfile_pins_bases_and_drops_root(path: Path) -> None:
    dockerfile = parse_dockerfile(path)
    for name, instructions in dockerfile.stages.items():
        base = instructions[0][1].split()[0]
        for key, default in dockerfile.args.items():
            base = base.replace(f"${{{key}}}", default)
        if base not in dockerfile.stages:
            repository, _, tag = base.rpartition(":")
            assert repository and tag and tag != "latest", f"{name}: base {base} is not pinned"
        if any(instruction == "ENTRYPOINT" for instruction, _ in instructions):
            users = [value for instruction, value in instructions if instruction == "USER"]
            assert users, f"{name}: no USER"
            assert users[-1].split(":")[0] not in {"root", "0"}, f"{name}: runs as root"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda path: path.parent.name)
def test_copied_sources_exist_and_are_not_docker_ignored(path: Path) -> None:
    ignored = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for instructions in parse_dockerfile(path).stages.values():
        for instruction, value in instructions:
            if instruction != "COPY" or value.startswith("--from"):
                continue
            for source in value.split()[:-1]:
                assert (REPO_ROOT / source).exists(), f"{path}: COPY {source} missing"
                assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def healthcheck_command(port: int) -> list[str]:
    """The tfserving healthcheck of docker-compose.yml, aimed at `port` instead of 8501."""
    test = yaml.safe_load(BASE.read_text())["services"]["tfserving"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "bash", "-c"]
    return ["bash", "-c", test[3].replace("/127.0.0.1/8501", f"/127.0.0.1/{port}")]


def test_tfserving_healthcheck_fails_without_a_server() -> None:
    result = subprocess.run(healthcheck_command(free_port()), capture_output=True, text=True, timeout=30)
    assert result.returncode != 0


def probe_passes(port: int) -> bool:
    return subprocess.run(healthcheck_command(port), capture_output=True, timeout=30).returncode == 0


@pytest.mark.slow
def test_tfserving_healthcheck_follows_model_availability(trained_models: Path, tmp_path: Path) -> None:
    """The exact healthcheck, run against `serving.modelserver` (same REST protocol as TF Serving).

    The server starts on an empty models folder, as TF Serving does in compose while training runs: the
    probe fails; once the models are copied in and loaded, it passes.
    """
    models = tmp_path / "models"
    models.mkdir()
    rest_port, grpc_port = free_port(), free_port()
    server = ManagedProcess(
        python_module(
            "serving.modelserver",
            f"--port={grpc_port}",
            f"--rest_api_port={rest_port}",
            f"--model_config_file={REPO_ROOT / 'serving' / 'config' / 'models.config'}",
            f"--models_dir={models}",
            "--file_system_poll_wait_seconds=0.5",
        ),
        log_path=tmp_path / "modelserver.log",
        ready=lambda: port_open(rest_port),
        timeout=120,
    )
    try:
        assert not probe_passes(rest_port)
        shutil.copytree(trained_models / "mnist", models / "mnist")
        assert not probe_passes(rest_port), "passes with the anomaly model missing"
        shutil.copytree(trained_models / "anomaly", models / "anomaly")
        deadline = time.monotonic() + 90
        while not probe_passes(rest_port):
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.5)
    finally:
        server.stop()

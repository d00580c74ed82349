"""The deployment docs agree with the deployment files: image tags to build, and GPUs the gpu overlay needs."""

from __future__ import annotations

import re

import yaml

from tests.processes import REPO_ROOT
from tests.test_k8s import build, pod_spec, workloads

DEPLOY_DOC = REPO_ROOT / "docs" / "deploy.md"
DOCKERFILES = (
    REPO_ROOT / "training" / "Dockerfile",
    REPO_ROOT / "serving" / "Dockerfile",
    REPO_ROOT / "serving" / "proxy" / "Dockerfile",
)
BUILD_TAG = re.compile(r"docker build .*?-t (\S+) \.")
OUR_IMAGES = "digits-sensors/"


def built_tags(text: str) -> set[str]:
    return set(BUILD_TAG.findall(text))


def images_in_compose() -> set[str]:
    images = set()
    for path in REPO_ROOT.glob("docker-compose*.yml"):
        services = yaml.safe_load(path.read_text())["services"]
        images |= {service["image"] for service in services.values() if "image" in service}
    return {image for image in images if image.startswith(OUR_IMAGES)}


def images_in_overlay(overlay: str) -> set[str]:
    return {
        item["image"]
        for doc in workloads(build(overlay))
        for item in pod_spec(doc)["containers"]
        if item["image"].startswith(OUR_IMAGES)
    }


def test_build_commands_tag_every_image_compose_and_kubernetes_run() -> None:
    expected = images_in_compose() | images_in_overlay("cpu") | images_in_overlay("gpu")
    assert expected == {
        "digits-sensors/training:0.1.0-cpu",
        "digits-sensors/training:0.1.0-gpu",
        "digits-sensors/gateway:0.1.0",
        "digits-sensors/proxy:0.1.0",
    }
    assert built_tags(DEPLOY_DOC.read_text()) == expected
    assert set().union(*(built_tags(path.read_text()) for path in DOCKERFILES)) == expected


def gpus_needed(overlay: str) -> int:
    """GPUs all pods of the overlay hold at once: replicas x per-pod GPU limits, Jobs counted once."""
    total = 0
    for doc in workloads(build(overlay)):
        per_pod = sum(int(c["resources"]["limits"].get("nvidia.com/gpu", 0)) for c in pod_spec(doc)["containers"])
        total += per_pod * int(doc["spec"].get("replicas", 1) if doc["kind"] == "Deployment" else 1)
    return total


def test_deploy_doc_states_the_gpus_the_gpu_overlay_needs() -> None:
    needed = gpus_needed("gpu")
    assert needed == 3  # 2 TF Serving replicas + the training Job
    assert gpus_needed("cpu") == 0
    stated = re.search(r"the gpu overlay needs (\d+) GPUs", DEPLOY_DOC.read_text())
    assert stated is not None and int(stated.group(1)) == needed
    comment = (REPO_ROOT / "k8s" / "overlays" / "gpu" / "kustomization.yaml").read_text()
    assert f"needs {needed} GPUs" in comment.replace("\n# ", " ")


def test_build_tag_pattern_reads_the_docs_commands() -> None:
    """The pattern the tests above rely on finds a tag, and only in a real build command."""
    assert built_tags("docker build -f x/Dockerfile --target cpu -t a/b:1 .") == {"a/b:1"}
    assert built_tags("docker run -t a/b:1 .") == set()

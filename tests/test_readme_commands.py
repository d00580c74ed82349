"""The README's commands work as written: the client commands from a fresh clone, every curl example live.

The curl examples come from serving/gateway/curl_examples.py (also shown in /docs); the README must list exactly
those, and each must get a 200 from a real gateway in front of the real model server.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serving.gateway.config import GatewayConfig
from serving.gateway.curl_examples import BASE_URL, CURL_EXAMPLES
from serving.gateway.openapi import openapi_document
from tests.conftest import MNIST_NPZ, require
from tests.processes import REPO_ROOT, tool

README = REPO_ROOT / "README.md"
CODE_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
JUMPSUP = "artificialWithAnomaly/art_daily_jumpsup.csv"


def readme_blocks() -> list[list[str]]:
    """The README's sh code blocks, as lists of commands (comments and blank lines dropped)."""
    blocks = []
    for block in CODE_BLOCK.findall(README.read_text()):
        lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.splitlines()]
        blocks.append([line for line in lines if line and not line.startswith("#")])
    return blocks


def all_examples() -> list[str]:
    return [command for commands in CURL_EXAMPLES.values() for command in commands]


def test_readme_lists_exactly_the_curl_examples() -> None:
    readme_curls = [line for block in readme_blocks() for line in block if line.startswith("curl ")]
    assert readme_curls == all_examples()


def test_every_route_has_curl_examples_in_the_api_document() -> None:
    document = openapi_document(GatewayConfig())
    assert set(document["paths"]) == set(CURL_EXAMPLES)
    for path, item in document["paths"].items():  # each example shown once, with the operation it calls
        shown = [sample["source"] for operation in item.values() for sample in operation["x-codeSamples"]]
        assert shown == list(CURL_EXAMPLES[path])


def test_python_commands_come_after_the_venv_is_activated() -> None:
    """`python -m client ...` failed with ModuleNotFoundError outside the venv: each block activates it first."""
    for block in readme_blocks():
        if any(re.match(r"(python|saved_model_cli|digits-client)\b", line) for line in block):
            assert block[0] == "source .venv/bin/activate", block


def write_inputs(folder: Path, nab_dir: Path) -> None:
    """The files the README's commands name: digit images and a sensor CSV."""
    with np.load(require(MNIST_NPZ)) as data:
        digits = data["x_test"][:4]
    (folder / "more").mkdir(parents=True, exist_ok=True)
    for name, digit in zip(("digit.png", "seven.png", "more/a.png", "more/b.png"), digits, strict=True):
        Image.fromarray(255 - digit).resize((140, 140)).save(folder / name)
    buffer = io.BytesIO()
    Image.fromarray(255 - digits[1]).convert("RGB").resize((140, 140)).save(buffer, "JPEG", quality=80)
    (folder / "two.jpg").write_bytes(buffer.getvalue())
    shutil.copy(nab_dir / JUMPSUP, folder / "sensors.csv")


def run_curl(command: str, url: str, cwd: Path) -> str:
    """Run a documented curl command against `url`; returns the HTTP status curl saw."""
    argv = shlex.split(command.replace(BASE_URL, url))
    argv += ["--silent", "--show-error", "--output", "/dev/null", "--write-out", "%{http_code}"]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, (command, done.stderr)
    return done.stdout


@pytest.mark.slow
def test_every_curl_example_gets_200(gateway, nab_dir: Path, tmp_path: Path) -> None:
    tool("curl")
    write_inputs(tmp_path, nab_dir)
    # in the README's order, except that deleting the stream waits until the append has used it
    ordered = sorted(all_examples(), key=lambda command: command.startswith("curl -X DELETE"))
    statuses = {command: run_curl(command, gateway.url, tmp_path) for command in ordered}
    expected = {"curl -X PUT": "201", "curl -X DELETE": "204"}
    assert statuses == {command: expected.get(" ".join(command.split()[:3]), "200") for command in all_examples()}
    # What the README warns about: the same CSV without its Content-Type is refused.
    assert run_curl(f"curl --data-binary @sensors.csv {BASE_URL}/v1/anomaly:score", gateway.url, tmp_path) == "415"


@pytest.mark.slow
def test_readme_client_commands_run_in_a_fresh_clone(gateway, nab_dir: Path, tmp_path: Path) -> None:
    """`git clone`, the venv of `make venv` in place, then the README's Client block line by line."""
    clone = tmp_path / "clone"
    subprocess.run([tool("git"), "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=120)
    (clone / ".venv").symlink_to(REPO_ROOT / ".venv")
    write_inputs(clone, nab_dir)
    [block] = [block for block in readme_blocks() if any(line.startswith("python -m client") for line in block)]
    script = "set -e\n" + "\n".join(line.replace(BASE_URL, gateway.url) for line in block)
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"  # the shell of a new user: no venv on the PATH
    env["GATEWAY_URL"] = gateway.url
    done = subprocess.run(["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "model mnist v" in done.stdout
    assert "event(s)" in done.stdout and (clone / "scores.png").stat().st_size > 10_000
    assert "ready: yes" in done.stdout
    assert "AVAILABLE" in done.stdout

"""Version lifecycle faults, with real SavedModels: corrupt, half-written and vanishing versions, load retries,
unreadable base paths. The manager is driven in process with a settable clock (no sleeping); the unreadable
folder is also tried on a real server process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

from serving import tensors
from serving.modelserver.config import ModelSettings, VersionPolicy
from serving.modelserver.manager import ModelManager
from serving.modelserver.metrics import ServingMetrics
from serving.modelserver.servable import Servable
from tests.fixtures_modelserver import mnist_images, predict_request, start_model_server
from tests.processes import REPO_ROOT

pytestmark = pytest.mark.slow
State = get_model_status_pb2.ModelVersionStatus.State
RETRIES = 2
INTERVAL = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class CountingLoader:
    """Loads for real; counts the attempts per version."""

    def __init__(self) -> None:
        self.attempts: dict[int, int] = {}

    def __call__(self, name: str, version: int, path: Path) -> Servable:
        self.attempts[version] = self.attempts.get(version, 0) + 1
        return Servable(name, version, path)


def add_version(trained_models: Path, base: Path, version: int, corrupt: bool = False) -> Path:
    path = base / str(version)
    shutil.copytree(trained_models / "mnist" / "1", path)
    if corrupt:
        (path / "saved_model.pb").write_bytes(b"half-written")
    return path


def manager_for(base: Path, policy: VersionPolicy | None = None, **labels: int):
    clock, loader = Clock(), CountingLoader()
    manager = ModelManager(
        [ModelSettings("mnist", base, policy or VersionPolicy(), labels)],
        ServingMetrics(),
        load=loader,
        max_load_retries=RETRIES,
        retry_interval=INTERVAL,
        clock=clock,
    )
    return manager, clock, loader


def states(manager: ModelManager) -> dict[int, tuple[int, str]]:
    return {version: (state.state, state.error_code) for version, state in manager.status("mnist")}


def predicts(manager: ModelManager, **spec) -> int:
    servable = manager.servable("mnist", **spec)
    outputs = servable.runner("serving_default", ["image"])({"image": mnist_images(2)})
    assert outputs["digit"].shape == (2,)
    return servable.version


def test_failed_load_is_retried_on_schedule_then_given_up(trained_models: Path, tmp_path: Path) -> None:
    base = tmp_path / "mnist"
    add_version(trained_models, base, 1)
    add_version(trained_models, base, 2, corrupt=True)
    manager, clock, loader = manager_for(base)
    manager.poll()
    assert states(manager) == {2: (State.END, "UNKNOWN"), 1: (State.AVAILABLE, "OK")}
    assert "retry 1 of 2" in manager.status("mnist", 2)[0][1].error_message
    manager.poll()  # not due yet
    assert loader.attempts[2] == 1
    for expected in (2, 3, 3):  # two retries, then no more
        clock.now += INTERVAL
        manager.poll()
        assert loader.attempts[2] == expected
    assert "no retries left" in manager.status("mnist", 2)[0][1].error_message
    assert predicts(manager) == 1


def test_a_half_written_version_loads_as_soon_as_its_files_are_complete(trained_models: Path, tmp_path: Path) -> None:
    base = tmp_path / "mnist"
    add_version(trained_models, base, 1)
    v2 = add_version(trained_models, base, 2, corrupt=True)
    manager, _clock, _loader = manager_for(base)
    manager.poll()
    assert predicts(manager) == 1
    shutil.copy(trained_models / "mnist" / "1" / "saved_model.pb", v2 / "saved_model.pb")  # the copy completes
    manager.poll()  # same clock: the changed files, not the schedule, trigger the retry
    assert states(manager) == {2: (State.AVAILABLE, "OK"), 1: (State.END, "OK")}
    assert predicts(manager) == 2


def test_a_failed_version_takes_no_slot_and_breaks_no_label(trained_models: Path, tmp_path: Path) -> None:
    base = tmp_path / "mnist"
    for version in (1, 2):
        add_version(trained_models, base, version)
    manager, _clock, _loader = manager_for(base, VersionPolicy(latest=2), stable=1, canary=2)
    manager.poll()
    add_version(trained_models, base, 3, corrupt=True)
    manager.poll()
    assert states(manager) == {3: (State.END, "UNKNOWN"), 2: (State.AVAILABLE, "OK"), 1: (State.AVAILABLE, "OK")}
    assert predicts(manager, label="stable") == 1
    assert predicts(manager, label="canary") == 2
    assert predicts(manager) == 2


def test_an_intact_old_version_is_served_when_every_newer_one_is_corrupt(trained_models: Path, tmp_path: Path) -> None:
    base = tmp_path / "mnist"
    add_version(trained_models, base, 1)
    add_version(trained_models, base, 2, corrupt=True)
    add_version(trained_models, base, 3, corrupt=True)
    manager, _clock, _loader = manager_for(base)
    manager.poll()
    assert states(manager) == {3: (State.END, "UNKNOWN"), 2: (State.END, "UNKNOWN"), 1: (State.AVAILABLE, "OK")}
    assert predicts(manager) == 1


def test_vanished_files_keep_serving_from_memory_and_are_reported(trained_models: Path, tmp_path: Path) -> None:
    base = tmp_path / "mnist"
    v1 = add_version(trained_models, base, 1)
    manager, _clock, _loader = manager_for(base)
    manager.poll()
    saved = tmp_path / "variables-aside"
    shutil.move(v1 / "variables", saved)
    (v1 / "saved_model.pb").unlink()
    manager.poll()
    ((version, state),) = manager.status("mnist")
    assert (version, state.state, state.error_code) == (1, State.AVAILABLE, "DATA_LOSS")
    assert "variables/variables.index" in state.error_message and "saved_model.pb" in state.error_message
    assert predicts(manager) == 1
    shutil.move(saved, v1 / "variables")
    shutil.copy(trained_models / "mnist" / "1" / "saved_model.pb", v1 / "saved_model.pb")
    manager.poll()
    assert states(manager) == {1: (State.AVAILABLE, "OK")}


def test_a_base_path_that_cannot_be_read_is_a_status_error(tmp_path: Path) -> None:
    base = tmp_path / ("x" * 300) / "mnist"  # a name too long for the file system: stat fails, not "missing"
    manager, _clock, _loader = manager_for(base)
    manager.poll()
    manager.poll()
    with pytest.raises(Exception, match="cannot read the base path") as raised:
        manager.status("mnist")
    assert raised.value.code == grpc.StatusCode.NOT_FOUND


def _world_readable_copy(trained_models: Path) -> Path:
    """A copy of the models that an unprivileged user can read, in a folder of its own under /tmp."""
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"lifecycle-models-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(trained_models, root)
    for folder, _dirs, files in os.walk(root):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(Path(folder) / name, 0o644)
    return root


def _unprivileged_prefix() -> list[str]:
    """Run as `nobody` when root (root reads any folder); skip if nobody cannot run this checkout's Python."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import serving.modelserver.manager"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"user nobody cannot run {sys.executable} in {REPO_ROOT}: {probe.stderr[-300:]!r}")
    return prefix


def test_an_unreadable_models_folder_does_not_stop_the_server(trained_models: Path, tmp_path: Path) -> None:
    """Served as an unprivileged user (root reads everything), mnist's folder closed: the server starts, serves
    anomaly, reports mnist's problem once, and loads mnist when the folder opens."""
    as_user = _unprivileged_prefix()
    models = _world_readable_copy(trained_models)
    (models / "mnist").chmod(0o000)
    log = tmp_path / "server.log"
    server = start_model_server(models, log_path=log, wrapper=as_user, file_system_poll_wait_seconds=0.2)
    try:
        with grpc.insecure_channel(server.grpc_target) as channel:
            status = model_service_pb2_grpc.ModelServiceStub(channel)
            request = get_model_status_pb2.GetModelStatusRequest()
            request.model_spec.name = "mnist"
            with pytest.raises(grpc.RpcError) as raised:
                status.GetModelStatus(request, timeout=10)
            assert "cannot read the base path" in raised.value.details()
            (models / "mnist").chmod(0o755)
            prediction = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            deadline = time.monotonic() + 60
            while True:  # loaded at the next poll
                try:
                    response = prediction.Predict(predict_request("mnist", image=mnist_images(1)), timeout=30)
                    break
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.NOT_FOUND and time.monotonic() < deadline
                    time.sleep(0.2)
            assert tensors.from_tensor_proto(response.outputs["digit"]).shape == (1,)
        text = server.process.log()
        assert text.count("cannot read the base path") == 1, text
        assert "Traceback" not in text, text
    finally:
        server.stop()
        shutil.rmtree(models, ignore_errors=True)

"""Warmup replay and version loading in process (serving.modelserver.manager and servable)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tensorflow_serving.apis import get_model_status_pb2

from serving.contract import WARMUP_FILE
from serving.modelserver.config import ModelSettings
from serving.modelserver.manager import ModelManager
from serving.modelserver.metrics import ServingMetrics

pytestmark = pytest.mark.slow  # needs the trained models

State = get_model_status_pb2.ModelVersionStatus.State


def manager_for(base_path: Path, warm_up: bool = True) -> tuple[ModelManager, ServingMetrics]:
    metrics = ServingMetrics()
    return ModelManager([ModelSettings("mnist", base_path)], metrics, warm_up=warm_up), metrics


def test_exported_warmup_requests_are_replayed_on_load(trained_models: Path) -> None:
    assert (trained_models / "mnist" / "1" / WARMUP_FILE).is_file(), "the export contract promises warmup data"
    manager, metrics = manager_for(trained_models / "mnist")
    manager.poll()
    assert [(version, state.state) for version, state in manager.status("mnist")] == [(1, State.AVAILABLE)]
    assert manager.servable("mnist").warm_up() >= 1
    assert 'status="success"' in metrics.render()


def test_a_broken_warmup_file_fails_the_load_and_keeps_nothing_half_loaded(
    trained_models: Path, tmp_path: Path
) -> None:
    base = tmp_path / "mnist"
    shutil.copytree(trained_models / "mnist" / "1", base / "1")
    (base / "1" / WARMUP_FILE).write_bytes(b"this is not a TFRecord")
    manager, metrics = manager_for(base)
    manager.poll()
    ((version, state),) = manager.status("mnist")
    assert (version, state.state, state.error_code) == (1, State.END, "UNKNOWN")
    assert state.error_message
    assert 'status="fail"' in metrics.render()

    manager_without_warmup, _ = manager_for(base, warm_up=False)
    manager_without_warmup.poll()
    assert manager_without_warmup.servable("mnist").version == 1

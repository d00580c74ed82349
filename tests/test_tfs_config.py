"""serving/config/*: the TF Serving config files parse as TF Serving's messages and say what we mean.

models.config parses with tensorflow-serving-api's own ModelServerConfig. That pip package does not
ship MonitoringConfig or BatchingParameters, so those are checked against serving/protos/tfs_config.proto,
which declares them with TF Serving's field names and numbers. text_format rejects any unknown field name
or wrongly typed value, so a typo fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving.protos import tfs_config_pb2
from tests.processes import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "serving" / "config"


def parse(path: Path, message):
    return text_format.Parse(path.read_text(), message)


def test_models_config_serves_both_models_from_the_container_paths() -> None:
    config = parse(CONFIG_DIR / "models.config", model_server_config_pb2.ModelServerConfig())
    models = {model.name: model for model in config.model_config_list.config}
    assert set(models) == {"mnist", "anomaly"}
    for name, model in models.items():
        assert model.base_path == f"/models/{name}"
        assert model.model_platform == "tensorflow"
        assert model.model_version_policy.WhichOneof("policy_choice") == "latest"
        assert model.model_version_policy.latest.num_versions == 2
        assert dict(model.version_labels) == {"stable": 1}


def test_monitoring_config_enables_prometheus_at_tf_servings_path() -> None:
    config = parse(CONFIG_DIR / "monitoring.config", tfs_config_pb2.MonitoringConfig())
    assert config.prometheus_config.enable is True
    assert config.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_batching_parameters_follow_the_cpu_guide() -> None:
    params = parse(CONFIG_DIR / "batching_parameters.txt", tfs_config_pb2.BatchingParameters())
    assert params.num_batch_threads.value == 2
    assert params.max_batch_size.value >= 256
    assert params.batch_timeout_micros.value == 0
    assert params.max_enqueued_batches.value > 0
    assert params.HasField("max_enqueued_batches")
    assert not params.pad_variable_length_inputs


def test_a_typo_in_a_config_file_is_caught() -> None:
    with pytest.raises(text_format.ParseError, match="num_batch_thread"):
        text_format.Parse("num_batch_thread { value: 2 }", tfs_config_pb2.BatchingParameters())
    with pytest.raises(text_format.ParseError, match="base_pth"):
        text_format.Parse(
            'model_config_list { config { name: "m" base_pth: "/x" } }',
            model_server_config_pb2.ModelServerConfig(),
        )

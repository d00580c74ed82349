"""serving.modelserver.config and metrics: fast checks without starting a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.modelserver.config import (
    ConfigError,
    VersionPolicy,
    load_model_settings,
    prometheus_path,
    read_batching_parameters,
    resolve_base_path,
)
from serving.modelserver.metrics import Counter, Histogram, exponential_buckets
from tests.processes import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "serving" / "config"


def test_container_base_paths_map_into_the_local_models_dir(tmp_path: Path) -> None:
    models = load_model_settings(str(CONFIG_DIR / "models.config"), "", "", str(tmp_path))
    assert {m.name: m.base_path for m in models} == {"mnist": tmp_path / "mnist", "anomaly": tmp_path / "anomaly"}
    assert all(m.policy == VersionPolicy(latest=2) and m.labels == {"stable": 1} for m in models)


def test_base_paths_without_models_dir_are_kept_or_resolved_against_the_config(tmp_path: Path) -> None:
    assert resolve_base_path("/models/mnist", tmp_path, None) == Path("/models/mnist")
    assert resolve_base_path("models/mnist", tmp_path, None) == tmp_path / "models" / "mnist"
    assert resolve_base_path("/data/mnist", tmp_path, tmp_path / "local") == Path("/data/mnist")


def test_single_model_flags(tmp_path: Path) -> None:
    (model,) = load_model_settings("", "digits", str(tmp_path / "mnist"), "")
    assert (model.name, model.base_path) == ("digits", tmp_path / "mnist")
    assert model.policy == VersionPolicy(latest=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", "m", "", ""), "--model_config_file, or --model_base_path"),
        (("x.config", "m", "/models/m", ""), "not both"),
        (("/nonexistent/models.config", "", "", ""), "cannot read"),
    ],
)
def test_bad_flag_combinations_are_config_errors(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_model_settings(*args)


def test_config_typos_name_the_file(tmp_path: Path) -> None:
    config = tmp_path / "models.config"
    config.write_text('model_config_list { config { name: "m" base_pth: "/models/m" } }')
    with pytest.raises(ConfigError, match=r"models\.config.*base_pth"):
        load_model_settings(str(config), "", "", "")


@pytest.mark.parametrize(
    ("policy", "on_disk", "served"),
    [
        (VersionPolicy(latest=2), [1, 2, 3], {2, 3}),
        (VersionPolicy(latest=1), [], set()),
        (VersionPolicy(latest=None, specific=frozenset({1, 5})), [1, 2, 3], {1}),
        (VersionPolicy(latest=None), [4, 1], {1, 4}),
    ],
)
def test_version_policy(policy: VersionPolicy, on_disk: list[int], served: set[int]) -> None:
    assert policy.select(on_disk) == served


def test_monitoring_and_batching_files() -> None:
    assert prometheus_path(str(CONFIG_DIR / "monitoring.config")) == "/monitoring/prometheus/metrics"
    assert prometheus_path("") is None
    params = read_batching_parameters(str(CONFIG_DIR / "batching_parameters.txt"))
    assert params.num_batch_threads.value == 2


def test_metrics_render_like_tf_serving() -> None:
    counter = Counter("/tensorflow/serving/request_count", "Requests.", ("model_name", "status"))
    counter.inc("mnist", "OK")
    counter.inc("mnist", "OK")
    histogram = Histogram("/tensorflow/serving/request_latency", "Latency.", ("model_name",), [10, 100])
    histogram.observe(50, 'we"ird')
    histogram.observe(500, 'we"ird')
    text = "\n".join(counter.render() + histogram.render())
    assert "# TYPE :tensorflow:serving:request_count counter" in text
    assert ':tensorflow:serving:request_count{model_name="mnist",status="OK"} 2' in text
    assert ':tensorflow:serving:request_latency_bucket{model_name="we\\"ird",le="10"} 0' in text
    assert ':tensorflow:serving:request_latency_bucket{model_name="we\\"ird",le="100"} 1' in text
    assert ':tensorflow:serving:request_latency_bucket{model_name="we\\"ird",le="+Inf"} 2' in text
    assert ':tensorflow:serving:request_latency_sum{model_name="we\\"ird"} 550' in text
    assert exponential_buckets(10, 1.8, 3) == pytest.approx([10, 18, 32.4])

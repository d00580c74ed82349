"""The training job: exported signatures, equality with the Keras models, accuracy, atomic export, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from serving.anomaly_scoring import ScoreParams
from serving.contract import EXPORT_TEMP_PREFIX
from tests.conftest import MNIST_NPZ, SHARED_DATA, require
from tests.processes import REPO_ROOT, python_module
from training.anomaly_model import AnomalyParams, average_momentum
from training.common import DataError
from training.export import existing_versions, publish_version
from training.mnist_data import load_mnist, read_idx

tf = pytest.importorskip("tensorflow")


def latest(models: Path, name: str) -> Path:
    return models / name / str(existing_versions(models / name)[-1])


def tensor_specs(signature) -> tuple[dict, dict]:
    def describe(specs: dict) -> dict:
        return {name: (spec.dtype, spec.shape.as_list()) for name, spec in specs.items()}

    return describe(signature.structured_input_signature[1]), describe(signature.structured_outputs)


@pytest.mark.slow
def test_mnist_signature_names_dtypes_and_shapes(trained_models: Path) -> None:
    loaded = tf.saved_model.load(str(latest(trained_models, "mnist")))
    assert list(loaded.signatures) == ["serving_default"]
    inputs, outputs = tensor_specs(loaded.signatures["serving_default"])
    assert inputs == {"image": (tf.uint8, [None, 28, 28, 1])}
    assert outputs == {"probabilities": (tf.float32, [None, 10]), "digit": (tf.int64, [None])}


@pytest.mark.slow
def test_anomaly_signatures_and_model_info(trained_models: Path) -> None:
    loaded = tf.saved_model.load(str(latest(trained_models, "anomaly")))
    assert sorted(loaded.signatures) == ["model_info", "serving_default"]
    inputs, outputs = tensor_specs(loaded.signatures["serving_default"])
    assert inputs == {"window": (tf.float32, [None, None, 1])}
    assert outputs == {
        "forecast": (tf.float32, [None, None, 1]),
        "residual": (tf.float32, [None, None, 1]),
        "error": (tf.float32, [None, None]),
    }
    info = {k: v.numpy() for k, v in loaded.signatures["model_info"](window=tf.zeros([1, 1, 1])).items()}
    assert info["sensor_names"].tolist() == [b"value"]
    assert info["interval_seconds"].tolist() == [300.0]
    assert info["history_length"].tolist() == [16]
    assert info["event_gap_points"].tolist() == [ScoreParams().event_gap_points]
    assert 0 < info["prior_error_mean"][0] < 5 and 0 < info["prior_error_std"][0] < 5
    # 14 days of a daily series: the model has seasonal evidence (the streams tests rely on it)
    assert info["seasonal_prior_std"][0] > 0 and info["seasonal_scale"].shape == (1,) and info["seasonal_scale"][0] > 0
    report = json.loads((latest(trained_models, "anomaly") / "training_report.json").read_text())
    assert report["calibration"]["history_length"] == int(info["history_length"][0])
    assert (latest(trained_models, "anomaly") / "model_card.md").read_text().startswith("# anomaly")


@pytest.mark.slow
def test_mnist_accuracy_floor_on_official_test_set(trained_models: Path) -> None:
    data = np.load(require(MNIST_NPZ))
    serve = tf.saved_model.load(str(latest(trained_models, "mnist"))).signatures["serving_default"]
    batches = [data["x_test"][i : i + 1000, ..., None] for i in range(0, 10000, 1000)]
    digits = np.concatenate([serve(image=tf.constant(batch))["digit"].numpy() for batch in batches])
    accuracy = float(np.mean(digits == data["y_test"]))
    print(f"quick MNIST model: {accuracy:.4f} on the 10,000 official test images")
    assert accuracy >= 0.97
    report = json.loads((latest(trained_models, "mnist") / "training_report.json").read_text())
    assert abs(report["metrics"]["test_accuracy"] - accuracy) < 1e-3
    # --quick is the narrow network for fewer epochs; the default (wider, 20 epochs) is bench-train's to measure.
    assert (report["parameters"]["filters"], report["parameters"]["epochs"]) == ([16, 32], 8)


@pytest.mark.slow
def test_labelled_anomaly_is_the_strongest_event(trained_models: Path) -> None:
    """The exported model's errors through the product's scoring: on art_daily_jumpsup, the event with the most
    flagged points is inside the labelled window, and false alarms stay under one per two days."""
    import pandas as pd

    from serving.anomaly_scoring import (
        adaptive_scores,
        group_events,
        seasonal_errors,
        seasonal_residuals,
        threshold_for,
    )

    csv = require(SHARED_DATA / "nab" / "data" / "artificialWithAnomaly" / "art_daily_jumpsup.csv")
    windows = json.loads((SHARED_DATA / "nab" / "labels" / "combined_windows.json").read_text())
    frame = pd.read_csv(csv, parse_dates=["timestamp"])
    loaded = tf.saved_model.load(str(latest(trained_models, "anomaly")))
    info = {k: v.numpy() for k, v in loaded.signatures["model_info"](window=tf.zeros([1, 1, 1])).items()}
    window = tf.constant(frame["value"].to_numpy(np.float32)[None, :, None])
    errors = loaded.signatures["serving_default"](window=window)["error"].numpy()[0].astype(np.float64)
    errors[: int(info["history_length"][0])] = np.nan
    params = ScoreParams(
        prior_mean=float(info["prior_error_mean"][0]),
        prior_std=float(info["prior_error_std"][0]),
        seasonal_prior_mean=float(info["seasonal_prior_mean"][0]),
        seasonal_prior_std=float(info["seasonal_prior_std"][0]),
    )
    times = frame["timestamp"].astype("int64").to_numpy() / 1e9
    residuals = seasonal_residuals(times, frame[["value"]].to_numpy(np.float32), float(info["interval_seconds"][0]))
    scores = adaptive_scores(errors, params, seasonal_errors(residuals, info["seasonal_scale"]))
    events = group_events(scores > threshold_for(0.5), scores, params.event_gap_points)
    ((start, end),) = windows["artificialWithAnomaly/art_daily_jumpsup.csv"]
    stamps = frame["timestamp"]
    inside = [pd.Timestamp(start) <= stamps[e.start] <= pd.Timestamp(end) for e in events]
    flagged = scores > threshold_for(0.5)
    strongest = max(range(len(events)), key=lambda k: flagged[events[k].start : events[k].end + 1].sum())
    assert inside[strongest], [str(stamps[e.start]) for e in events]
    assert inside.count(False) <= 14 / 2, [str(stamps[e.start]) for e in events]  # 14 days of data


def run_as_session_bundle(export_dir: Path, signature: str, **feeds: np.ndarray) -> dict[str, np.ndarray]:
    """Run a signature the way TF Serving does: the SavedModel loaded into a TF1 graph and session."""
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(export_dir))
        signature_def = meta.signature_def[signature]
        fetches = {name: info.name for name, info in signature_def.outputs.items()}
        feed_dict = {signature_def.inputs[name].name: value for name, value in feeds.items()}
        return session.run(fetches, feed_dict)


def test_signature_outputs_equal_keras_models(tmp_path: Path) -> None:
    """Export freshly built models in-process; the signatures, loaded as TF2 functions and as TF1 session
    bundles (TF Serving's way), give the Keras models' outputs."""
    from training import anomaly_export, anomaly_model, mnist_export, mnist_model

    keras_mnist = mnist_model.build_model()
    images = np.random.default_rng(0).integers(0, 256, size=(8, 28, 28), dtype=np.uint8)
    mnist_export.save_mnist(keras_mnist, tmp_path / "mnist", images)
    served = tf.saved_model.load(str(tmp_path / "mnist")).signatures["serving_default"](image=images[..., None])
    expected = np.asarray(keras_mnist(images[..., None].astype(np.float32), training=False))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(served["digit"].numpy(), expected.argmax(axis=1))
    bundle = run_as_session_bundle(tmp_path / "mnist", "serving_default", image=images[..., None])
    np.testing.assert_allclose(bundle["probabilities"], expected, rtol=1e-5, atol=1e-6)

    params = anomaly_model.AnomalyParams()
    forecaster = anomaly_model.build_forecaster(2, 8)
    scaler = anomaly_model.Scaler(np.array([10.0, -1.0], np.float32), np.array([2.0, 0.5], np.float32))
    score = ScoreParams(prior_mean=0.8, prior_std=0.2, seasonal_prior_mean=1.1, seasonal_prior_std=0.3)
    calibration = anomaly_model.Calibration(np.array([0.3, 0.1], np.float32), score, 100, np.array([1.5, 0.25]))
    sequence = np.random.default_rng(1).normal([10.0, -1.0], [2.0, 0.5], size=(200, 2)).astype(np.float32)
    anomaly_export.save_anomaly(
        forecaster, scaler, calibration, params, "anomaly", ["a", "b"], 60.0, tmp_path / "anomaly", sequence
    )
    served = tf.saved_model.load(str(tmp_path / "anomaly")).signatures["serving_default"](window=sequence[None])
    forecast = anomaly_model.forecast_raw(forecaster, scaler, sequence)
    np.testing.assert_allclose(served["forecast"].numpy()[0], forecast, rtol=1e-4, atol=1e-4)
    residual = (sequence - forecast) / calibration.residual_std
    np.testing.assert_allclose(served["residual"].numpy()[0], residual, rtol=1e-3, atol=1e-3)
    expected_error = anomaly_model.step_errors(residual)
    np.testing.assert_allclose(served["error"].numpy()[0], expected_error, rtol=1e-3, atol=1e-3)
    bundle = run_as_session_bundle(tmp_path / "anomaly", "serving_default", window=sequence[None])
    np.testing.assert_allclose(bundle["error"][0], expected_error, rtol=1e-3, atol=1e-3)
    info = run_as_session_bundle(tmp_path / "anomaly", "model_info", window=sequence[None, :1])
    assert info["sensor_names"].tolist() == [b"a", b"b"] and info["history_length"].tolist() == [16]
    assert info["prior_error_mean"].tolist() == pytest.approx([0.8]) and info["prior_points"].tolist() == [100]
    assert info["seasonal_scale"].tolist() == [1.5, 0.25] and info["seasonal_prior_std"].tolist() == pytest.approx(
        [0.3]
    )
    # an absurd reading (1e30) is clipped before the network: every output stays finite
    spiked = sequence.copy()
    spiked[100, 0] = 1e30
    outputs = tf.saved_model.load(str(tmp_path / "anomaly")).signatures["serving_default"](window=spiked[None])
    assert np.isfinite(outputs["error"].numpy()[0, :100]).all() and np.isfinite(outputs["forecast"].numpy()).all()
    assert (tmp_path / "anomaly" / "assets.extra" / "tf_serving_warmup_requests").stat().st_size > 0


def test_warmup_file_holds_official_prediction_logs(tmp_path: Path) -> None:
    from tensorflow_serving.apis import prediction_log_pb2

    from training import mnist_export, mnist_model

    images = np.zeros((64, 28, 28), np.uint8)
    mnist_export.save_mnist(mnist_model.build_model(), tmp_path, images)
    records = list(tf.data.TFRecordDataset(str(tmp_path / "assets.extra" / "tf_serving_warmup_requests")))
    logs = [prediction_log_pb2.PredictionLog.FromString(record.numpy()) for record in records]
    assert [log.predict_log.request.model_spec.name for log in logs] == ["mnist", "mnist"]
    shapes = [[d.size for d in log.predict_log.request.inputs["image"].tensor_shape.dim] for log in logs]
    assert shapes == [[1, 28, 28, 1], [64, 28, 28, 1]]


def test_failed_export_leaves_no_version(tmp_path: Path) -> None:
    def write_then_fail(path: Path) -> None:
        (path / "saved_model.pb").write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        publish_version(tmp_path / "mnist", write_then_fail)
    assert list((tmp_path / "mnist").iterdir()) == []
    assert publish_version(tmp_path / "mnist", lambda p: (p / "a").write_text("1"))[0] == 1
    assert publish_version(tmp_path / "mnist", lambda p: (p / "a").write_text("2"))[0] == 2
    assert existing_versions(tmp_path / "mnist") == [1, 2]
    assert (tmp_path / "mnist" / "2" / "a").read_text() == "2"


def test_version_stamp_is_written_before_the_version_appears(tmp_path: Path) -> None:
    """The report names its own version inside the folder before the rename, also when a rival took the number."""
    model_dir = tmp_path / "mnist"
    stamped: list[int] = []

    def stamp(tmp: Path, version: int) -> None:
        assert not (model_dir / str(version) / "report").exists()
        if not stamped:  # a concurrent publisher takes this number between our stamp and our rename
            (model_dir / str(version)).mkdir()
            (model_dir / str(version) / "rival").write_text("theirs")
        stamped.append(version)
        (tmp / "report").write_text(str(version))

    version, path = publish_version(model_dir, lambda p: (p / "a").write_text("ours"), stamp)
    assert (version, stamped) == (2, [1, 2])
    assert (path / "report").read_text() == "2" and (path / "a").read_text() == "ours"
    assert not (model_dir / "1" / "report").exists()


def test_killed_export_never_shows_a_version(tmp_path: Path) -> None:
    """SIGKILL in the middle of writing: only a hidden temporary folder remains, which no poller loads."""
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from training.export import publish_version
        def write(path):
            (path / "saved_model.pb").write_bytes(b"x" * 1000)
            Path({str(ready)!r}).write_text("writing")
            time.sleep(60)
        publish_version(Path({str(tmp_path / "models" / "mnist")!r}), write)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    names = [p.name for p in (tmp_path / "models" / "mnist").iterdir()]
    assert existing_versions(tmp_path / "models" / "mnist") == []
    assert len(names) == 1 and names[0].startswith(EXPORT_TEMP_PREFIX)
    assert publish_version(tmp_path / "models" / "mnist", lambda p: (p / "a").write_text("ok"))[0] == 1


def test_idx_reader_matches_npz() -> None:
    folder = require(SHARED_DATA / "mnist")
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    npz = np.load(require(MNIST_NPZ))
    np.testing.assert_array_equal(images, npz["x_test"])
    np.testing.assert_array_equal(labels, npz["y_test"])
    with pytest.raises(DataError, match=r"missing IDX files train-images-idx3-ubyte\.gz"):
        load_mnist(str(folder))


GOOD_ROW = "2024-01-01 00:00:00,1\n"
BAD_CSVS = {
    "no_header.csv": ("2024-01-01 00:00:00,1.0\n2024-01-01 00:05:00,2.0\n", "header must be 'timestamp"),
    "bad_time.csv": (f"timestamp,value\n{GOOD_ROW}yesterday,2\n", "line 3: 'yesterday' is neither an ISO 8601"),
    "not_number.csv": (f"timestamp,value\n{GOOD_ROW}2024-01-01 00:05:00,abc\n", "line 3, column value: 'abc' is not"),
    "too_few.csv": (
        "timestamp,value\n" + "".join(f"2024-01-01 00:{m:02d}:00,1\n" for m in range(12)),
        "the longest gap-free run has 12 grid points; the anomaly model needs at least 33",
    ),
    "empty.csv": ("", "the CSV is empty"),
    "binary.csv": ("\x00\x01\x02garbage\xff", "header must be"),
}


@pytest.mark.parametrize("name", sorted(BAD_CSVS))
def test_bad_csv_gives_one_clear_error(tmp_path: Path, name: str) -> None:
    text, message = BAD_CSVS[name]
    path = tmp_path / name
    path.write_text(text, errors="surrogateescape")
    result = subprocess.run(
        python_module("training", "anomaly", "--data", str(path), "--out", str(tmp_path / "m"), "--epochs", "1"),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert existing_versions(tmp_path / "m" / "anomaly") == []


def test_if_missing_skips_existing_models(tmp_path: Path) -> None:
    publish_version(tmp_path / "mnist", lambda p: (p / "a").write_text("1"))
    publish_version(tmp_path / "anomaly", lambda p: (p / "a").write_text("1"))
    result = subprocess.run(
        python_module("training", "all", "--if-missing", "--out", str(tmp_path)),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("already in") == 2
    assert existing_versions(tmp_path / "mnist") == [1]


@pytest.mark.slow
def test_saved_model_cli_shows_named_signature(trained_models: Path) -> None:
    cli = Path(sys.executable).with_name("saved_model_cli")
    result = subprocess.run(
        [str(cli), "show", "--dir", str(latest(trained_models, "mnist")), "--all"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "signature_def['serving_default']" in result.stdout
    assert "inputs['image'] tensor_info:" in result.stdout and "DT_UINT8" in result.stdout
    assert "outputs['probabilities'] tensor_info:" in result.stdout
    assert "outputs['digit'] tensor_info:" in result.stdout


def test_cpu_training_is_deterministic_with_a_seed() -> None:
    """Same seed, same data: identical weights and calibration, whatever was trained before in the process.

    A folder of CSVs trains its assets one after another (and a shard gets any subset of them): an asset's
    model must not depend on which others came first.
    """
    from training import anomaly_model
    from training.devices import seed_everything, setup_devices
    from training.synthetic import synthetic_series

    series = synthetic_series(1500, seed=3)
    params = anomaly_model.AnomalyParams(epochs=1, windows_per_epoch=64, units=8, seed=5)
    strategy = setup_devices().strategy
    seed_everything(5)
    results = []
    for _ in range(2):
        model, _, calibration, _ = anomaly_model.train(series, params, strategy)
        results.append(([w.copy() for w in model.get_weights()], calibration.score))
        anomaly_model.train(synthetic_series(600, seed=9), params, strategy)  # another asset in between
    (weights_a, threshold_a), (weights_b, threshold_b) = results
    assert threshold_a == threshold_b
    for a, b in zip(weights_a, weights_b, strict=True):
        np.testing.assert_array_equal(a, b)


def test_exported_weights_are_the_average_not_the_last_step() -> None:
    """The same seed and data follow the same steps; only the export differs: the average, or (momentum 0) the
    last step. Fails if training stops averaging."""
    from training import anomaly_model
    from training.devices import setup_devices
    from training.synthetic import synthetic_series

    series = synthetic_series(1500, seed=3)
    strategy = setup_devices().strategy
    exported = {}
    for momentum in (0.0, 0.97):
        params = anomaly_model.AnomalyParams(epochs=1, units=8, seed=5, weight_average_momentum=momentum)
        model, _, calibration, _ = anomaly_model.train(series, params, strategy)
        exported[momentum] = (np.concatenate([w.ravel() for w in model.get_weights()]), calibration.score)
    (last, last_score), (average, average_score) = exported[0.0], exported[0.97]
    assert np.isfinite(average).all() and not np.allclose(last, average, atol=1e-4)
    assert last_score.prior_mean != average_score.prior_mean


def test_offline_download_is_one_error_line_naming_the_local_data_flags(tmp_path: Path) -> None:
    """No network (every request goes to a closed proxy port) and no cached copy: one `error:` line, exit 1."""
    offline = {**os.environ, "KERAS_HOME": str(tmp_path / "keras"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    offline |= {name: "http://127.0.0.1:9" for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
    offline.pop("no_proxy", None)
    offline.pop("NO_PROXY", None)
    done = subprocess.run(
        python_module("training", "all", "--quick", "--out", str(tmp_path / "models")),
        cwd=REPO_ROOT,
        env=offline,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "could not download MNIST" in errors[0]
    assert "--mnist-data" in errors[0] and "--data" in errors[0]
    assert not (tmp_path / "models" / "mnist").exists()


@pytest.mark.parametrize(
    ("epochs", "windows"), [(1, 64), (1, 128), (1, 1024), (2, 1024), (6, 1024), (10, 1024), (40, 1024)]
)
def test_weight_average_forgets_the_random_start(epochs: int, windows: int) -> None:
    params = AnomalyParams(epochs=epochs, windows_per_epoch=windows)
    steps = epochs * windows // params.batch_size
    momentum = average_momentum(params)
    assert 0.0 <= momentum <= params.weight_average_momentum and momentum**steps < 0.02
    if epochs >= 6:  # the default (10) and --quick (6): about the last epoch
        assert momentum == 0.97


@pytest.mark.parametrize(("epochs", "windows"), [(0, 1024), (1, 31), (1, 0)])
def test_training_without_a_whole_step_is_refused(epochs: int, windows: int) -> None:
    """Fewer windows than a batch, or no epoch, is no fit at all: refused by name, not a division by zero."""
    with pytest.raises(ValueError, match="windows_per_epoch >= batch_size"):
        AnomalyParams(epochs=epochs, windows_per_epoch=windows)

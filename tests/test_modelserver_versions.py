"""Version rollout and server-side batching on a model server of its own (it adds versions to its copy)."""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

from tests.fixtures_modelserver import mnist_images, predict_request, start_model_server

pytestmark = pytest.mark.slow

POLL_SECONDS = 0.5
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END


def publish(model_dir: Path, source_version: int, new_version: int) -> None:
    """Copy a version under a temporary name TF Serving ignores, then rename it: an atomic publish."""
    staging = model_dir / f".export-{new_version}"
    shutil.copytree(model_dir / str(source_version), staging)
    staging.rename(model_dir / str(new_version))


def statuses(channel: grpc.Channel, model: str) -> dict[int, int]:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    response = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
    return {status.version: status.state for status in response.model_version_status}


def test_new_versions_roll_out_without_failed_requests(trained_models: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(trained_models, models)
    server = start_model_server(models, tmp_path / "server.log", file_system_poll_wait_seconds=POLL_SECONDS)
    versions_seen: list[int] = []
    failures: list[str] = []
    stop = threading.Event()
    try:
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_request("mnist", image=mnist_images(2))

            def client_loop() -> None:
                while not stop.is_set():
                    try:
                        versions_seen.append(stub.Predict(request, timeout=10).model_spec.version.value)
                    except grpc.RpcError as error:
                        failures.append(f"{error.code()}: {error.details()}")

            client = threading.Thread(target=client_loop)
            client.start()
            (models / "mnist" / ".export-partial").mkdir()  # a half-written export must be ignored
            publish(models / "mnist", 1, 2)
            published = time.monotonic()
            while 2 not in versions_seen and time.monotonic() - published < 30:
                time.sleep(0.05)
            picked_up = time.monotonic() - published
            assert 2 in versions_seen, server.process.log()
            assert statuses(channel, "mnist") == {2: AVAILABLE, 1: AVAILABLE}  # latest { num_versions: 2 }

            publish(models / "mnist", 1, 3)
            deadline = time.monotonic() + 30
            while statuses(channel, "mnist").get(1) != END and time.monotonic() < deadline:
                time.sleep(0.1)
            assert statuses(channel, "mnist") == {3: AVAILABLE, 2: AVAILABLE, 1: END}
            time.sleep(0.3)
            stop.set()
            client.join()
    finally:
        stop.set()
        server.stop()
    assert failures == []
    assert versions_seen[-1] == 3
    assert versions_seen == sorted(versions_seen)  # once a newer version serves, no older one answers
    # Picked up within a poll interval plus loading time (loading a SavedModel takes well under 5 s).
    assert picked_up < POLL_SECONDS + 5


def test_batching_keeps_concurrent_answers_correct(trained_models: Path, tmp_path: Path) -> None:
    batching = tmp_path / "batching.txt"
    batching.write_text(
        "max_batch_size { value: 64 }\nbatch_timeout_micros { value: 2000 }\n"
        "num_batch_threads { value: 2 }\nmax_enqueued_batches { value: 100 }\n"
    )
    server = start_model_server(
        trained_models, tmp_path / "server.log", enable_batching="true", batching_parameters_file=batching
    )
    reference = tf.saved_model.load(str(trained_models / "mnist" / "1")).signatures["serving_default"]
    try:
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            batches = [mnist_images(count, seed=count) for count in (1, 3, 1, 2, 5, 1, 4, 1) * 3]

            def predict(images: np.ndarray) -> np.ndarray:
                response = stub.Predict(predict_request("mnist", image=images), timeout=20)
                return tf.make_ndarray(response.outputs["probabilities"])

            with ThreadPoolExecutor(max_workers=8) as pool:
                answers = list(pool.map(predict, batches))
            for images, answer in zip(batches, answers, strict=True):
                expected = reference(image=tf.constant(images))["probabilities"].numpy()
                np.testing.assert_allclose(answer, expected, rtol=1e-5, atol=1e-6)

            too_big = predict_request("mnist", image=mnist_images(65))
            with pytest.raises(grpc.RpcError) as raised:
                stub.Predict(too_big, timeout=20)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "larger than maximum batch size" in raised.value.details()
    finally:
        server.stop()


def test_a_model_published_after_startup_is_served(trained_models: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    server = start_model_server(models, tmp_path / "server.log", file_system_poll_wait_seconds=POLL_SECONDS)
    try:
        with grpc.insecure_channel(server.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            request = predict_request("mnist", image=mnist_images(1))
            with pytest.raises(grpc.RpcError) as raised:
                stub.Predict(request, timeout=10)
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
            assert "Latest(mnist)" in raised.value.details()

            shutil.copytree(trained_models / "mnist" / "1", models / ".export-1")
            (models / "mnist").mkdir()
            (models / ".export-1").rename(models / "mnist" / "1")
            deadline, response = time.monotonic() + 30, None
            while time.monotonic() < deadline:
                try:
                    response = stub.Predict(request, timeout=10)
                    break
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.NOT_FOUND
                    time.sleep(0.1)
            assert response is not None, server.process.log()
            assert response.model_spec.version.value == 1
            assert statuses(channel, "mnist") == {1: AVAILABLE}
    finally:
        server.stop()

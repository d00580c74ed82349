"""`python -m serving.modelserver` as a subprocess over real exported models, through the official stubs
(gRPC) and HTTP (REST), compared with the SavedModels' own outputs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from tests.fixtures_modelserver import (
    METRICS_PATH,
    ModelServerHandle,
    metric_value,
    mnist_images,
    predict_request,
)

pytestmark = pytest.mark.slow  # starts a model server over freshly trained models


@pytest.fixture(scope="module")
def channel(model_server: ModelServerHandle) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(model_server.grpc_target) as channel:
        yield channel


@pytest.fixture(scope="module")
def prediction(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def saved_models(trained_models: Path) -> dict[str, object]:
    return {name: tf.saved_model.load(str(trained_models / name / "1")) for name in ("mnist", "anomaly")}


def reference(saved_models: dict, model: str, signature: str, **inputs: np.ndarray) -> dict[str, np.ndarray]:
    outputs = saved_models[model].signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    return {name: tensor.numpy() for name, tensor in outputs.items()}


def test_grpc_predict_matches_the_saved_model(prediction, saved_models) -> None:
    images = mnist_images(5)
    response = prediction.Predict(predict_request("mnist", image=images), timeout=10)
    expected = reference(saved_models, "mnist", "serving_default", image=images)
    assert set(response.outputs) == {"probabilities", "digit"}
    np.testing.assert_allclose(
        tf.make_ndarray(response.outputs["probabilities"]), expected["probabilities"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["digit"]), expected["digit"])
    assert response.model_spec.name == "mnist"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"


def test_grpc_predict_by_version_label_and_output_filter(prediction) -> None:
    request = predict_request("mnist", image=mnist_images(2), output_filter=["digit"])
    request.model_spec.version_label = "stable"
    response = prediction.Predict(request, timeout=10)
    assert list(response.outputs) == ["digit"]
    assert response.model_spec.version.value == 1


def test_grpc_predict_accepts_typed_values(prediction, saved_models) -> None:
    images = mnist_images(1)
    request = predict_request("mnist")
    tensor = request.inputs["image"]
    tensor.dtype = tf.uint8.as_datatype_enum
    for size in images.shape:
        tensor.tensor_shape.dim.add(size=size)
    tensor.int_val.extend(images.ravel().tolist())
    response = prediction.Predict(request, timeout=10)
    expected = reference(saved_models, "mnist", "serving_default", image=images)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["digit"]), expected["digit"])


def test_grpc_anomaly_predict_and_model_info(prediction, saved_models) -> None:
    window = np.sin(np.linspace(0, 12, 3 * 60, dtype=np.float32)).reshape(3, 60, 1) * 5 + 10
    response = prediction.Predict(predict_request("anomaly", window=window), timeout=10)
    expected = reference(saved_models, "anomaly", "serving_default", window=window)
    for name in ("forecast", "residual", "error"):
        np.testing.assert_allclose(tf.make_ndarray(response.outputs[name]), expected[name], rtol=1e-4, atol=1e-5)

    zeros = np.zeros((1, 1, 1), np.float32)
    info_request = predict_request("anomaly", signature_name="model_info", window=zeros)
    info = prediction.Predict(info_request, timeout=10)
    expected_info = reference(saved_models, "anomaly", "model_info", window=zeros)
    assert set(info.outputs) == set(expected_info)
    for name, value in expected_info.items():
        np.testing.assert_array_equal(tf.make_ndarray(info.outputs[name]), value)


def test_grpc_metadata_shows_the_signatures(prediction, trained_models) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "mnist"
    response = prediction.GetModelMetadata(request, timeout=10)
    assert response.model_spec.name == "mnist"
    assert response.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    serving_default = signatures.signature_def["serving_default"]
    assert serving_default.method_name == "tensorflow/serving/predict"
    image = serving_default.inputs["image"]
    assert image.dtype == tf.uint8.as_datatype_enum
    assert [dim.size for dim in image.tensor_shape.dim] == [-1, 28, 28, 1]
    assert set(serving_default.outputs) == {"probabilities", "digit"}
    on_disk = tf.saved_model.load(str(trained_models / "mnist" / "1")).signatures
    assert set(on_disk) <= set(signatures.signature_def)


def test_grpc_model_status_is_available(channel) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    for name in ("mnist", "anomaly"):
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        response = stub.GetModelStatus(request, timeout=10)
        assert [(s.version, s.state) for s in response.model_version_status] == [
            (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        ]
        assert response.model_version_status[0].status.error_code == 0


def _spec_request(**spec) -> predict_pb2.PredictRequest:
    request = predict_request(spec.pop("name", "mnist"), image=mnist_images(1))
    if "version" in spec:
        request.model_spec.version.value = spec.pop("version")
    for key, value in spec.items():
        setattr(request.model_spec, key, value)
    return request


@pytest.mark.parametrize(
    ("request_factory", "code", "message"),
    [
        (lambda: _spec_request(name="nope"), grpc.StatusCode.NOT_FOUND, "Servable not found"),
        (lambda: _spec_request(version=99), grpc.StatusCode.NOT_FOUND, "Specific(mnist, 99)"),
        (lambda: _spec_request(version_label="canary"), grpc.StatusCode.INVALID_ARGUMENT, "label: canary"),
        (lambda: _spec_request(signature_name="nope"), grpc.StatusCode.FAILED_PRECONDITION, '"nope" not found'),
        (lambda: predict_request("mnist", pixels=mnist_images(1)), grpc.StatusCode.INVALID_ARGUMENT, "pixels"),
        (
            lambda: predict_request("mnist", image=mnist_images(1).astype(np.float32)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "DT_UINT8",
        ),
        (lambda: predict_request("mnist", image=mnist_images(1)[:, :20]), grpc.StatusCode.INVALID_ARGUMENT, "shape"),
        (
            lambda: predict_request("mnist", image=mnist_images(1), output_filter=["logits"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "logits",
        ),
    ],
    ids=["model", "version", "label", "signature", "input-name", "dtype", "shape", "output-filter"],
)
def test_grpc_errors_carry_tf_serving_status_codes(prediction, request_factory, code, message) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        prediction.Predict(request_factory(), timeout=10)
    assert raised.value.code() == code
    assert message in raised.value.details()


def test_grpc_inconsistent_tensor_is_invalid_argument(prediction) -> None:
    request = predict_request("mnist", image=mnist_images(1))
    request.inputs["image"].tensor_content = request.inputs["image"].tensor_content[:-1]
    with pytest.raises(grpc.RpcError) as raised:
        prediction.Predict(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_grpc_unknown_model_status_is_not_found(channel) -> None:
    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetModelStatus(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


# -- REST ---------------------------------------------------------------------------------------------


def test_rest_status_and_metadata(model_server: ModelServerHandle) -> None:
    status = requests.get(f"{model_server.rest_url}/v1/models/mnist", timeout=10)
    assert status.status_code == 200
    assert status.json() == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    for path in (
        "/v1/models/anomaly/metadata",
        "/v1/models/anomaly/versions/1/metadata",
        "/v1/models/anomaly/labels/stable/metadata",
    ):
        metadata = requests.get(model_server.rest_url + path, timeout=10).json()
        assert metadata["model_spec"] == {"name": "anomaly", "signature_name": "", "version": "1"}
        signatures = metadata["metadata"]["signature_def"]["signature_def"]
        assert {"serving_default", "model_info"} <= set(signatures)
        assert signatures["serving_default"]["inputs"]["window"]["dtype"] == "DT_FLOAT"


def test_rest_predict_row_and_columnar_formats(model_server: ModelServerHandle, saved_models) -> None:
    images = mnist_images(3)
    expected = reference(saved_models, "mnist", "serving_default", image=images)
    url = f"{model_server.rest_url}/v1/models/mnist/versions/1:predict"

    rows = requests.post(url, json={"instances": images.tolist()}, timeout=10)
    assert rows.status_code == 200
    predictions = rows.json()["predictions"]
    assert [row["digit"] for row in predictions] == expected["digit"].tolist()
    np.testing.assert_allclose(
        [row["probabilities"] for row in predictions], expected["probabilities"], rtol=1e-5, atol=1e-6
    )

    body = {"signature_name": "serving_default", "inputs": {"image": images.tolist()}}
    columns = requests.post(url, json=body, timeout=10)
    assert columns.status_code == 200
    assert columns.json()["outputs"]["digit"] == expected["digit"].tolist()

    info = requests.post(
        f"{model_server.rest_url}/v1/models/anomaly/labels/stable:predict",
        json={"signature_name": "model_info", "inputs": [[[0.0]]]},
        timeout=10,
    )
    assert info.status_code == 200
    assert info.json()["outputs"]["sensor_names"] == ["value"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    [
        ("post", "/v1/models/nope:predict", {"instances": [1]}, 404, "Servable not found"),
        ("post", "/v1/models/mnist/versions/42:predict", {"instances": [1]}, 404, "Specific(mnist, 42)"),
        ("post", "/v1/models/mnist/labels/canary:predict", {"instances": [1]}, 400, "label: canary"),
        ("post", "/v1/models/mnist:predict", {"inputs": {"pixels": [1]}}, 400, "pixels"),
        ("post", "/v1/models/mnist:predict", {"instances": [[1, 2]]}, 400, "shape"),
        ("post", "/v1/models/mnist:predict", {"instances": [[[[0.5]] * 28] * 28]}, 400, "DT_UINT8"),
        ("post", "/v1/models/mnist:predict", {"instances": [[[[300]] * 28] * 28]}, 400, "out of range"),
        ("post", "/v1/models/mnist:predict", {"instances": [[1], [1, 2]]}, 400, "rectangular"),
        ("post", "/v1/models/mnist:predict", {"signature_name": 3, "instances": [1]}, 400, "signature_name"),
        ("post", "/v1/models/mnist:predict", {"signature_name": "x", "instances": [1]}, 400, '"x" not found'),
        ("post", "/v1/models/mnist:predict", {"rows": [1]}, 400, "instances"),
        ("post", "/v1/models/mnist:predict", "not json", 400, "not valid JSON"),
        ("post", "/v1/models/mnist:predict", "[" * 100_000, 400, "not valid JSON"),
        ("get", "/v1/models/mnist/versions/" + "9" * 5000, None, 404, "Malformed request"),
        ("get", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        ("get", "/v1/models/mnist/versions/7", None, 404, "Could not find version 7"),
        ("get", "/v1/models/mnist:explode", None, 404, "Malformed request"),
        ("get", "/v2/anything", None, 404, "Malformed request"),
    ],
)
def test_rest_errors_are_json_with_fitting_codes(model_server, method, path, body, status, message) -> None:
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}
    response = getattr(requests, method)(model_server.rest_url + path, timeout=10, **kwargs)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_metrics_count_the_calls_made(model_server: ModelServerHandle, prediction) -> None:
    metrics_url = model_server.rest_url + METRICS_PATH

    def scrape() -> str:
        response = requests.get(metrics_url, timeout=10)
        assert response.status_code == 200
        return response.text

    before = scrape()
    for _ in range(3):
        prediction.Predict(predict_request("anomaly", window=np.zeros((1, 8, 1), np.float32)), timeout=10)
    with pytest.raises(grpc.RpcError):
        prediction.Predict(predict_request("anomaly", window=np.zeros((1, 8), np.float32)), timeout=10)
    rest_url = f"{model_server.rest_url}/v1/models/anomaly:predict"
    rest = requests.post(rest_url, json={"inputs": [[[1.0]]]}, timeout=10)
    assert rest.status_code == 200
    after = scrape()

    assert "# TYPE :tensorflow:serving:request_count counter" in after
    assert "# TYPE :tensorflow:serving:request_latency histogram" in after
    assert "_total" not in after

    def delta(name: str, **labels: str) -> float:
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    count = ":tensorflow:serving:request_count"
    assert delta(count, model_name="anomaly", status="OK") == 4
    assert delta(count, model_name="anomaly", status="INVALID_ARGUMENT") == 1
    latency = ":tensorflow:serving:request_latency_count"
    assert delta(latency, model_name="anomaly", API="Predict", entrypoint="GRPC") == 3
    assert delta(latency, model_name="anomaly", API="Predict", entrypoint="REST") == 1
    bucket = ":tensorflow:serving:request_latency_bucket"
    assert metric_value(after, bucket, model_name="anomaly", API="Predict", entrypoint="GRPC", le="+Inf") >= 3

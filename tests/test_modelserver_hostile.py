"""Hostile requests to `python -m serving.modelserver`: tiny messages that declare huge tensors, ranks past
NumPy's limit, bodies over the REST limit, non-finite numbers. Each is refused with TF Serving's status
(INVALID_ARGUMENT / 400, 413) and the server keeps serving; REST answers are strict JSON."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import requests
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving import tensors
from serving.modelserver.rest import MAX_BODY_BYTES
from tests.fixtures_modelserver import ModelServerHandle, mnist_images, predict_request
from tests.rawhttp import SlowClients, read_response

pytestmark = pytest.mark.slow
DT = tensors.DT


@pytest.fixture(scope="module")
def prediction(model_server: ModelServerHandle) -> Iterator[prediction_service_pb2_grpc.PredictionServiceStub]:
    with grpc.insecure_channel(model_server.grpc_target) as channel:
        yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def declared(model: str, alias: str, dtype: int, shape: list[int], **values: list) -> predict_pb2.PredictRequest:
    """A PredictRequest whose tensor declares `shape` but carries only `values` (typically one fill value)."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    proto = request.inputs[alias]
    proto.dtype = dtype
    tensors.fill_shape_proto(proto.tensor_shape, shape)
    for field, items in values.items():
        getattr(proto, field).extend(items)
    return request


HOSTILE_PREDICTS = {
    "510,000 images from one int_val": declared("mnist", "image", DT.DT_UINT8, [510000, 28, 28, 1], int_val=[0]),
    "65 dimensions": declared("mnist", "image", DT.DT_UINT8, [1] * 65, int_val=[0]),
    "40 dimensions": declared("mnist", "image", DT.DT_UINT8, [1] * 40, int_val=[0]),
    "wrong fixed dimension, filled large": declared("mnist", "image", DT.DT_UINT8, [1000, 2800, 28, 1], int_val=[0]),
    "wrong dtype, filled large": declared("mnist", "image", DT.DT_FLOAT, [400000, 28, 28, 1], float_val=[0.5]),
    "unknown input name, filled large": declared("mnist", "pixels", DT.DT_UINT8, [100000, 784], int_val=[1]),
    "content shorter than its huge shape": declared("mnist", "image", DT.DT_UINT8, [2**40, 28, 28, 1]),
    "dimension past int64 products": declared("mnist", "image", DT.DT_UINT8, [2**62, 2**62, 28, 1], int_val=[0]),
    "anomaly window of 10^9 steps": declared("anomaly", "window", DT.DT_FLOAT, [1, 10**9, 1], float_val=[0.0]),
    "anomaly 50,000 windows of 1,000 steps": declared(
        "anomaly", "window", DT.DT_FLOAT, [50000, 1000, 1], float_val=[1.0]
    ),
    "negative dimension": declared("mnist", "image", DT.DT_UINT8, [-5, 28, 28, 1], int_val=[0]),
}


@pytest.mark.parametrize("case", HOSTILE_PREDICTS)
def test_tensors_that_would_allocate_gigabytes_are_invalid_argument(prediction, case: str) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        prediction.Predict(HOSTILE_PREDICTS[case], timeout=30)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    # still serving
    response = prediction.Predict(predict_request("mnist", image=mnist_images(2)), timeout=30)
    assert tensors.from_tensor_proto(response.outputs["digit"]).shape == (2,)


def test_largest_allowed_batch_is_still_served(prediction) -> None:
    """The bound is not a cap on ordinary use: 1,024 images (the largest server-side batch) in one Predict pass."""
    response = prediction.Predict(predict_request("mnist", image=mnist_images(1024)), timeout=60)
    assert tensors.from_tensor_proto(response.outputs["digit"]).shape == (1024,)


def _strict(text: str) -> object:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in a JSON answer: {text[:200]}")

    return json.loads(text, parse_constant=refuse)


def test_rest_body_over_the_limit_is_413_json(model_server: ModelServerHandle) -> None:
    body = b'{"instances": [' + b"0," * (MAX_BODY_BYTES // 2) + b"0]}"
    response = requests.post(f"{model_server.rest_url}/v1/models/mnist:predict", data=body, timeout=60)
    assert response.status_code == 413
    assert "error" in _strict(response.text)


def test_rest_chunked_body_over_the_limit_is_refused(model_server: ModelServerHandle) -> None:
    port = int(model_server.rest_url.rsplit(":", 1)[1])
    chunk = b"0," * 32768
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/models/mnist:predict HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b'f\r\n{"instances": [\r\n'
        )
        try:
            for _ in range(2 * MAX_BODY_BYTES // len(chunk)):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = read_response(sock)
    assert response.status == 413
    assert "error" in _strict(response.body.decode())


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_rest_non_finite_literals_are_refused(model_server: ModelServerHandle, literal: str) -> None:
    body = '{"instances": [[[' + ",".join([literal] + ["1.0"] * 39) + "]]]}"
    response = requests.post(f"{model_server.rest_url}/v1/models/anomaly:predict", data=body, timeout=30)
    assert response.status_code == 400
    assert "JSON" in _strict(response.text)["error"]


def test_rest_non_finite_outputs_are_null(model_server: ModelServerHandle) -> None:
    """Values near float32's maximum overflow inside the network: the answer stays strict JSON."""
    window = [[[3.0e38] if i % 2 else [-3.0e38] for i in range(64)]]
    response = requests.post(
        f"{model_server.rest_url}/v1/models/anomaly:predict", json={"inputs": {"window": window}}, timeout=30
    )
    assert response.status_code == 200, response.text
    outputs = _strict(response.text)["outputs"]
    flat = np.array(outputs["error"], dtype=object).ravel()
    assert any(value is None for value in flat) or all(np.isfinite(np.array(flat, dtype=float)))


def test_grpc_message_over_the_receive_limit_is_refused(prediction) -> None:
    request = predict_request("mnist", image=np.zeros((90_000, 28, 28, 1), np.uint8))  # 70 MB
    with pytest.raises(grpc.RpcError) as raised:
        prediction.Predict(request, timeout=60)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    response = prediction.Predict(predict_request("mnist", image=mnist_images(1)), timeout=30)
    assert tensors.from_tensor_proto(response.outputs["digit"]).shape == (1,)


def test_rest_stalled_body_frees_its_connection(model_server: ModelServerHandle) -> None:
    port = int(model_server.rest_url.rsplit(":", 1)[1])
    with SlowClients(port, 3, path="/v1/models/mnist:predict") as stalled:
        for sock in stalled.sockets:
            sock.settimeout(30)  # the server's deadline is 10 s; a hang fails with TimeoutError
            try:
                answer = sock.recv(65536)
            except ConnectionResetError:
                answer = b""
            assert answer == b"" or b" 400 " in answer.split(b"\r\n", 1)[0] or b" 408 " in answer.split(b"\r\n", 1)[0]
    assert requests.get(f"{model_server.rest_url}/v1/models/mnist", timeout=10).status_code == 200


def test_the_server_survived_every_case_above(model_server: ModelServerHandle) -> None:
    """Runs last in this module: the process that took all of the above is the one still serving."""
    assert model_server.process.proc.poll() is None, model_server.process.log()[-3000:]
    assert requests.get(f"{model_server.rest_url}/v1/models/mnist", timeout=10).status_code == 200

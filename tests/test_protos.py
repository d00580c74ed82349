"""serving/protos and serving/tensors: wire compatibility with the official TF / TF Serving messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
    prediction_log_pb2,
)

from serving import protos, tensors
from serving.protos import tfs_lite_pb2 as lite
from tests.processes import REPO_ROOT

ARRAYS = {
    "float32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
    "float64": np.linspace(-1, 1, 5),
    "float16": np.array([[0.5, -2.0], [65504.0, 1e-3]], dtype=np.float16),
    "int8": np.array([-128, 0, 127], dtype=np.int8),
    "int16": np.array([-32768, 32767], dtype=np.int16),
    "int32": np.array([[1, -2], [3, 2**31 - 1]], dtype=np.int32),
    "int64": np.array([2**40, -(2**40)], dtype=np.int64),
    "uint8": np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28, 1).astype(np.uint8),
    "uint16": np.array([0, 65535], dtype=np.uint16),
    "bool": np.array([[True, False, True]]),
    "bytes": np.array([b"value", b"", b"\x00\xff"], dtype=object),
    "scalar": np.float32(3.25),
    "empty": np.zeros((0, 10), dtype=np.float32),
}


def lite_to_official(message, official_type):
    return official_type.FromString(message.SerializeToString())


def official_to_lite(message, lite_type):
    return lite_type.FromString(message.SerializeToString())


@pytest.mark.parametrize("name", ARRAYS)
def test_our_tensor_reads_as_official(name: str) -> None:
    array = np.asarray(ARRAYS[name])
    official = lite_to_official(tensors.to_tensor_proto(array), tensor_pb2.TensorProto)
    decoded = tf.make_ndarray(official)
    assert decoded.dtype == array.dtype or array.dtype == object
    assert decoded.shape == array.shape
    assert decoded.tolist() == array.tolist()


@pytest.mark.parametrize("name", ARRAYS)
def test_official_tensor_reads_as_ours(name: str) -> None:
    array = np.asarray(ARRAYS[name])
    ours = official_to_lite(tf.make_tensor_proto(array), lite.TensorProto)
    decoded = tensors.from_tensor_proto(ours)
    assert decoded.dtype == array.dtype
    assert decoded.shape == array.shape
    assert decoded.tolist() == array.tolist()


def official_tensor(dtype: int, dims: list[int], **values) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, **values)
    for size in dims:
        proto.tensor_shape.dim.add(size=size)
    return proto


@pytest.mark.parametrize(
    "proto",
    [
        official_tensor(types_pb2.DT_FLOAT, [2, 2], float_val=[1.5, 2.5, -1, 0]),
        official_tensor(types_pb2.DT_FLOAT, [2, 3], float_val=[7.0]),  # one value fills the shape
        official_tensor(types_pb2.DT_DOUBLE, [3], double_val=[0.1, 0.2, 0.3]),
        official_tensor(types_pb2.DT_INT32, [1, 3], int_val=[1, -5, 9]),
        official_tensor(types_pb2.DT_UINT8, [2], int_val=[0, 255]),
        official_tensor(types_pb2.DT_INT8, [2], int_val=[-3]),
        official_tensor(types_pb2.DT_INT64, [2], int64_val=[2**50, 3]),
        official_tensor(types_pb2.DT_BOOL, [3], bool_val=[True, False, True]),
        official_tensor(types_pb2.DT_HALF, [2], half_val=[0x3C00, 0xC000]),  # 1.0, -2.0
        official_tensor(types_pb2.DT_STRING, [2], string_val=[b"a", b"bc"]),
        official_tensor(types_pb2.DT_STRING, [2, 2], string_val=[b"same"]),
        official_tensor(types_pb2.DT_FLOAT, [], float_val=[4.0]),
    ],
    ids=lambda proto: f"{types_pb2.DataType.Name(proto.dtype)}-{len(proto.tensor_shape.dim)}d",
)
def test_typed_value_fields_decode_like_tensorflow(proto: tensor_pb2.TensorProto) -> None:
    expected = tf.make_ndarray(proto)
    decoded = tensors.from_tensor_proto(official_to_lite(proto, lite.TensorProto))
    assert decoded.shape == expected.shape
    assert decoded.dtype == expected.dtype
    assert decoded.tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("proto", "message"),
    [
        (official_tensor(types_pb2.DT_FLOAT, [2, 2], float_val=[1, 2, 3]), "needs 4 values"),
        (official_tensor(types_pb2.DT_FLOAT, [2], tensor_content=b"\x00" * 7), "needs 8"),
        (official_tensor(types_pb2.DT_UINT8, [1], int_val=[256]), "out of range for DT_UINT8"),
        (official_tensor(types_pb2.DT_HALF, [1], half_val=[70000]), "out of range for DT_HALF"),
        (official_tensor(types_pb2.DT_FLOAT, [-1, 2], float_val=[1.0]), "negative"),
        (official_tensor(types_pb2.DT_STRING, [1], tensor_content=b"x"), "string_val"),
        (tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape={"unknown_rank": True}), "rank"),
        (official_tensor(types_pb2.DT_FLOAT, [2**31], float_val=[1.0]), "may fill at most"),
    ],
)
def test_inconsistent_tensor_protos_raise_value_errors(proto: tensor_pb2.TensorProto, message: str) -> None:
    with pytest.raises(tensors.TensorProtoError, match=message):
        tensors.from_tensor_proto(official_to_lite(proto, lite.TensorProto))


@pytest.mark.parametrize("dtype", [types_pb2.DT_COMPLEX64, types_pb2.DT_RESOURCE, types_pb2.DT_FLOAT8_E5M2])
def test_unsupported_dtypes_are_reported_by_name(dtype: int) -> None:
    proto = official_to_lite(official_tensor(dtype, [1]), lite.TensorProto)
    with pytest.raises(tensors.UnsupportedDtypeError, match="unsupported tensor dtype"):
        tensors.from_tensor_proto(proto)


def test_unsupported_array_dtype_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="complex"):
        tensors.to_tensor_proto(np.array([1 + 2j]))


def test_to_tensor_proto_fills_an_official_message_in_place() -> None:
    response = predict_pb2.PredictResponse()
    tensors.to_tensor_proto(np.array([[1.0, 2.0]], dtype=np.float32), out=response.outputs["y"])
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [[1.0, 2.0]]


def test_predict_request_round_trip() -> None:
    image = ARRAYS["uint8"]
    ours = lite.PredictRequest(output_filter=["probabilities"])
    ours.model_spec.name = "mnist"
    ours.model_spec.version.value = 3
    ours.model_spec.signature_name = "serving_default"
    tensors.to_tensor_proto(image, out=ours.inputs["image"])

    official = lite_to_official(ours, predict_pb2.PredictRequest)
    assert official.model_spec.name == "mnist"
    assert official.model_spec.WhichOneof("version_choice") == "version"
    assert official.model_spec.version.value == 3
    assert official.model_spec.signature_name == "serving_default"
    assert list(official.output_filter) == ["probabilities"]
    np.testing.assert_array_equal(tf.make_ndarray(official.inputs["image"]), image)

    official.model_spec.version_label = "stable"
    back = official_to_lite(official, lite.PredictRequest)
    assert back.model_spec.WhichOneof("version_choice") == "version_label"
    assert back.model_spec.version_label == "stable"
    np.testing.assert_array_equal(tensors.from_tensor_proto(back.inputs["image"]), image)


def test_predict_response_round_trip() -> None:
    official = predict_pb2.PredictResponse()
    official.model_spec.name = "mnist"
    official.model_spec.version.value = 2
    official.model_spec.signature_name = "serving_default"
    probabilities = np.full((2, 10), 0.1, dtype=np.float32)
    official.outputs["probabilities"].CopyFrom(tf.make_tensor_proto(probabilities))
    official.outputs["digit"].CopyFrom(tf.make_tensor_proto(np.array([3, 7], dtype=np.int64)))

    ours = official_to_lite(official, lite.PredictResponse)
    assert ours.model_spec.version.value == 2
    np.testing.assert_array_equal(tensors.from_tensor_proto(ours.outputs["probabilities"]), probabilities)
    assert tensors.from_tensor_proto(ours.outputs["digit"]).tolist() == [3, 7]
    assert lite_to_official(ours, predict_pb2.PredictResponse) == official


def official_signature_map() -> get_model_metadata_pb2.SignatureDefMap:
    signature = meta_graph_pb2.SignatureDef(method_name="tensorflow/serving/predict")
    image = signature.inputs["image"]
    image.name, image.dtype = "serving_default_image:0", types_pb2.DT_UINT8
    for size in (-1, 28, 28, 1):
        image.tensor_shape.dim.add(size=size)
    digit = signature.outputs["digit"]
    digit.name, digit.dtype = "StatefulPartitionedCall:0", types_pb2.DT_INT64
    digit.tensor_shape.dim.add(size=-1)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    signatures.signature_def["serving_default"].CopyFrom(signature)
    return signatures


def test_metadata_response_with_signature_map_round_trip() -> None:
    official = get_model_metadata_pb2.GetModelMetadataResponse()
    official.model_spec.name = "mnist"
    official.model_spec.version.value = 1
    official.metadata["signature_def"].Pack(official_signature_map())

    ours = official_to_lite(official, lite.GetModelMetadataResponse)
    signatures = protos.unpack_signature_def_map(ours)
    image = signatures.signature_def["serving_default"].inputs["image"]
    assert image.dtype == lite.DT_UINT8
    assert [dim.size for dim in image.tensor_shape.dim] == [-1, 28, 28, 1]
    assert image.name == "serving_default_image:0"
    assert signatures.signature_def["serving_default"].method_name == "tensorflow/serving/predict"

    rebuilt = lite.GetModelMetadataResponse(model_spec=ours.model_spec)
    rebuilt.metadata["signature_def"].CopyFrom(
        any_pb2.Any(type_url=protos.SIGNATURE_DEF_MAP_TYPE_URL, value=signatures.SerializeToString())
    )
    again = lite_to_official(rebuilt, get_model_metadata_pb2.GetModelMetadataResponse)
    unpacked = get_model_metadata_pb2.SignatureDefMap()
    assert again.metadata["signature_def"].Unpack(unpacked)
    assert unpacked == official_signature_map()


def test_metadata_without_signature_map_is_reported() -> None:
    response = lite.GetModelMetadataResponse()
    with pytest.raises(protos.MetadataError, match="no 'signature_def'"):
        protos.unpack_signature_def_map(response)
    response.metadata["signature_def"].CopyFrom(any_pb2.Any(type_url="type.googleapis.com/other.Thing"))
    with pytest.raises(protos.MetadataError, match="unexpected type"):
        protos.unpack_signature_def_map(response)


def test_model_status_round_trip() -> None:
    official = get_model_status_pb2.GetModelStatusResponse()
    official.model_version_status.add(
        version=2, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE
    ).status.error_message = ""
    failed = official.model_version_status.add(version=1, state=get_model_status_pb2.ModelVersionStatus.END)
    failed.status.error_code = 9  # FAILED_PRECONDITION
    failed.status.error_message = "unloaded"

    ours = official_to_lite(official, lite.GetModelStatusResponse)
    assert [(s.version, s.state) for s in ours.model_version_status] == [
        (2, lite.ModelVersionStatus.AVAILABLE),
        (1, lite.ModelVersionStatus.END),
    ]
    assert ours.model_version_status[1].status.error_code == lite.FAILED_PRECONDITION
    assert lite_to_official(ours, get_model_status_pb2.GetModelStatusResponse) == official

    request = lite.GetModelStatusRequest(model_spec=lite.ModelSpec(name="anomaly", version_label="stable"))
    assert lite_to_official(request, get_model_status_pb2.GetModelStatusRequest).model_spec == (
        model_pb2.ModelSpec(name="anomaly", version_label="stable")
    )


def test_prediction_log_round_trip() -> None:
    ours = lite.PredictionLog()
    ours.predict_log.request.model_spec.name = "anomaly"
    window = np.zeros((1, 5, 1), dtype=np.float32)
    tensors.to_tensor_proto(window, out=ours.predict_log.request.inputs["window"])

    official = lite_to_official(ours, prediction_log_pb2.PredictionLog)
    assert official.WhichOneof("log_type") == "predict_log"
    np.testing.assert_array_equal(tf.make_ndarray(official.predict_log.request.inputs["window"]), window)
    assert official_to_lite(official, lite.PredictionLog) == ours


@pytest.mark.parametrize("proto", ["serving/protos/tfs_lite.proto", "serving/protos/tfs_config.proto"])
def test_generated_code_matches_a_fresh_regeneration(tmp_path: Path, proto: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I.", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}", proto],
        check=True,
        cwd=REPO_ROOT,
    )
    for suffix in ("_pb2.py", "_pb2.pyi"):
        generated = Path(proto).with_name(Path(proto).stem + suffix)
        assert (tmp_path / generated).read_text() == (REPO_ROOT / generated).read_text(), (
            f"{generated} is stale: run `make protos`"
        )


def test_protos_and_tensors_do_not_import_tensorflow() -> None:
    code = (
        "import sys, serving.protos.tfs_lite_pb2, serving.protos.tfs_config_pb2, serving.tensors; "
        "assert 'tensorflow' not in sys.modules, sorted(m for m in sys.modules if 'tensorflow' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_method_paths_are_the_official_service_methods() -> None:
    from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2

    official_paths = {
        f"/{service.full_name}/{method.name}"
        for module in (prediction_service_pb2, model_service_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert {protos.PREDICT, protos.GET_MODEL_METADATA, protos.GET_MODEL_STATUS} <= official_paths

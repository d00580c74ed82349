"""TF-free messages of TensorFlow Serving's protocol (`tfs_lite_pb2`) and the gRPC method paths to call.

The services are not declared in `tfs_lite.proto` (its package differs from TF Serving's), so a client
builds its stubs from these paths, e.g.::

    predict = channel.unary_unary(
        PREDICT,
        request_serializer=tfs_lite_pb2.PredictRequest.SerializeToString,
        response_deserializer=tfs_lite_pb2.PredictResponse.FromString,
    )
"""

from __future__ import annotations

from serving.protos import tfs_lite_pb2

PREDICT = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_METADATA = "/tensorflow.serving.PredictionService/GetModelMetadata"
GET_MODEL_STATUS = "/tensorflow.serving.ModelService/GetModelStatus"

# TF Serving packs the signatures under this key and type URL (the official message name, not ours).
SIGNATURE_DEF_KEY = "signature_def"
SIGNATURE_DEF_MAP_TYPE_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"


class MetadataError(ValueError):
    """A GetModelMetadataResponse without a SignatureDefMap where TF Serving puts one."""


def unpack_signature_def_map(response: tfs_lite_pb2.GetModelMetadataResponse) -> tfs_lite_pb2.SignatureDefMap:
    """The SignatureDefMap inside `response.metadata["signature_def"]`.

    `Any.Unpack` refuses it because the type URL names `tensorflow.serving.SignatureDefMap`; the
    bytes are the same on the wire, so they are parsed directly after checking the URL.
    """
    if SIGNATURE_DEF_KEY not in response.metadata:
        raise MetadataError(f"metadata has no {SIGNATURE_DEF_KEY!r} entry")
    packed = response.metadata[SIGNATURE_DEF_KEY]
    if packed.type_url.rsplit("/", 1)[-1] != "tensorflow.serving.SignatureDefMap":
        raise MetadataError(f"unexpected type {packed.type_url!r} under {SIGNATURE_DEF_KEY!r}")
    return tfs_lite_pb2.SignatureDefMap.FromString(packed.value)

"""TF Serving's PredictionService and ModelService over gRPC, with the official generated servicers."""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving import tensors
from serving.contract import SERVING_SIGNATURE
from serving.modelserver.config import ConfigError
from serving.modelserver.errors import ServingError, invalid_argument
from serving.modelserver.inference import Inference, model_status_response, signature_def_map

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 512 * 1024 * 1024
# What a valid request can need is far less (an input holds at most 1 Mi elements of 8 bytes: servable.py);
# gRPC buffers a whole message before any check of ours, so larger ones are refused (RESOURCE_EXHAUSTED) first.
MAX_RECEIVE_BYTES = 64 * 1024 * 1024
SIGNATURE_DEF_FIELD = "signature_def"


def _version(spec) -> int | None:
    return spec.version.value if spec.HasField("version") else None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, inference: Inference) -> None:
        self.inference = inference

    def Predict(self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext):
        try:
            with self.inference.recorded(request.model_spec.name, "GRPC"):
                return self._predict(request)
        except ServingError as error:
            context.abort(error.code, error.message)
        except Exception:  # a bug, not bad input: INTERNAL with a traceback in the log, never gRPC's UNKNOWN
            log.exception("Predict failed unexpectedly")
            context.abort(grpc.StatusCode.INTERNAL, "internal error in the model server; see its log")

    def _predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        spec = request.model_spec
        servable = self.inference.manager.servable(spec.name, _version(spec), spec.version_label)
        signature_name = spec.signature_name or SERVING_SIGNATURE
        runner = servable.runner(signature_name, list(request.inputs), request.output_filter)
        try:
            # Declared dtypes and shapes against the signature first: a few bytes may declare gigabytes.
            for alias, proto in request.inputs.items():
                runner.check(alias, proto.dtype, tensors.shape_from_proto(proto.tensor_shape))
            inputs = {alias: tensors.from_tensor_proto(proto) for alias, proto in request.inputs.items()}
        except tensors.TensorProtoError as error:
            raise invalid_argument(str(error)) from None
        outputs = self.inference.run(servable, signature_name, inputs, request.output_filter)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature_name
        for alias, array in outputs.items():
            tensors.to_tensor_proto(array, out=response.outputs[alias])
        return response

    def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest, context):
        try:
            return self._metadata(request)
        except ServingError as error:
            context.abort(error.code, error.message)

    def _metadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest):
        if not request.metadata_field:
            raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise invalid_argument(f"Metadata field {field} is not supported")
        spec = request.model_spec
        servable = self.inference.manager.servable(spec.name, _version(spec), spec.version_label)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signature_def_map(servable))
        return response


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, inference: Inference) -> None:
        self.inference = inference

    def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest, context):
        spec = request.model_spec
        try:
            states = self.inference.manager.status(spec.name, _version(spec), spec.version_label)
        except ServingError as error:
            context.abort(error.code, error.message)
        return model_status_response(states)


def build_grpc_server(inference: Inference, port: int, workers: int) -> grpc.Server:
    """A started-on-demand gRPC server on all interfaces; SO_REUSEPORT off so a taken port fails loudly."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(inference), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(inference), server)
    try:
        server.add_insecure_port(f"[::]:{port}")
    except RuntimeError as error:
        raise ConfigError(f"cannot listen for gRPC on port {port} (in use?)") from error
    return server

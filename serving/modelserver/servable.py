"""One loaded version of a SavedModel, run through a TF1 graph and session.

`Session.make_callable` skips most of the per-call Python work of `Session.run`, so each combination of
signature, inputs and output filter gets one cached `SignatureRunner`. Ops run in the calling (gRPC or
REST worker) thread instead of hopping to TensorFlow's inter-op pool: for models this small that halves
the session time (0.17 ms instead of 0.36 ms for one MNIST image); large ops still use the intra-op pool.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import prediction_log_pb2

from serving import tensors
from serving.contract import SERVE_TAG, SERVING_SIGNATURE, WARMUP_FILE
from serving.modelserver.errors import ServingError, failed_precondition, invalid_argument

RUNNABLE_METHODS = ("tensorflow/serving/predict", "tensorflow/serving/classify", "tensorflow/serving/regress")

SESSION_CONFIG = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=-1)  # negative: caller's thread

# tf.errors codes are the gRPC status numbers.
_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}

Runner = Callable[..., Sequence[np.ndarray]]

# Elements per input tensor, checked against the shape a request declares before anything is allocated. The
# signature fixes every dimension but the free ones (the batch); this bounds those: 1 Mi elements are 1,337
# MNIST images (the gateway sends at most 256, server-side batches hold at most 1,024) or a 100,000-point series
# in chunks. Measured (docs/security.md): 5,349 images took the server from 0.7 to 2.4 GB, and the 510,000 images
# a 40-byte message can declare would make the network ask for ~22 GB.
MAX_INPUT_ELEMENTS = 1 << 20


class SignatureRunner:
    """Validates inputs against one signature and runs it for a fixed set of inputs and outputs."""

    def __init__(
        self,
        signature: meta_graph_pb2.SignatureDef,
        input_aliases: Sequence[str],
        output_aliases: Sequence[str],
        make_callable: Callable[[list[str], list[str]], Runner],
    ) -> None:
        self.input_aliases = tuple(input_aliases)
        self.output_aliases = tuple(output_aliases)
        self._expected = [
            (alias, signature.inputs[alias].dtype, _known_shape(signature.inputs[alias]))
            for alias in self.input_aliases
        ]
        self._run = make_callable(
            [signature.outputs[alias].name for alias in self.output_aliases],
            [signature.inputs[alias].name for alias in self.input_aliases],
        )

    def check(self, alias: str, data_type: int, shape: Sequence[int]) -> None:
        """Refuse (INVALID_ARGUMENT) an input whose dtype, rank, fixed dimensions or size the signature rules out.

        Called with a TensorProto's declared dtype and shape before it is decoded, and on every array fed.
        """
        _alias, dtype, expected = next(entry for entry in self._expected if entry[0] == alias)
        if data_type != dtype:
            raise invalid_argument(
                f"input {alias!r} expects {tensors.dtype_name(dtype)} but {tensors.dtype_name(data_type)} is provided"
            )
        if expected is not None and not _shape_fits(tuple(shape), expected):
            raise invalid_argument(
                f"input {alias!r} has shape {list(shape)}, the signature expects {expected} (-1: any size)"
            )
        if math.prod(shape) > MAX_INPUT_ELEMENTS:
            raise invalid_argument(
                f"input {alias!r} of shape {list(shape)} has {math.prod(shape)} elements; this server takes at most"
                f" {MAX_INPUT_ELEMENTS} per input: split the request"
            )

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for alias, _dtype, _shape in self._expected:
            self.check(alias, tensors.data_type(inputs[alias].dtype), inputs[alias].shape)
        feeds = [inputs[alias] for alias, _dtype, _shape in self._expected]
        try:
            outputs = self._run(*feeds)
        except tf.errors.OpError as error:
            code = _GRPC_CODES.get(error.error_code, grpc.StatusCode.INTERNAL)
            raise ServingError(code, error.message) from None
        return dict(zip(self.output_aliases, outputs, strict=True))


def _shape_fits(actual: tuple[int, ...], expected: list[int]) -> bool:
    if len(actual) != len(expected):
        return False
    return all(want in (-1, got) for want, got in zip(expected, actual, strict=True))


def _known_shape(info: meta_graph_pb2.TensorInfo) -> list[int] | None:
    if info.tensor_shape.unknown_rank:
        return None
    return [dim.size for dim in info.tensor_shape.dim]


class Servable:
    """A version of a model, loaded and ready to run its signatures.

    There is no explicit close: an unloaded version is dropped from the manager, and its session is
    closed when the last in-flight request lets go of it, so no request ever sees a closed session.
    """

    def __init__(self, name: str, version: int, path: Path) -> None:
        self.name = name
        self.version = version
        self.path = path
        self._graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=self._graph, config=SESSION_CONFIG)
        with self._graph.as_default():
            meta_graph = tf.compat.v1.saved_model.load(self._session, [SERVE_TAG], str(path))
        self.signatures: dict[str, meta_graph_pb2.SignatureDef] = dict(meta_graph.signature_def)
        self._runners: dict[tuple, SignatureRunner] = {}
        self._lock = threading.Lock()

    def runner(
        self, signature_name: str, input_aliases: Sequence[str], output_filter: Sequence[str] = ()
    ) -> SignatureRunner:
        """The cached runner of a signature for these inputs and outputs (validated the first time)."""
        key = (signature_name, tuple(sorted(input_aliases)), tuple(output_filter))
        runner = self._runners.get(key)
        if runner is None:
            with self._lock:
                runner = self._runners.get(key) or self._build_runner(*key)
                self._runners[key] = runner
        return runner

    def signature(self, name: str) -> meta_graph_pb2.SignatureDef:
        signature = self.signatures.get(name)
        if signature is None:
            raise failed_precondition(f'Serving signature key "{name}" not found.')
        return signature

    def _build_runner(
        self, signature_name: str, input_aliases: tuple[str, ...], output_filter: tuple[str, ...]
    ) -> SignatureRunner:
        signature = self.signature(signature_name)
        if signature.method_name not in RUNNABLE_METHODS:
            raise failed_precondition(
                f'Serving signature "{signature_name}" has method_name "{signature.method_name}", not one of'
                f" {{{', '.join(RUNNABLE_METHODS)}}}."
            )
        expected = set(signature.inputs)
        if set(input_aliases) != expected:
            raise invalid_argument(
                f"input size does not match signature: {len(input_aliases)}!={len(expected)}"
                f" len({{{','.join(input_aliases)}}}) != len({{{','.join(sorted(expected))}}})."
                f" Sent extra: {{{','.join(sorted(set(input_aliases) - expected))}}}."
                f" Missing but required: {{{','.join(sorted(expected - set(input_aliases)))}}}."
            )
        for alias in output_filter:
            if alias not in signature.outputs:
                raise invalid_argument(
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the set"
                    f" {{{','.join(sorted(signature.outputs))}}}."
                )
        if len(set(output_filter)) != len(output_filter):
            raise invalid_argument(f"duplicate output tensor alias in output_filter {list(output_filter)}")
        outputs = output_filter or tuple(sorted(signature.outputs))
        return SignatureRunner(signature, input_aliases, outputs, self._make_callable)

    def _make_callable(self, fetches: list[str], feeds: list[str]) -> Runner:
        graph = self._graph
        return self._session.make_callable(
            [graph.get_tensor_by_name(name) for name in fetches],
            [graph.get_tensor_by_name(name) for name in feeds],
        )

    def warm_up(self) -> int:
        """Replay the version's warmup PredictionLogs, as TF Serving does with --enable_model_warmup.

        This also builds the runners the warmup requests use, so the first real request skips that
        work. As in TF Serving, a warmup request that fails makes the load fail. Returns the count.
        """
        path = self.path / WARMUP_FILE
        if not path.is_file():
            return 0
        count = 0
        for record in tf.compat.v1.io.tf_record_iterator(str(path)):
            log = prediction_log_pb2.PredictionLog.FromString(record)
            if log.WhichOneof("log_type") != "predict_log":
                raise ValueError(f"{path}: only predict_log warmup records are supported")
            request = log.predict_log.request
            inputs = {alias: tensors.from_tensor_proto(proto) for alias, proto in request.inputs.items()}
            signature = request.model_spec.signature_name or SERVING_SIGNATURE
            self.runner(signature, list(inputs), request.output_filter)(inputs)
            count += 1
        return count

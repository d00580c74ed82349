"""`assets.extra/tf_serving_warmup_requests`: a TFRecord of PredictionLog that TF Serving replays when it loads a
version with `--enable_model_warmup`, so the first real request does not pay for graph initialisation.

Written with the project's TF-free protocol messages (wire-identical to TF Serving's own).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from serving.contract import WARMUP_FILE
from serving.protos import tfs_lite_pb2
from serving.tensors import to_tensor_proto


def write_warmup_requests(
    export_dir: Path, model_name: str, signature: str, batches: list[dict[str, np.ndarray]]
) -> Path:
    """One PredictionLog per batch of inputs, e.g. a batch of 1 and a typical large batch."""
    import tensorflow as tf

    path = export_dir / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for inputs in batches:
            log = tfs_lite_pb2.PredictionLog()
            request = log.predict_log.request
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            for name, array in inputs.items():
                request.inputs[name].CopyFrom(to_tensor_proto(array))
            writer.write(log.SerializeToString())
    return path

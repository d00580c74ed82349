"""TF Serving's REST predict JSON: request values -> arrays, and arrays -> `predictions` / `outputs`.

Row format: `{"instances": [...]}`, one item per example (an object keyed by input name when the
signature has several inputs) -> `{"predictions": [...]}`. Columnar format: `{"inputs": value or
{name: value}}` -> `{"outputs": value or {name: value}}`. Binary strings travel as `{"b64": "..."}`, and
string outputs whose alias ends in `_bytes` are returned that way. Non-finite float outputs are written as
`null` (strict JSON has no NaN or Infinity); `NaN`/`Infinity` literals in a request are refused.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorflow.core.protobuf import meta_graph_pb2

from serving import tensors
from serving.modelserver.errors import invalid_argument


def parse_predict_body(body: Any) -> tuple[str, str, Any]:
    """(signature_name, "instances" or "inputs", payload) of a predict request body."""
    if not isinstance(body, dict):
        raise invalid_argument("JSON object expected as the request body")
    signature_name = body.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise invalid_argument("'signature_name' key must be a string value.")
    formats = [key for key in ("instances", "inputs") if key in body]
    if len(formats) != 1:
        raise invalid_argument(
            "JSON object must contain exactly one of 'instances' (row format) or 'inputs' (columnar format)"
        )
    return signature_name, formats[0], body[formats[0]]


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def to_array(value: Any, info: meta_graph_pb2.TensorInfo, alias: str) -> np.ndarray:
    """A JSON value as an array of the input's dtype, refusing values the dtype cannot hold."""
    dtype = tensors.numpy_dtype(info.dtype)
    if info.dtype == tensors.DT.DT_STRING:
        return _string_array(value, alias)
    try:
        array = np.array(value)
    except ValueError:
        raise invalid_argument(f"input {alias!r}: values must form a rectangular (non-ragged) list") from None
    kind = array.dtype.kind
    name = tensors.dtype_name(info.dtype)
    allowed = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}[dtype.kind]
    if array.size and kind not in allowed:
        raise invalid_argument(f"input {alias!r}: expected {name} values, got {array.dtype.name} values")
    if array.size and dtype.kind in "iu":
        info_int = np.iinfo(dtype)
        if array.min() < info_int.min or array.max() > info_int.max:
            raise invalid_argument(f"input {alias!r}: a value is out of range for {name}")
    return array.astype(dtype)


def _string_array(value: Any, alias: str) -> np.ndarray:
    def convert(item: Any) -> Any:
        if isinstance(item, list):
            return [convert(inner) for inner in item]
        if isinstance(item, str):
            return item.encode("utf-8")
        if _is_b64(item):
            try:
                return base64.b64decode(item["b64"], validate=True)
            except (binascii.Error, TypeError):
                raise invalid_argument(f"input {alias!r}: invalid base64 in a b64 value") from None
        raise invalid_argument(f'input {alias!r}: expected strings or {{"b64": ...}} objects')

    array = np.array(convert(value), dtype=object)
    if not all(isinstance(item, bytes) for item in array.ravel()):  # ragged lists stay lists
        raise invalid_argument(f"input {alias!r}: values must form a rectangular (non-ragged) list")
    return array


def request_arrays(
    fmt: str, payload: Any, signature_inputs: Mapping[str, meta_graph_pb2.TensorInfo]
) -> dict[str, np.ndarray]:
    """The input arrays of a row- or columnar-format payload."""
    only = next(iter(signature_inputs)) if len(signature_inputs) == 1 else None
    if fmt == "inputs":
        if isinstance(payload, dict) and not _is_b64(payload):
            return {alias: _named(signature_inputs, alias, value) for alias, value in payload.items()}
        if only is None:
            raise invalid_argument(
                f"'inputs' must be an object keyed by input name: the signature has inputs {sorted(signature_inputs)}"
            )
        return {only: to_array(payload, signature_inputs[only], only)}
    if not isinstance(payload, list) or not payload:
        raise invalid_argument("'instances' must be a non-empty list")
    if all(isinstance(item, dict) and not _is_b64(item) for item in payload):
        names = set(payload[0])
        if any(set(item) != names for item in payload):
            raise invalid_argument("every instance must name the same inputs")
        return {alias: _named(signature_inputs, alias, [item[alias] for item in payload]) for alias in names}
    if only is None:
        raise invalid_argument(
            f"instances must be objects keyed by input name: the signature has inputs {sorted(signature_inputs)}"
        )
    return {only: to_array(payload, signature_inputs[only], only)}


def _named(signature_inputs: Mapping[str, meta_graph_pb2.TensorInfo], alias: str, value: Any) -> np.ndarray:
    if alias not in signature_inputs:
        raise invalid_argument(f"input {alias!r} is not in the signature's inputs {sorted(signature_inputs)}")
    return to_array(value, signature_inputs[alias], alias)


def _finite_list(array: np.ndarray) -> Any:
    """`array.tolist()` with NaN and +-Infinity as null: JSON has no such numbers, and a parser that meets the
    `NaN` Python's json module would write refuses the whole answer."""
    finite = np.isfinite(array)
    if finite.all():
        return array.tolist()
    values = array.astype(object)
    values[~finite] = None
    return values.tolist()


def _jsonable(array: np.ndarray, alias: str) -> Any:
    if array.dtype.kind == "f" and array.dtype.itemsize < 8:
        # Shortest text that reads back as the same float32 (0.9, not 0.8999999761581421), as TF Serving.
        shortest = np.array([float(str(value)) for value in array.ravel()], dtype=np.float64)
        return _finite_list(shortest.reshape(array.shape))
    if array.dtype.kind == "f":
        return _finite_list(array)
    if array.dtype != object:
        return array.tolist()
    as_b64 = alias.endswith("_bytes")

    def convert(item: bytes) -> Any:
        if not as_b64:
            try:
                return item.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return {"b64": base64.b64encode(item).decode("ascii")}

    flat = np.empty(array.size, dtype=object)
    flat[:] = [convert(item) for item in array.ravel()]
    return flat.reshape(array.shape).tolist()


def response_body(fmt: str, outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """`{"predictions": ...}` for row format, `{"outputs": ...}` for columnar, as TF Serving shapes them."""
    if fmt == "inputs":
        if len(outputs) == 1:
            ((alias, array),) = outputs.items()
            return {"outputs": _jsonable(array, alias)}
        return {"outputs": {alias: _jsonable(array, alias) for alias, array in outputs.items()}}
    sizes = {array.shape[0] if array.ndim else None for array in outputs.values()}
    if len(sizes) != 1 or None in sizes:
        raise invalid_argument(
            "the outputs do not share a batch size, so they cannot be returned as rows;"
            " use the columnar 'inputs' format"
        )
    if len(outputs) == 1:
        ((alias, array),) = outputs.items()
        return {"predictions": _jsonable(array, alias)}
    columns = {alias: _jsonable(array, alias) for alias, array in outputs.items()}
    rows = zip(*columns.values(), strict=True)
    return {"predictions": [dict(zip(columns, row, strict=True)) for row in rows]}

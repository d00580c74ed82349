"""NumPy arrays <-> TensorProto messages, with only numpy and protobuf.

Works on `tfs_lite_pb2.TensorProto` and, because field names and enum numbers are identical, on the
official `tensorflow.TensorProto` too (the local model server fills official responses in place with
`to_tensor_proto(array, out=...)`).

Decoding follows TensorFlow's rules: `tensor_content` (row-major little-endian bytes) wins when
present; otherwise the typed field for the dtype holds the values, and a single value fills the
whole shape. Anything else that does not add up (a wrong byte count, a wrong number of values, a
value out of range for its dtype, an unknown rank) raises a `TensorProtoError`; TensorFlow itself
would silently pad or truncate some of these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from serving.protos import tfs_lite_pb2

DT = tfs_lite_pb2.DataType


class TensorProtoError(ValueError):
    """A TensorProto that cannot be turned into an array (or an array that cannot become one)."""


class UnsupportedDtypeError(TensorProtoError):
    """A dtype this module has no NumPy counterpart for (complex, bfloat16, resource, ...)."""


# DataType -> NumPy dtype (little-endian, as on the wire). DT_STRING maps to object (bytes items).
NUMPY_DTYPES: dict[int, np.dtype] = {
    DT.DT_FLOAT: np.dtype("<f4"),
    DT.DT_DOUBLE: np.dtype("<f8"),
    DT.DT_HALF: np.dtype("<f2"),
    DT.DT_INT8: np.dtype("i1"),
    DT.DT_INT16: np.dtype("<i2"),
    DT.DT_INT32: np.dtype("<i4"),
    DT.DT_INT64: np.dtype("<i8"),
    DT.DT_UINT8: np.dtype("u1"),
    DT.DT_UINT16: np.dtype("<u2"),
    DT.DT_UINT32: np.dtype("<u4"),
    DT.DT_UINT64: np.dtype("<u8"),
    DT.DT_BOOL: np.dtype("?"),
    DT.DT_STRING: np.dtype(object),
}

_DATA_TYPES: dict[np.dtype, int] = {
    np_dtype.newbyteorder("="): dt for dt, np_dtype in NUMPY_DTYPES.items() if dt != DT.DT_STRING
}

# The repeated field that carries the values of each DataType when tensor_content is empty.
VALUE_FIELDS: dict[int, str] = {
    DT.DT_FLOAT: "float_val",
    DT.DT_DOUBLE: "double_val",
    DT.DT_HALF: "half_val",
    DT.DT_INT8: "int_val",
    DT.DT_INT16: "int_val",
    DT.DT_INT32: "int_val",
    DT.DT_INT64: "int64_val",
    DT.DT_UINT8: "int_val",
    DT.DT_UINT16: "int_val",
    DT.DT_UINT32: "uint32_val",
    DT.DT_UINT64: "uint64_val",
    DT.DT_BOOL: "bool_val",
    DT.DT_STRING: "string_val",
}


def dtype_name(data_type: int) -> str:
    """`DT_FLOAT` for 1, or the number itself for a value this subset does not name."""
    try:
        return DT.Name(data_type)
    except ValueError:
        return str(data_type)


def numpy_dtype(data_type: int) -> np.dtype:
    """The NumPy dtype for a DataType value; raises UnsupportedDtypeError for the others."""
    try:
        return NUMPY_DTYPES[data_type]
    except KeyError:
        raise UnsupportedDtypeError(f"unsupported tensor dtype {dtype_name(data_type)}") from None


def data_type(dtype: np.dtype) -> int:
    """The DataType value for a NumPy dtype; bytes, str and object arrays are DT_STRING."""
    if dtype.kind in "SUO":
        return DT.DT_STRING
    try:
        return _DATA_TYPES[dtype.newbyteorder("=")]
    except KeyError:
        raise UnsupportedDtypeError(f"unsupported array dtype {dtype}") from None


# More dimensions than any model here has, and fewer than NumPy's limit (64), past which it raises ValueError.
MAX_RANK = 32


def shape_from_proto(shape: Any) -> tuple[int, ...]:
    """The dims of a fully defined TensorShapeProto of at most MAX_RANK dimensions."""
    if shape.unknown_rank:
        raise TensorProtoError("tensor_shape has unknown rank")
    if len(shape.dim) > MAX_RANK:
        raise TensorProtoError(f"tensor_shape has {len(shape.dim)} dimensions; at most {MAX_RANK} are supported")
    dims = tuple(dim.size for dim in shape.dim)
    if any(size < 0 for size in dims):
        raise TensorProtoError(f"tensor_shape {list(dims)} has a negative (unknown) dimension")
    return dims


def fill_shape_proto(shape: Any, dims: Sequence[int | None]) -> None:
    """Write dims into a TensorShapeProto; None (unknown) becomes -1 as in SignatureDefs."""
    shape.Clear()
    for size in dims:
        shape.dim.add(size=-1 if size is None else int(size))


def to_tensor_proto(values: Any, out: Any = None) -> Any:
    """A TensorProto holding `values` (anything `np.asarray` takes).

    Numeric and bool arrays travel as `tensor_content`; bytes/str arrays as `string_val` (str is
    UTF-8 encoded). With `out`, that (cleared) message is filled and returned instead of a new
    `tfs_lite_pb2.TensorProto`.
    """
    array = np.asarray(values)
    proto = tfs_lite_pb2.TensorProto() if out is None else out
    proto.Clear()
    proto.dtype = data_type(array.dtype)
    fill_shape_proto(proto.tensor_shape, array.shape)
    if proto.dtype == DT.DT_STRING:
        proto.string_val.extend(_as_bytes(item) for item in array.ravel())
    else:
        wire = NUMPY_DTYPES[proto.dtype]
        proto.tensor_content = np.ascontiguousarray(array, dtype=wire).tobytes()
    return proto


def _as_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    raise TensorProtoError(f"string tensors hold bytes or str, got {type(item).__name__}")


# TF's rule "one value fills the whole shape" lets a 30-byte message ask for any size; cap what it may expand to
# (the largest gRPC message the model server accepts, 512 MiB).
MAX_FILLED_BYTES = 512 * 1024 * 1024


def from_tensor_proto(proto: Any) -> np.ndarray:
    """The array a TensorProto holds (DT_STRING gives an object array of bytes)."""
    dtype = numpy_dtype(proto.dtype)
    shape = shape_from_proto(proto.tensor_shape)
    count = math.prod(shape)
    if proto.tensor_content:
        return _from_content(proto.tensor_content, dtype, shape, count, proto.dtype)
    field = VALUE_FIELDS[proto.dtype]
    values = getattr(proto, field)
    if len(values) == count:
        flat = _typed_values(values, proto.dtype, dtype, field)
    elif len(values) == 1:
        if count * dtype.itemsize > MAX_FILLED_BYTES:
            raise TensorProtoError(f"a single value may fill at most {MAX_FILLED_BYTES} bytes, not shape {list(shape)}")
        flat = np.full(count, _typed_values(values, proto.dtype, dtype, field)[0], dtype=dtype)
    else:
        raise TensorProtoError(
            f"{dtype_name(proto.dtype)} tensor of shape {list(shape)} needs {count} values in {field}"
            f" (or 1 to fill it), got {len(values)}"
        )
    return flat.reshape(shape)


def _from_content(content: bytes, dtype: np.dtype, shape: tuple[int, ...], count: int, dt: int) -> np.ndarray:
    if dt == DT.DT_STRING:
        raise TensorProtoError("DT_STRING tensors must use string_val, not tensor_content")
    if len(content) != count * dtype.itemsize:
        raise TensorProtoError(
            f"tensor_content has {len(content)} bytes; a {dtype_name(dt)} tensor of shape {list(shape)}"
            f" needs {count * dtype.itemsize}"
        )
    return np.frombuffer(content, dtype=dtype).reshape(shape)


def _typed_values(values: Sequence[Any], dt: int, dtype: np.dtype, field: str) -> np.ndarray:
    if dt == DT.DT_STRING:
        flat = np.empty(len(values), dtype=object)
        flat[:] = list(values)
        return flat
    if dt == DT.DT_HALF:  # each value is the 16-bit pattern of one float16
        _check_range(values, np.dtype(np.uint16), field, dt)
        return np.asarray(values, dtype=np.uint16).view(dtype)
    if field == "int_val":  # int32 on the wire, narrower in the tensor
        _check_range(values, dtype, field, dt)
    return np.asarray(values, dtype=dtype)


def _check_range(values: Sequence[int], dtype: np.dtype, field: str, dt: int) -> None:
    if not len(values):
        return
    info = np.iinfo(dtype)
    wide = np.asarray(values, dtype=np.int64)
    if wide.min() < info.min or wide.max() > info.max:
        raise TensorProtoError(f"{field} holds a value out of range for {dtype_name(dt)}")

"""Refuse an invalid input model before anything runs on it, with one line naming the problem.

qcompile's own checks come first (their messages are clearer), then onnx.checker with full checking
(types and strict shape inference). Weights are never read: embedded tensors are measured, external
ones located and their declared byte ranges compared with their files' sizes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx

from qcompile.errors import ModelError

MAX_MESSAGE = 240
SMALL_TENSOR = 64 << 10  # external tensors up to this size are read for the checker (shape constants)


def validate_model(proto: onnx.ModelProto, path: Path | None, folder: Path) -> None:
    """`proto` is the model loaded without external data; `path` its file (None for an in-memory
    model, whose external data is resolved against `folder`)."""
    graph = proto.graph
    newest = onnx.defs.onnx_opset_version()
    for opset in proto.opset_import:
        if opset.domain in ("", "ai.onnx") and opset.version > newest:
            raise ModelError(
                f"model opset {opset.version} is newer than the newest this onnx knows ({newest})"
            )
    if not graph.output:
        raise ModelError("the model has no graph outputs")
    _check_names(graph)
    _check_dims(graph)
    for tensor in graph.initializer:
        _check_tensor(tensor, folder)
    try:
        onnx.checker.check_model(_checkable(proto, folder), full_check=True)
    except Exception as exc:  # ValidationError, InferenceError, ValueError, UnicodeDecodeError...
        raise ModelError(f"invalid model: {one_line(exc)}") from None


def _checkable(proto: onnx.ModelProto, folder: Path) -> onnx.ModelProto:
    """What onnx.checker can check without reading weights or looking outside `folder`: small
    external tensors (shape constants, which strict shape inference reads) are read in, large ones
    become typed graph inputs (their byte ranges were checked above)."""
    if not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        return proto
    from onnx.external_data_helper import load_external_data_for_tensor

    skeleton = onnx.ModelProto()
    skeleton.CopyFrom(proto)
    graph = skeleton.graph
    inputs = {i.name for i in graph.input}
    kept = []
    for tensor in graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            kept.append(tensor)
        elif (expected_bytes(tensor) or 0) <= SMALL_TENSOR:
            load_external_data_for_tensor(tensor, str(folder))
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]
            kept.append(tensor)
        elif tensor.name not in inputs:
            info = onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))
            graph.input.append(info)
    copies = [onnx.TensorProto.FromString(t.SerializeToString()) for t in kept]
    del graph.initializer[:]
    graph.initializer.extend(copies)
    return skeleton


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def _check_names(graph: onnx.GraphProto) -> None:
    for kind, items in (("input", graph.input), ("output", graph.output), ("initializer", graph.initializer)):
        for index, item in enumerate(items):
            if not item.name:
                raise ModelError(f"graph {kind} {index} has an empty name")
    for index, node in enumerate(graph.node):
        for text in (node.name, node.op_type, node.domain, *node.input, *node.output):
            if not isinstance(text, str):
                raise ModelError(f"node {index} has a name that is not valid UTF-8 ({text[:40]!r})")
        if not node.op_type:
            raise ModelError(f"node {index} ({node.name or 'unnamed'}) has an empty op type")
        if not any(node.output):
            raise ModelError(f"node {node.name or index} ({node.op_type}) has no named output")


def _check_dims(graph: onnx.GraphProto) -> None:
    for kind, items in (("input", graph.input), ("output", graph.output)):
        for value in items:
            if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
                continue
            for dim in value.type.tensor_type.shape.dim:
                if dim.HasField("dim_value") and dim.dim_value < 0:
                    raise ModelError(
                        f"graph {kind} {value.name!r} has a negative dimension ({dim.dim_value})"
                    )
                if kind == "input" and dim.HasField("dim_value") and dim.dim_value == 0:
                    raise ModelError(f"graph input {value.name!r} has a dimension 0 (an empty tensor)")


_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")


def expected_bytes(tensor: onnx.TensorProto) -> int | None:
    """Bytes the tensor's dims and type need (4-bit and 2-bit types packed), None if unknown."""
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    except (KeyError, ValueError, TypeError):
        return None
    count = int(np.prod(tensor.dims, dtype=np.int64)) if tensor.dims else 1
    four_bit = {onnx.TensorProto.INT4, onnx.TensorProto.UINT4, getattr(onnx.TensorProto, "FLOAT4E2M1", -1)}
    bits = 4 if tensor.data_type in four_bit else None
    if bits is not None:
        return (count * bits + 7) // 8
    if dtype == np.dtype(object):
        return None
    return count * dtype.itemsize


def _check_tensor(tensor: onnx.TensorProto, folder: Path) -> None:
    if any(d < 0 for d in tensor.dims):
        raise ModelError(f"initializer {tensor.name!r} has a negative dimension {list(tensor.dims)}")
    want = expected_bytes(tensor)
    if want is None:
        return
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        entries = {e.key: e.value for e in tensor.external_data}
        try:
            offset = int(entries.get("offset", 0))
            length = int(entries["length"]) if "length" in entries else None
        except ValueError:
            raise ModelError(
                f"initializer {tensor.name!r} has a malformed external-data offset or length"
            ) from None
        size = os.stat(folder / entries.get("location", "")).st_size
        if offset < 0 or (length is not None and length != want):
            raise ModelError(
                f"initializer {tensor.name!r} declares {length} bytes at offset {offset}; "
                f"its shape {list(tensor.dims)} needs {want}"
            )
        if offset + want > size:
            raise ModelError(
                f"initializer {tensor.name!r} needs bytes {offset}..{offset + want} of "
                f"{entries.get('location')!r}, which has {size}"
            )
    elif tensor.HasField("raw_data"):
        if len(tensor.raw_data) != want:
            raise ModelError(
                f"initializer {tensor.name!r} holds {len(tensor.raw_data)} bytes; its shape "
                f"{list(tensor.dims)} needs {want}"
            )

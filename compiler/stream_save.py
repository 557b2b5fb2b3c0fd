"""Save a large quantized model tensor by tensor into its external-data file, the graph last.

Each initializer's bytes are written (4-bit codes packed on the way) and the model is repointed
at the written bytes at once, so an in-memory or memory-mapped tensor is released as soon as it
is written. Both files are staged (qcompile.outputs.Staging) and renamed into place at the end
(data first), so a failure or Ctrl-C leaves no partial output."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from qcompile.outputs import Staging
from qcompile.threads import map_chunks

INLINE_BELOW = 1024  # shape constants and scalars stay in the graph (onnxruntime reads them there)
ALIGNMENT = 4096  # page-aligned tensors can be memory-mapped
FOUR_BIT = (ir.DataType.INT4, ir.DataType.UINT4, ir.DataType.FLOAT4E2M1)


def save_streaming(model: ir.Model, out: Path, *, staging: Staging | None = None) -> list[Path]:
    """Write `out` and `out.name + '.data'`; returns both paths. Within `staging` the two files are
    only staged (the staged paths are returned, the caller commits)."""
    out = Path(out)
    data_name = out.name + ".data"
    if staging is None:
        with Staging() as own:
            staged = save_streaming(model, out, staging=own)
            own.commit()
        _repoint(model, staged[0].parent, out.parent)
        return [out, out.parent / data_name]
    staged = staging.temp_for(out)
    data_path = staging.temp_for(out.with_name(data_name))
    with open(data_path, "wb") as data:
        for value in model.graph.initializers.values():
            _write_tensor(value, data, data_name, staged.parent)
    ir.save(model, staged)
    onnx.checker.check_model(str(staged))  # the graph; external data is only located
    return [staged, data_path]


def _write_tensor(value: ir.Value, data, data_name: str, staging: Path) -> None:
    tensor = value.const_value
    if tensor is None:
        return
    if tensor.nbytes < INLINE_BELOW:
        if isinstance(tensor, ir.ExternalTensor):  # it points into the input model's files
            value.const_value = ir.Tensor(np.array(tensor.numpy()), dtype=tensor.dtype, name=tensor.name)
        return
    data.seek(-data.tell() % ALIGNMENT, os.SEEK_CUR)
    offset = data.tell()
    for piece in _pieces(tensor):
        data.write(piece)
    value.const_value = ir.ExternalTensor(
        data_name,
        offset,
        data.tell() - offset,
        tensor.dtype,
        shape=tensor.shape,
        name=value.name,
        base_dir=staging,
    )
    if isinstance(tensor, ir.ExternalTensor):
        tensor.release()


def _pieces(tensor, piece_bytes: int = 1 << 20) -> list[bytes]:
    """The tensor's bytes. A 2-D 4-bit array (often a transposed view of the codes) is packed two codes
    to a byte a block of rows at a time (blocks on every core), low nibble first as ONNX stores it:
    no full-size copy of the codes."""
    array = tensor.numpy() if type(tensor) is ir.Tensor else None
    if tensor.dtype not in FOUR_BIT or array is None or array.ndim != 2 or array.shape[1] % 2:
        return [tensor.tobytes()]
    transposed = array.T.flags.c_contiguous  # pack its column pairs, then transpose half the bytes
    source = array.T.view(np.uint8) if transposed else array
    rows = max(1, piece_bytes // array.shape[1])

    def piece(r: int) -> bytes:
        if transposed:
            cols = source[:, r : r + rows]
            return np.ascontiguousarray(_pack(cols[0::2], cols[1::2]).T).tobytes()
        codes = np.ascontiguousarray(source[r : r + rows]).view(np.uint8)
        return _pack(codes[:, 0::2], codes[:, 1::2]).tobytes()

    return map_chunks(piece, range(0, array.shape[0], rows))


def _pack(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Two 4-bit codes (in the low nibbles of uint8 arrays) per byte, the first in the low nibble."""
    return (high << 4) | (low & 0x0F)


def _repoint(model: ir.Model, staging: Path, folder: Path) -> None:
    """The tensors point at the staging folder: point them at the final file."""
    for value in model.graph.initializers.values():
        tensor = value.const_value
        if isinstance(tensor, ir.ExternalTensor) and Path(tensor.base_dir) == staging:
            value.const_value = ir.ExternalTensor(
                tensor.location,
                tensor.offset,
                tensor.length,
                tensor.dtype,
                shape=tensor.shape,
                name=tensor.name,
                base_dir=folder,
            )

"""Load and save models: safely (external data stays inside the model's folder), atomically,
never over the input, and with external data when the model is large."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from qcompile.errors import ModelError, OutputError

# Above this many bytes of initializers a model is written with external data (protobuf's
# hard limit is 2 GiB for the whole message; leave room for the graph itself).
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def _check_external_paths(proto: onnx.ModelProto, folder: Path) -> None:
    root = folder.resolve()
    for tensor in _all_tensors(proto):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        location = entries.get("location", "")
        target = (root / location).resolve()
        if os.path.isabs(location) or (root not in target.parents and target != root):
            raise ModelError(f"tensor {tensor.name!r} points outside the model's folder ({location!r}); refusing to read it")
        if not target.is_file():
            raise ModelError(f"external data file {location!r} of tensor {tensor.name!r} is missing")


def _all_tensors(proto: onnx.ModelProto):
    def graph_tensors(graph):
        yield from graph.initializer
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    yield from graph_tensors(attr.g)
                for g in attr.graphs:
                    yield from graph_tensors(g)

    yield from graph_tensors(proto.graph)


def load_model(model: str | os.PathLike | onnx.ModelProto) -> tuple[ir.Model, Path | None]:
    """The model in memory (weights in external data stay lazy) and the path it came from."""
    if isinstance(model, onnx.ModelProto):
        _check_external_paths(model, Path.cwd())
        return ir.serde.deserialize_model(model), None
    path = Path(model)
    if not path.is_file():
        raise ModelError(f"model not found: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ValueError...
        raise ModelError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not proto.graph.node and not proto.graph.output:
        raise ModelError(f"{path} is not a readable ONNX model (no graph)")
    _check_external_paths(proto, path.parent)
    try:
        return ir.load(path), path
    except Exception as exc:
        raise ModelError(f"{path} is not a readable ONNX model ({type(exc).__name__}: {str(exc)[:120]})") from None


def check_output_path(out: Path, inputs: list[Path], force: bool) -> None:
    for source in inputs:
        if source is not None and out.resolve() == source.resolve():
            raise OutputError(f"output {out} is the input model; choose another -o path")
    if out.exists() and not force:
        raise OutputError(f"{out} exists; pass --force to overwrite it")
    if not out.parent.exists():
        raise OutputError(f"output folder {out.parent} does not exist")


def initializer_bytes(model: ir.Model) -> int:
    return sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)


def _inline_external_tensors(model: ir.Model) -> None:
    """onnx-ir keeps an external tensor as a reference to its old file: read it in instead."""
    for value in model.graph.initializers.values():
        tensor = value.const_value
        if isinstance(tensor, ir.ExternalTensor):
            value.const_value = ir.Tensor(np.array(tensor.numpy()), dtype=tensor.dtype, name=tensor.name)
            tensor.release()


def save_model(model: ir.Model, out: Path, *, check: bool = True) -> list[Path]:
    """Write `model` to `out` atomically (with `out.name + '.data'` if large); returns the files written."""
    out = Path(out)
    external = initializer_bytes(model) > EXTERNAL_DATA_THRESHOLD
    data_name = out.name + ".data"
    if not external:
        _inline_external_tensors(model)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        staged = staging / out.name
        ir.save(model, staged, external_data=data_name if external else None)
        if check:
            onnx.checker.check_model(str(staged))
        written = []
        if external:
            os.replace(staging / data_name, out.parent / data_name)
            written.append(out.parent / data_name)
        os.replace(staged, out)
        written.insert(0, out)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)

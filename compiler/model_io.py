"""Load and save models: safely (external data stays inside the model's folder), atomically,
never over the input, and with external data when the model is large."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from qcompile.errors import ModelError
from qcompile.outputs import Staging, check_path
from qcompile.validate import validate_model

logger = logging.getLogger(__name__)

# Above this many bytes of initializers a model is written with external data (protobuf's
# hard limit is 2 GiB for the whole message; leave room for the graph itself).
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


MIN_OPSET = 21  # INT4 and block-scaled Q/DQ


def _check_external_paths(proto: onnx.ModelProto, folder: Path) -> None:
    """Before anything reads them: every external-data location is a relative path to a regular file
    inside `folder`; sparse initializers (onnx-ir would drop them) are refused."""
    if proto.graph.sparse_initializer:
        raise ModelError("sparse initializers are not supported; store the weights as dense tensors")
    for tensor in _all_tensors(proto):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = {e.key: e.value for e in tensor.external_data}.get("location", "")
            _check_inside(folder / location, folder, location, tensor.name)


def _check_inside(path: Path, folder: Path, location: str, name: str) -> None:
    root = folder.resolve()
    target = path.resolve()
    if not location or os.path.isabs(location) or "://" in location or root not in target.parents:
        raise ModelError(
            f"tensor {name!r} points outside the model's folder ({location!r}); refusing to read it"
        )
    if not target.is_file():
        raise ModelError(
            f"external data file {location!r} of tensor {name!r} is missing or not a regular file"
        )
    if target.stat().st_nlink > 1:
        raise ModelError(
            f"external data file {location!r} of tensor {name!r} has several hard links; "
            "refusing to read it (copy it instead)"
        )


def _all_tensors(proto: onnx.ModelProto):
    def node_tensors(nodes):
        for node in nodes:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors
                if attr.HasField("g"):
                    yield from graph_tensors(attr.g)
                for g in attr.graphs:
                    yield from graph_tensors(g)

    def graph_tensors(graph):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        yield from node_tensors(graph.node)

    yield from graph_tensors(proto.graph)
    for function in proto.functions:
        yield from node_tensors(function.node)


def _initializer_tensors(graph: ir.Graph):
    return (v.const_value for v in graph.initializers.values() if v.const_value is not None)


def _ir_tensors(model: ir.Model):
    """Every tensor of the IR model: initializers and attributes, in subgraphs and functions."""
    graphs = [model.graph, *model.functions.values()]
    for graph in graphs:
        if isinstance(graph, ir.Graph):
            yield from _initializer_tensors(graph)
        for node in ir.traversal.RecursiveGraphIterator(graph):
            for attr in node.attributes.values():
                if attr.type == ir.AttributeType.TENSOR:
                    yield attr.value
                elif attr.type == ir.AttributeType.TENSORS:
                    yield from attr.value
                elif attr.type == ir.AttributeType.GRAPH:
                    yield from _initializer_tensors(attr.value)
                elif attr.type == ir.AttributeType.GRAPHS:
                    for g in attr.value:
                        yield from _initializer_tensors(g)


def repoint_external_data(model: ir.Model, staged: Path, folder: Path) -> None:
    """After a saved model's files moved from `staged` into `folder`: its in-memory tensors follow."""
    for tensor in _ir_tensors(model):
        if isinstance(tensor, ir.ExternalTensor) and Path(tensor.base_dir).resolve() == staged.resolve():
            tensor.base_dir = str(folder)


def _anchor_external_data(model: ir.Model, folder: Path) -> None:
    """Resolve every external tensor against the model's folder and check the path that will be read."""
    for tensor in _ir_tensors(model):
        if isinstance(tensor, ir.ExternalTensor):
            tensor.base_dir = str(folder)
            _check_inside(Path(tensor.path), folder, str(tensor.location), tensor.name or "")


def load_model(
    model: str | os.PathLike | onnx.ModelProto, *, upgrade: bool = True
) -> tuple[ir.Model, Path | None]:
    """The model in memory (weights in external data stay lazy, read only from the model's folder,
    or the working folder for an in-memory ModelProto) and the path it came from. `upgrade` converts
    models below MIN_OPSET (weights untouched)."""
    if isinstance(model, onnx.ModelProto):
        proto, path, folder = model, None, Path.cwd()
    else:
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"model not found: {path}")
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ValueError...
            raise ModelError(
                f"{path} is not a readable ONNX model ({type(exc).__name__}: {str(exc)[:120]})"
            ) from None
        folder = path.parent.absolute()
    if not proto.graph.node and not proto.graph.output:
        raise ModelError(f"{path or 'the model'} is not a readable ONNX model (no graph)")
    _check_external_paths(proto, folder)
    validate_model(proto, path, folder)
    try:
        ir_model = ir.serde.deserialize_model(proto)
    except Exception as exc:
        raise ModelError(
            f"{path or 'the model'} is not a readable ONNX model ({type(exc).__name__}: {str(exc)[:120]})"
        ) from None
    _anchor_external_data(ir_model, folder)
    if upgrade:
        ir_model = upgrade_opset(ir_model, folder)
    return ir_model, path


def onnx_opset(model: ir.Model) -> int:
    return model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1))


def upgrade_opset(model: ir.Model, folder: Path, target: int = MIN_OPSET) -> ir.Model:
    """`model` converted to opset `target` by onnx's version converter run on the graph alone: the
    initializers become plain typed inputs for the conversion (their data is neither read nor copied,
    so size is no limit) and the original tensor objects are put back afterwards."""
    opset = onnx_opset(model)
    if opset >= target:
        return model
    from onnx import version_converter

    graph = model.graph
    user_inputs = [v.name for v in graph.inputs]
    tensors = {}
    for name, value in list(graph.initializers.items()):
        tensors[name] = value.const_value
        value.shape = value.shape or value.const_value.shape
        value.dtype = value.dtype or value.const_value.dtype
        graph.initializers.pop(name)
        value.const_value = None
        if value not in graph.inputs:
            graph.inputs.append(value)
    try:
        converted = version_converter.convert_version(ir.serde.serialize_model(model), target)
        result = ir.serde.deserialize_model(converted)
    except Exception as exc:
        raise ModelError(
            f"model opset {opset} could not be converted to opset {target} "
            f"(Q/DQ with INT4 and block scales need it): {_first_line(exc)}"
        ) from None
    for value in result.graph.inputs:
        if value.name in tensors:
            value.const_value = tensors[value.name]
            result.graph.register_initializer(value)
    kept = [v for v in result.graph.inputs if v.name in user_inputs]
    result.graph.inputs.clear()
    result.graph.inputs.extend(kept)
    if onnx_opset(result) != target:
        raise ModelError(f"model opset {opset} could not be converted to opset {target}")
    _anchor_external_data(result, folder)
    logger.info("converted opset %d -> %d", opset, target)
    return result


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]


def model_files(model: str | os.PathLike) -> list[Path]:
    """The model file and the external-data files it names (the inputs no output may replace)."""
    path = Path(model)
    files = [path]
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:
        return files
    for tensor in _all_tensors(proto):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = {e.key: e.value for e in tensor.external_data}.get("location", "")
            if location and path.parent / location not in files:
                files.append(path.parent / location)
    return files


def check_output_path(out: Path, inputs: list[Path], force: bool) -> None:
    check_path(out, inputs, force)


def initializer_bytes(model: ir.Model) -> int:
    return sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)


def _inline_external_tensors(model: ir.Model) -> None:
    """onnx-ir keeps an external tensor as a reference to its old file: read it in instead."""
    for value in model.graph.initializers.values():
        tensor = value.const_value
        if isinstance(tensor, ir.ExternalTensor):
            value.const_value = ir.Tensor(np.array(tensor.numpy()), dtype=tensor.dtype, name=tensor.name)
            tensor.release()


def save_model(
    model: ir.Model, out: Path, *, check: bool = True, staging: Staging | None = None
) -> list[Path]:
    """Write `model` as `out` (with `out.name + '.data'` if large). Within `staging` the files are only
    staged and their temp paths returned (the caller commits); without it they are committed here."""
    out = Path(out)
    if staging is None:
        with Staging() as own:
            save_model(model, out, check=check, staging=own)
            return own.commit()
    external = initializer_bytes(model) > EXTERNAL_DATA_THRESHOLD
    data_name = out.name + ".data"
    if not external:
        _inline_external_tensors(model)
    staged = [staging.temp_for(out)]
    if external:
        staged.append(staging.temp_for(out.with_name(data_name)))
    ir.save(model, staged[0], external_data=data_name if external else None)
    if check:
        onnx.checker.check_model(str(staged[0]))
    return staged

"""Divide an activation by s[K] per channel and multiply the consuming layers' weight input channels by s.

`x @ W.T == (x / s) @ (W * s).T`, so the model computes the same function (float32 round-off;
exact for powers of two). Used by LLM-FP4 (s = 2^o) and by SmoothQuant / AWQ (real s).

The 1/s goes into the activation's producer when that is exact and safe: a LayerNormalization
(or RMSNormalization) over the last axis with constant scale/bias whose output feeds only the
given layers gets gamma/s and beta/s. Otherwise a `Mul` by 1/s is inserted on the path to those
layers only; other consumers keep the original tensor.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir

from qcompile.errors import LayoutError
from qcompile.passes.canonicalize import Layer
from qcompile.passes.initializers import add_initializer

_NORMS = ("LayerNormalization", "RMSNormalization")


@dataclasses.dataclass(frozen=True)
class ScaledInput:
    """What happened to one activation: folded into `node`, or a `Mul` node inserted."""

    activation: str
    how: str  # "folded" or "mul"
    node: str
    layers: tuple[str, ...]


def _source_axis(layer: Layer, operand_axis: int) -> int:
    """The axis of the source initializer that the chain turns into `operand_axis` of the operand."""
    axes = list(range(len(layer.source.const_value.shape)))
    for node in layer.chain:
        if node.op_type == "Transpose":
            perm = node.attributes.get_ints("perm", None) or list(reversed(range(len(axes))))
            axes = [axes[p] for p in perm]
    return axes[operand_axis]


def scale_weight_inputs(layer: Layer, s: np.ndarray) -> None:
    """Multiply the weight's input channels (rows of [K, N], columns of [N, K]) by s, in place."""
    if layer.op not in ("MatMul", "Gemm"):
        raise LayoutError(f"{layer.name}: scaling input channels of {layer.op} is not supported")
    if layer.op == "Gemm" and layer.node.attributes.get_int("transA", 0):
        raise LayoutError(f"{layer.name}: Gemm with transA=1 has its input channels on axis 0")
    if s.shape != (layer.k,):
        raise LayoutError(f"{layer.name}: scale vector has shape {s.shape}, the layer has K={layer.k}")
    axis = _source_axis(layer, 0 if layer.layout == "kn" else 1)
    tensor = layer.source.const_value
    array = tensor.numpy()
    shape = [1] * array.ndim
    shape[axis] = layer.k
    scaled = (array.astype(np.float32) * s.reshape(shape)).astype(array.dtype)
    layer.source.const_value = ir.tensor(scaled, dtype=tensor.dtype, name=tensor.name)


def _consumers_only(value: ir.Value, nodes: list[ir.Node]) -> bool:
    wanted = {id(n) for n in nodes}
    return not value.is_graph_output() and all(id(use.node) in wanted for use in value.uses())


def _foldable_norm(act: ir.Value, layers: list[Layer], k: int) -> ir.Node | None:
    norm = act.producer()
    if (
        norm is None
        or norm.op_type not in _NORMS
        or norm.domain not in ("", "ai.onnx")
        or act is not norm.outputs[0]
    ):
        return None
    if norm.attributes.get_int("axis", -1) not in (-1, len(act.shape or ()) - 1):
        return None
    if not _consumers_only(act, [layer.node for layer in layers]):
        return None
    params = [v for v in norm.inputs[1:3] if v is not None]
    for value in params:
        const = value.const_value
        if (
            const is None
            or tuple(const.shape) != (k,)
            or len(list(value.uses())) != 1
            or value.is_graph_output()
        ):
            return None
    return norm


def _divide_param(norm: ir.Node, s: np.ndarray) -> None:
    for value in norm.inputs[1:3]:
        if value is None:
            continue
        tensor = value.const_value
        array = tensor.numpy()
        value.const_value = ir.tensor(
            (array.astype(np.float32) / s).astype(array.dtype), dtype=tensor.dtype, name=tensor.name
        )


def _insert_mul(graph: ir.Graph, act: ir.Value, layers: list[Layer], s: np.ndarray) -> ir.Node:
    dtype = act.dtype or ir.DataType.FLOAT
    const = add_initializer(
        graph, f"{act.name}_inv_scale", (np.float32(1.0) / s).astype(dtype.numpy()), dtype
    )
    name = const.name
    mul = ir.node("Mul", [act, const], name=f"{name}_mul")
    mul.outputs[0].name, mul.outputs[0].dtype, mul.outputs[0].shape = f"{name}_out", dtype, act.shape
    producer = act.producer()
    if producer is not None:
        graph.insert_after(producer, mul)
    else:
        graph.insert_before(graph.node(0), mul)
    for layer in layers:
        node = layer.node
        for index, value in enumerate(node.inputs):
            if value is act and index != list(node.inputs).index(layer.weight):
                node.replace_input_with(index, mul.outputs[0])
        layer.activation = mul.outputs[0]
    return mul


class ScaleInputChannels(ir.passes.InPlacePass):
    """items: (activation, layers consuming it, s[K]); `applied` lists what was done, in order."""

    def __init__(self, items: list[tuple[ir.Value, list[Layer], np.ndarray]]):
        super().__init__()
        self.items = items
        self.applied: list[ScaledInput] = []

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        seen: set[int] = set()
        for act, layers, s in self.items:
            s = np.asarray(s, np.float32)
            if s.ndim != 1 or not np.all(np.isfinite(s)) or not np.all(s > 0):
                raise LayoutError(f"{act.name}: channel scales must be a finite positive vector")
            for layer in layers:
                if id(layer.node) in seen:
                    raise LayoutError(f"{layer.name}: input channels scaled twice")
                if layer.activation is not act:
                    raise LayoutError(f"{layer.name}: does not read activation {act.name!r}")
                seen.add(id(layer.node))
                scale_weight_inputs(layer, s)
            names = tuple(layer.name for layer in layers)
            norm = _foldable_norm(act, layers, s.shape[0])
            if norm is not None:
                _divide_param(norm, s)
                self.applied.append(ScaledInput(act.name, "folded", norm.name or norm.op_type, names))
            else:
                mul = _insert_mul(graph, act, layers, s)
                self.applied.append(ScaledInput(act.name, "mul", mul.name, names))
        return ir.passes.PassResult(model, modified=bool(self.items))

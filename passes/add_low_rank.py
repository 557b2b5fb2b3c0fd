"""LoRC's correction as a side branch: `y = op(x) + (x @ A) @ B`, with `x @ A` computed once per
activation tensor when several layers share it. A and B are FP16 values held in float32 (or the
model's float type) constants; the branch reads the activation before any Q/DQ."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qcompile.passes.canonicalize import Layer
from qcompile.passes.initializers import add_initializer


def takes_side_branch(layer: Layer) -> bool:
    return layer.op == "MatMul" or (layer.op == "Gemm" and not layer.node.attributes.get_int("transA", 0))


def float_dtype(layer: Layer):
    return np.float16 if layer.source.const_value.dtype == ir.DataType.FLOAT16 else np.float32


def add_to_output(graph: ir.Graph, layer: Layer, side: ir.Value, b: np.ndarray, tag: str) -> None:
    """Rewire `layer`'s output y to `y + side @ b` for every consumer (a graph output keeps its name)."""
    b_value = add_initializer(graph, f"{layer.name}_{tag}_B", b.astype(float_dtype(layer)))
    up = ir.node("MatMul", [side, b_value], name=f"{layer.name}_{tag}_up")
    up.outputs[0].name = f"{layer.name}_{tag}_up"
    output = layer.node.outputs[0]
    add = ir.node("Add", [output, up.outputs[0]], name=f"{layer.name}_{tag}_add")
    add.outputs[0].name = f"{output.name}_{tag}"
    for value in (up.outputs[0], add.outputs[0]):
        value.dtype = output.dtype or b_value.dtype
    add.outputs[0].shape = output.shape
    graph.insert_after(layer.node, [up, add])
    was_output = output.is_graph_output()
    output.replace_all_uses_with(add.outputs[0], replace_graph_outputs=True)
    add.replace_input_with(0, output)
    if was_output:
        name = output.name
        output.name = f"{name}_{tag}_main"
        add.outputs[0].name = name


class AddLowRankBranches(ir.passes.InPlacePass):
    """items: (layer, A [K, r], B [r, N]) for MatMul and Gemm (transA=0) layers."""

    def __init__(self, items: list[tuple[Layer, np.ndarray, np.ndarray]]):
        super().__init__()
        self.items = items

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        shared: dict[tuple[int, bytes], ir.Value] = {}
        for layer, a, b in self.items:
            if not takes_side_branch(layer):
                raise ValueError(f"{layer.name}: LoRC branches are for MatMul and Gemm(transA=0) layers")
            key = (id(layer.activation), a.tobytes())
            if key not in shared:
                a_value = add_initializer(graph, f"{layer.name}_lorc_A", a.astype(float_dtype(layer)))
                down = ir.node("MatMul", [layer.activation, a_value], name=f"{layer.name}_lorc_down")
                down.outputs[0].name = f"{layer.name}_lorc_down"
                down.outputs[0].dtype = a_value.dtype
                graph.insert_before(layer.node, down)
                shared[key] = down.outputs[0]
            add_to_output(graph, layer, shared[key], b, "lorc")
        return ir.passes.PassResult(model, modified=bool(self.items))

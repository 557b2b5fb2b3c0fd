"""Float offsets of asymmetric weights as a side branch: with `W'[n, k] = s[n, g] q[n, k] + m[n, g]`
for k in group g, `x @ W'^T = x @ (s q)^T + S(x) @ m^T`, where `S(x)[..., g]` sums x over the
group's input channels. The main op keeps a zero-point-free DequantizeLinear (what TensorRT runs);
`S(x)` is `Reshape(x, [..., G, group]) -> ReduceSum(-1)`, computed once per activation and group
size, on the activation before any Q/DQ (as LoRC's branch). m is float16 values in the model's
float type."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from qcompile.passes.add_low_rank import add_to_output, takes_side_branch
from qcompile.passes.canonicalize import Layer
from qcompile.passes.initializers import add_initializer


def _const(graph: ir.Graph, name: str, values) -> ir.Value:
    return add_initializer(graph, name, np.asarray(values, np.int64))


def _group_sums(graph: ir.Graph, layer: Layer, groups: int) -> ir.Value:
    x, base = layer.activation, f"{layer.name}_offsets"
    shape = ir.node("Shape", [x], name=f"{base}_shape")
    lead = ir.node(
        "Slice",
        [shape.outputs[0], _const(graph, f"{base}_start", [0]), _const(graph, f"{base}_end", [-1])],
        name=f"{base}_lead",
    )
    split = ir.node(
        "Concat",
        [lead.outputs[0], _const(graph, f"{base}_groups", [groups, layer.k // groups])],
        attributes={"axis": 0},
        name=f"{base}_split_shape",
    )
    grouped = ir.node("Reshape", [x, split.outputs[0]], name=f"{base}_grouped")
    sums = ir.node(
        "ReduceSum",
        [grouped.outputs[0], _const(graph, f"{base}_axis", [-1])],
        attributes={"keepdims": 0},
        name=f"{base}_sums",
    )
    nodes = [shape, lead, split, grouped, sums]
    for node in nodes:
        node.outputs[0].name = node.name
    for node in nodes[:3]:
        node.outputs[0].dtype = ir.DataType.INT64
    for node in nodes[3:]:
        node.outputs[0].dtype = x.dtype or layer.source.const_value.dtype
    graph.insert_before(layer.node, nodes)
    return sums.outputs[0]


class AddGroupOffsets(ir.passes.InPlacePass):
    """items: (layer, offsets [N, G]) for MatMul and Gemm (transA=0) layers."""

    def __init__(self, items: list[tuple[Layer, np.ndarray]]):
        super().__init__()
        self.items = items

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        shared: dict[tuple[int, int], ir.Value] = {}
        for layer, offsets in self.items:
            if not takes_side_branch(layer):
                raise ValueError(f"{layer.name}: float offsets are for MatMul and Gemm(transA=0) layers")
            groups = offsets.shape[1]
            key = (id(layer.activation), groups)
            if key not in shared:
                shared[key] = _group_sums(graph, layer, groups)
            add_to_output(graph, layer, shared[key], np.ascontiguousarray(offsets.T), "offsets")
        return ir.passes.PassResult(model, modified=bool(self.items))

"""What must hold after Q/DQ emission: every planned weight is `DequantizeLinear(initializer)` with
the planned dtype and scale shape, every planned activation has its Q -> DQ pair, nothing dangles."""

from __future__ import annotations

import onnx_ir as ir

from qcompile.passes.insert_qdq import QuantizedLayer


def _expected_scale_shape(ql: QuantizedLayer) -> tuple[int, ...]:
    spec, layer = ql.weight.spec, ql.layer
    if spec.granularity == "tensor":
        return ()
    groups = ql.weight.scales.shape[1]
    if groups == 1:
        return (layer.n,)
    return (groups, layer.n) if layer.layout == "kn" else (layer.n, groups)


def check_qdq(model: ir.Model, layers: list[QuantizedLayer]) -> list[str]:
    problems: list[str] = []
    graph = model.graph
    for ql in layers:
        node, name = ql.layer.node, ql.layer.name
        if node.graph is not graph:
            problems.append(f"{name}: the layer's node is no longer in the graph")
            continue
        dq = node.inputs[1].producer()  # every quantizable op reads its weight as input 1
        if dq is None or dq.op_type != "DequantizeLinear":
            problems.append(f"{name}: weight is not produced by DequantizeLinear")
            continue
        q_init = dq.inputs[0]
        if not q_init.is_initializer() or q_init.const_value is None:
            problems.append(f"{name}: weight DequantizeLinear does not read an initializer")
            continue
        want_dtype = ql.weight.spec.fmt.onnx_dtype
        if q_init.const_value.dtype.name != want_dtype:
            problems.append(f"{name}: weight dtype {q_init.const_value.dtype.name}, planned {want_dtype}")
        scale_shape = tuple(dq.inputs[1].const_value.shape)
        if scale_shape != _expected_scale_shape(ql):
            problems.append(f"{name}: scale shape {scale_shape}, planned {_expected_scale_shape(ql)}")
        if ql.act_fmt is not None:
            act_dq = node.inputs[0].producer()
            act_q = (
                act_dq.inputs[0].producer()
                if act_dq is not None and act_dq.op_type == "DequantizeLinear"
                else None
            )
            if act_q is None or act_q.op_type != "QuantizeLinear":
                problems.append(f"{name}: activation has no QuantizeLinear -> DequantizeLinear pair")
            elif tuple(act_q.inputs[1].const_value.shape) != ():
                problems.append(f"{name}: activation scale is not per tensor")
    for node in graph:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and not any(
            out.uses() or out.is_graph_output() for out in node.outputs
        ):
            problems.append(f"{node.name}: dangling {node.op_type}")
    return problems

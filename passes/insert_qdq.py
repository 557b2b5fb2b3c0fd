"""Emit TensorRT explicit-quantization Q/DQ: `DequantizeLinear(quantized constant)` on weights,
a shared `QuantizeLinear -> DequantizeLinear` pair on the activation input of weighted ops.

Outputs of weighted ops are left alone (TensorRT's placement rules). Layers that are emitted as
plugin nodes are not touched here.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir
import onnx_ir.passes.common as common_passes

from qcompile.formats import Format
from qcompile.passes.canonicalize import Layer
from qcompile.passes.initializers import add_initializer, unique_name
from qcompile.quantizer import QuantizedWeight


@dataclasses.dataclass
class QuantizedLayer:
    layer: Layer
    weight: QuantizedWeight
    act_fmt: Format | None = None
    act_scale: float | None = None


def _as_ml_dtype(codes: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return codes.view(dtype) if codes.dtype.itemsize == dtype.itemsize == 1 else codes.astype(dtype)


def weight_arrays(ql: QuantizedLayer) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """(codes, scale, zero point, DQ attributes) in the layout the op reads its weight operand."""
    layer, qw = ql.layer, ql.weight
    fmt = qw.spec.fmt
    # a view, not a copy: a large model's codes are held once
    codes = (
        qw.codes.view(np.uint8).view(fmt.ml_dtype)
        if fmt.kind == "float"
        else _as_ml_dtype(qw.codes, fmt.ml_dtype)
    )
    scales, zeros = qw.scales, qw.zero_points
    groups = scales.shape[1]
    kn = layer.layout == "kn"
    if layer.op == "Conv":
        codes = codes.reshape(layer.operand_shape)
    elif kn:
        codes = codes.T
    if qw.spec.granularity == "tensor":
        return codes, np.asarray(scales[0, 0], np.float32), None, {}
    if groups == 1:
        return (
            codes,
            scales[:, 0].copy(),
            None if zeros is None else zeros[:, 0].astype(fmt.ml_dtype),
            {"axis": 1 if kn else 0},
        )
    attrs = {"axis": 0 if kn else 1, "block_size": qw.spec.group_size}
    zp = None if zeros is None else (zeros.T if kn else zeros).astype(fmt.ml_dtype)
    return codes, np.ascontiguousarray(scales.T if kn else scales), zp, attrs


class InsertQDQ(ir.passes.InPlacePass):
    def __init__(self, layers: list[QuantizedLayer]):
        super().__init__()
        self.layers = layers

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        shared_qdq: dict[tuple[int, str, float], ir.Value] = {}
        for ql in self.layers:
            layer = ql.layer
            codes, scale, zero, attrs = weight_arrays(ql)
            base = unique_name(graph, f"{layer.source.name or layer.name}_q")
            q_value = add_initializer(graph, base, codes)
            s_value = add_initializer(
                graph, unique_name(graph, base + "_scale"), scale.astype(self._scale_dtype(layer))
            )
            inputs = [q_value, s_value]
            if zero is not None:
                inputs.append(add_initializer(graph, unique_name(graph, base + "_zero"), zero))
            dq = ir.node("DequantizeLinear", inputs, attributes=attrs, name=f"{layer.name}_weight_dq")
            graph.insert_before(layer.node, dq)
            dq.outputs[0].name = base + "_dq"
            dq.outputs[0].dtype = s_value.dtype
            dq.outputs[0].shape = ir.Shape(codes.shape)
            layer.node.replace_input_with(list(layer.node.inputs).index(layer.weight), dq.outputs[0])
            if ql.act_fmt is not None:
                key = (id(layer.activation), ql.act_fmt.name, float(ql.act_scale))
                if key not in shared_qdq:
                    shared_qdq[key] = self._activation_qdq(graph, layer, ql)
                layer.node.replace_input_with(
                    list(layer.node.inputs).index(layer.activation), shared_qdq[key]
                )
        common_passes.RemoveUnusedNodesPass()(model)
        return ir.passes.PassResult(model, modified=bool(self.layers))

    @staticmethod
    def _scale_dtype(layer: Layer):
        """The type the op computes in: a Cast in the weight's chain (only to float32 is admitted) makes
        a float16 initializer a float32 operand, and its scales float32."""
        if any(node.op_type == "Cast" for node in layer.chain):
            return np.float32
        return np.float16 if layer.source.const_value.dtype == ir.DataType.FLOAT16 else np.float32

    def _activation_qdq(self, graph: ir.Graph, layer: Layer, ql: QuantizedLayer) -> ir.Value:
        act = layer.activation
        base = unique_name(graph, f"{act.name}_{ql.act_fmt.name}")
        scale = add_initializer(graph, base + "_scale", np.asarray(ql.act_scale, self._scale_dtype(layer)))
        zero = add_initializer(graph, base + "_zero", np.zeros((), ql.act_fmt.ml_dtype))
        q = ir.node("QuantizeLinear", [act, scale, zero], name=base + "_q")
        dq = ir.node("DequantizeLinear", [q.outputs[0], scale], name=base + "_dq")
        q.outputs[0].name, dq.outputs[0].name = base + "_q", base + "_dq"
        q.outputs[0].dtype = zero.dtype
        dq.outputs[0].dtype = scale.dtype
        if act.shape is not None:
            dq.outputs[0].shape = act.shape
        producer = act.producer()
        if producer is not None:
            graph.insert_after(producer, [q, dq])
        else:
            graph.insert_before(graph.node(0), [q, dq])
        return dq.outputs[0]

"""What TensorRT 10's explicit quantization would reject or not fuse, checked without TensorRT.

Rules (research notes §7, TensorRT 10 headers and docs); each Violation names one:
- opset: default-domain opset >= 21 (INT4 and block_size), >= 23 when FP4 is used.
- qdq-type: Q/DQ types are INT8, FP8 E4M3FN, INT4 or FP4 E2M1 (no UINT8, UINT4, FP8 E5M2 ...).
- int4-weight-only: INT4 Q/DQ only on constant weights (weight-only quantization).
- symmetric: zero points absent or constant zeros.
- scale: scales constant (or a DQ of constants, FP4's double quantization), positive, finite.
- activation-per-tensor: Q/DQ of an activation takes a scalar scale.
- per-channel: a weight's 1-D scale has dim[axis] elements.
- block: INT4 block quantization on a 2-D constant, scale of the input's rank with exactly one
  blocked axis (last or second-to-last), block_size dividing that dim.
- even-last-dim: INT4/FP4 tensors have an even last dimension (two codes per byte).
- qdq-after-weighted-op: a Q/DQ on a MatMul/Gemm/Conv output whose DQ reaches no op that takes
  a quantized input (TensorRT cannot fuse it; placement rule "do not quantize outputs").
- plugin: a qcompile plugin node that does not match plugin_specs.json.
Only what TensorRT is documented to reject, or cannot fuse, is flagged.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir

from qcompile import plugin_specs

QDQ = ("QuantizeLinear", "DequantizeLinear")
SUPPORTED = {ir.DataType.INT8, ir.DataType.FLOAT8E4M3FN, ir.DataType.INT4, ir.DataType.FLOAT4E2M1}
PACKED = {ir.DataType.INT4, ir.DataType.FLOAT4E2M1}
WEIGHTED = {"MatMul", "Gemm", "Conv", "ConvTranspose"}
# Ops a DQ output can feed for TensorRT to run something quantized (weighted ops, the residual
# Add fused after one, another Q); COMMUTING ops are those TensorRT moves DQ across.
QUANTIZED_CONSUMERS = WEIGHTED | {"Add", "QuantizeLinear"}
COMMUTING = {
    "Reshape",
    "Transpose",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Identity",
    "MaxPool",
    "GlobalMaxPool",
    "Slice",
    "Concat",
    "Split",
}


@dataclasses.dataclass(frozen=True)
class Violation:
    node: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.node}: [{self.rule}] {self.message}"


def _is_constant(value: ir.Value | None) -> bool:
    if value is None:
        return False
    if value.const_value is not None:
        return True
    producer = value.producer()
    return producer is not None and (
        producer.op_type == "Constant"
        or (producer.op_type == "Identity" and _is_constant(producer.inputs[0]))
    )


def _is_weight(value: ir.Value) -> bool:
    """Constant-rooted: a constant, or a Q of a constant (TensorRT quantizes it at build time)."""
    producer = value.producer()
    if producer is not None and producer.op_type == "QuantizeLinear":
        return _is_constant(producer.inputs[0])
    return _is_constant(value)


def _array(value: ir.Value | None) -> np.ndarray | None:
    if value is None:
        return None
    if value.const_value is not None:
        return value.const_value.numpy()
    producer = value.producer()
    if producer is not None and producer.op_type == "Constant" and "value" in producer.attributes:
        return producer.attributes["value"].value.numpy()
    if producer is not None and producer.op_type == "Identity":
        return _array(producer.inputs[0])
    return None


def _dtype(value: ir.Value | None) -> ir.DataType | None:
    if value is None:
        return None
    if value.dtype is not None:
        return value.dtype
    return value.const_value.dtype if value.const_value is not None else None


def _shape(value: ir.Value) -> list | None:
    shape = value.shape or (value.const_value.shape if value.const_value is not None else None)
    return None if shape is None else list(shape)


def quantized_type(node: ir.Node) -> ir.DataType | None:
    """The low-precision type of a Q (its output) or DQ (its input)."""
    if node.op_type == "DequantizeLinear":
        return _dtype(node.inputs[0])
    zero_point = node.inputs[2] if len(node.inputs) > 2 else None
    if zero_point is not None:
        return _dtype(zero_point)
    if "output_dtype" in node.attributes and node.attributes.get_int("output_dtype"):
        return ir.DataType(node.attributes.get_int("output_dtype"))
    return _dtype(node.outputs[0]) or ir.DataType.UINT8  # ONNX's default without a zero point


def _reaches_quantized_op(value: ir.Value, seen: set) -> bool:
    if value.is_graph_output():
        return False
    for use in value.uses():
        consumer = use.node
        if consumer.op_type in QUANTIZED_CONSUMERS or consumer.domain not in ("", "ai.onnx"):
            return True
        if consumer.op_type in COMMUTING and id(consumer) not in seen:
            seen.add(id(consumer))
            if any(_reaches_quantized_op(out, seen) for out in consumer.outputs):
                return True
    return False


def _check_scale_and_zero(node: ir.Node, name: str, weight: bool, found: list) -> None:
    scale, zero_point = node.inputs[1], (node.inputs[2] if len(node.inputs) > 2 else None)
    scale_array = _array(scale)
    scale_producer = scale.producer()
    double_quant = (
        scale_producer is not None
        and scale_producer.op_type == "DequantizeLinear"
        and _is_constant(scale_producer.inputs[0])
    )
    if scale_array is None and not double_quant:
        found.append(Violation(name, "scale", "scale is not a build-time constant"))
    elif scale_array is not None:
        values = scale_array.astype(np.float64)
        if not np.all(np.isfinite(values)) or not np.all(values > 0):
            found.append(Violation(name, "scale", "scales must be finite and strictly positive"))
    if zero_point is not None:
        zp = _array(zero_point)
        if zp is None or np.any(zp.astype(np.float64) != 0):
            found.append(
                Violation(name, "symmetric", "zero point must be a constant of zeros (symmetric only)")
            )
    scale_shape = _shape(scale)
    if scale_shape is None or node.attributes.get_int("block_size", 0):
        return
    per_tensor = int(np.prod(scale_shape)) == 1 and len(scale_shape) <= 1
    if not per_tensor and not weight:
        found.append(
            Violation(
                name,
                "activation-per-tensor",
                f"activation Q/DQ needs a scalar scale, got shape {scale_shape}",
            )
        )
    elif not per_tensor:
        data_shape = _shape(node.inputs[0])
        if len(scale_shape) != 1 or data_shape is None:
            found.append(
                Violation(name, "per-channel", f"per-channel scale must be 1-D, got shape {scale_shape}")
            )
            return
        axis = node.attributes.get_int("axis", 1) % len(data_shape)
        if scale_shape[0] != data_shape[axis]:
            found.append(
                Violation(
                    name,
                    "per-channel",
                    f"scale has {scale_shape[0]} elements, dim[{axis}] of the weight is {data_shape[axis]}",
                )
            )


def _check_block(node: ir.Node, name: str, qtype, weight: bool, found: list) -> None:
    block = node.attributes.get_int("block_size", 0)
    data_shape, scale_shape = _shape(node.inputs[0]), _shape(node.inputs[1])
    if qtype == ir.DataType.INT4 and not (weight and data_shape is not None and len(data_shape) == 2):
        found.append(Violation(name, "block", "INT4 block quantization needs a 2-D constant weight"))
        return
    if data_shape is None or scale_shape is None:
        return
    if len(scale_shape) != len(data_shape):
        found.append(
            Violation(name, "block", f"block scale rank {len(scale_shape)} != input rank {len(data_shape)}")
        )
        return
    axis = node.attributes.get_int("axis", 1) % len(data_shape)
    if axis < len(data_shape) - 2:
        found.append(Violation(name, "block", f"blocked axis {axis} must be the last or second-to-last"))
    others = [i for i in range(len(data_shape)) if i != axis and scale_shape[i] != data_shape[i]]
    if others:
        found.append(
            Violation(name, "block", f"exactly one blocked axis allowed, scale also differs on axes {others}")
        )
    dim = data_shape[axis]
    if isinstance(dim, int) and (dim % block or scale_shape[axis] != dim // block):
        found.append(
            Violation(
                name,
                "block",
                f"block_size {block} must divide dim[{axis}]={dim} "
                f"and the scale must have {dim // block} blocks there",
            )
        )


def _check_qdq(node: ir.Node, name: str, found: list) -> None:
    from_q = (
        node.op_type == "DequantizeLinear"
        and (p := node.inputs[0].producer()) is not None
        and p.op_type == "QuantizeLinear"
    )
    weight = _is_weight(node.inputs[0])
    qtype = quantized_type(node)
    if not from_q:  # a Q -> DQ pair is judged once, on the Q
        if qtype not in SUPPORTED:
            found.append(
                Violation(
                    name,
                    "qdq-type",
                    f"{qtype.name if qtype else 'unknown'} Q/DQ is not supported "
                    "(INT8, FLOAT8E4M3FN, INT4, FLOAT4E2M1)",
                )
            )
        if qtype == ir.DataType.INT4 and not weight:
            found.append(
                Violation(name, "int4-weight-only", "INT4 is weight-only: its input must be a constant")
            )
    data_shape = _shape(node.inputs[0])
    if qtype in PACKED and data_shape and isinstance(data_shape[-1], int) and data_shape[-1] % 2:
        found.append(
            Violation(name, "even-last-dim", f"{qtype.name} needs an even last dim, got {data_shape}")
        )
    _check_scale_and_zero(node, name, weight, found)
    if node.attributes.get_int("block_size", 0):
        _check_block(node, name, qtype, weight, found)
    if node.op_type == "QuantizeLinear":
        producer = node.inputs[0].producer()
        dqs = [u.node for u in node.outputs[0].uses() if u.node.op_type == "DequantizeLinear"]
        if (
            producer is not None
            and producer.op_type in WEIGHTED
            and not any(_reaches_quantized_op(dq.outputs[0], set()) for dq in dqs)
        ):
            found.append(
                Violation(
                    name,
                    "qdq-after-weighted-op",
                    f"Q/DQ on the output of {producer.op_type} "
                    f"{producer.name!r} feeds no quantized op; TensorRT cannot fuse it",
                )
            )


def check_tensorrt_rules(model: ir.Model) -> list[Violation]:
    """Every TensorRT explicit-quantization rule the model breaks (empty list: none found)."""
    found: list[Violation] = []
    specs = plugin_specs.load_specs()
    uses_fp4 = False
    for index, node in enumerate(model.graph.all_nodes()):
        name = node.name or f"{node.op_type}_{index}"
        if node.op_type in QDQ and node.domain in ("", "ai.onnx"):
            uses_fp4 |= quantized_type(node) == ir.DataType.FLOAT4E2M1
            _check_qdq(node, name, found)
        elif node.domain == specs.namespace or node.op_type in specs.plugins:
            found += [Violation(name, "plugin", p) for p in plugin_specs.check_plugin_node(node, specs)]
    opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 0))
    need = 23 if uses_fp4 else 21
    if opset < need:
        found.append(
            Violation(
                "<model>",
                "opset",
                f"default-domain opset {opset} < {need}{' (FP4 is used)' if uses_fp4 else ''}",
            )
        )
    return found

"""Plugin nodes emitted by qcompile, one per attribute combination of compiler/plugin_specs.json,
written as a text file that the C++ plugin harness (plugins/trt/harness) reads.

Every combination of the attributes that list their `values` is tried; each is emitted by
EmitPluginGemms from a real quantized weight. A combination the emitter cannot produce is
written as `unemittable` with the reason (the harness reports them; today: INT4 and FP4
with zero points, which qcompile never emits since only unsigned formats take a zero point, and
layout_version 2 and 3 for FP4, layout_version 3 for group size 32). QcW4A16Gemm with INT4/UINT4
is emitted in layout 2; its layout-1 cases are the same node repacked in layout 1, as qcompile wrote
it before layout 2 existed; its layout-3 cases (int4_sm90) are emitted for the Hopper target
(target_arch "sm90").

File format, one block per case:
    case LABEL OP_TYPE
    field NAME int VALUE | field NAME str VALUE
    input DTYPE D0 D1 ...        (the node's inputs in order; x's leading dims as emitted)
    end
Usage: python tests/trt/harness_cases.py OUT.txt
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import onnx_ir as ir
from onnx import TensorProto, helper, numpy_helper

from qcompile.errors import QCompileError
from qcompile.formats import FORMATS
from qcompile.passes.canonicalize import find_layers
from qcompile.passes.emit_plugins import EmitPluginGemms
from qcompile.passes.insert_qdq import QuantizedLayer
from qcompile.plugin_specs import load_specs
from qcompile.quantizer import WeightSpec, quantize_weight

K, N = 128, 64  # K a multiple of every group size and of 64 (W6A16); N a multiple of 8
# One more case per plugin, large enough that the kernels split K for small M and not for large M
# (the workspace is then not monotonic in M).
LARGE = 2048


def combinations(spec) -> list[dict]:
    listed = {name: a.values for name, a in spec.attributes.items() if a.values}
    return [dict(zip(listed, values)) for values in itertools.product(*listed.values())]


def _weight_spec(op: str, attrs: dict) -> tuple[WeightSpec, str | None]:
    fmt = FORMATS[attrs["format"]]
    if op == "QcW6A16Gemm":
        return WeightSpec(fmt, "channel", scale_dtype="float16"), None
    if op == "QcW4A16Gemm":
        return WeightSpec(fmt, "group", attrs["group_size"], symmetric=not attrs["has_zeros"]), None
    return WeightSpec(fmt, "group", attrs["group_size"], scale_constraint="pow2_ratio"), attrs["act_quant"]


def emit(op: str, attrs: dict, k: int = K, n: int = N) -> ir.Node:
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((k, n)) * 0.1).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, n])],
        [numpy_helper.from_array(w, "w")],
    )
    model = ir.from_proto(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    )
    (layer,), _ = find_layers(model.graph)
    spec, act = _weight_spec(op, attrs)
    act_fmt = FORMATS["fp8_e4m3fn"] if act else None
    act_scale = 0.01 if act == "per_tensor" else None
    target = "sm90" if attrs.get("layout_version") == 3 else "any"
    EmitPluginGemms(
        [(QuantizedLayer(layer, quantize_weight(layer.weight_nk(), spec), act_fmt, act_scale), op)], target
    )(model)
    (node,) = [n for n in model.graph if n.domain == "qcompile"]
    if attrs.get("layout_version") == 1 and node.attributes["layout_version"].value == 2:
        _as_layout_1(node)
    return node


def _as_layout_1(node: ir.Node) -> None:
    """The node's codes repacked in layout 1 (int4_v2 -> nibble, fp6_v2 -> fp6_4+2)."""
    from qcompile.packing import pack_fp6, pack_nibbles, unpack_fp6_v2, unpack_int4_v2

    if node.op_type == "QcW6A16Gemm":
        lo4, hi2 = node.inputs[1], node.inputs[2]
        fmt = node.attributes["format"].value
        codes = unpack_fp6_v2(lo4.const_value.numpy(), hi2.const_value.numpy(), fmt)
        for value, packed in zip((lo4, hi2), pack_fp6(codes)):
            value.const_value = ir.tensor(packed.view(np.int8), name=value.name)
    else:
        w = node.inputs[1]
        codes = unpack_int4_v2(w.const_value.numpy())
        w.const_value = ir.tensor(pack_nibbles(codes).view(np.int8), name=w.name)
    node.attributes["layout_version"] = ir.AttrInt64("layout_version", 1)


def describe(node: ir.Node) -> list[str]:
    lines = []
    for name, attr in node.attributes.items():
        if name in ("plugin_version", "plugin_namespace"):
            continue  # read by TensorRT's parser, not passed to the creator
        kind = "int" if isinstance(attr.value, int) else "str"
        lines.append(f"field {name} {kind} {attr.value}")
    for value in node.inputs:
        dtype = (value.dtype if value.dtype is not None else value.const_value.dtype).numpy().name
        shape = value.shape if value.shape is not None else value.const_value.shape
        lines.append(f"input {dtype} {' '.join(str(int(d)) for d in shape)}")
    return lines


def write_cases(path) -> int:
    specs = load_specs()
    blocks = []
    for op, spec in specs.plugins.items():
        combos = [(attrs, K, N) for attrs in combinations(spec)] + [(combinations(spec)[0], LARGE, LARGE)]
        for attrs, k, n in combos:
            label = "_".join(f"{name}={v}" for name, v in attrs.items()) + f"_K={k}_N={n}"
            try:
                node = emit(op, attrs, k, n)
            except QCompileError as exc:
                blocks.append(f"unemittable {op} {label} {str(exc).replace(chr(10), ' ')}\n")
                continue
            got = {k: node.attributes[k].value for k in attrs}
            if got != attrs:
                blocks.append(f"unemittable {op} {label} emitted {got}\n")
                continue
            blocks.append("\n".join([f"case {label} {op}", *describe(node), "end"]) + "\n")
    with open(path, "w") as f:
        f.writelines(blocks)
    return len(blocks)


if __name__ == "__main__":
    print(f"wrote {write_cases(sys.argv[1])} cases to {sys.argv[1]}")

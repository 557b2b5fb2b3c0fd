"""Replace quantized MatMul / Gemm layers by qcompile plugin GEMM nodes (compiler/plugin_specs.json).

Each layer becomes `Cast(x -> float16) -> Qc*Gemm(x, packed constants...) -> Cast(-> original
dtype)` (plus an `Add` of the bias for a Gemm with C). The constants are the packed bytes of
docs/LAYOUTS.md, as initializers in the spec's input order and dtypes. QcW4A16Gemm and QcW6A16Gemm
weights take layout version 2 (int4_v2 / fp6_v2, the kernels' cheapest decodes) wherever it applies
(int4_v2: INT4 / UINT4, N a multiple of 16, K of 64; fp6_v2: N a multiple of 16), else version 1
(nibble / fp6_4+2). For the Hopper target (`target_arch="sm90"`) a QcW4A16Gemm weight the sm_90a
path takes (packing_sm90.int4_sm90_problem: INT4 / UINT4, N and K multiples of 16, group 64 or 128)
takes version 3 (int4_sm90, CUTLASS's order), which no other GPU runs. Per-channel weights
given to a per-group plugin repeat their scale over the groups (the same values). Packed bytes
and zero points are typed INT8 (the same bits): TensorRT 10.0 and 10.1's ONNX parser widens
UINT8 initializers to INT32, which no plugin accepts.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import onnx_ir.passes.common

from qcompile.errors import CheckFailed, LayoutError
from qcompile.passes.initializers import add_initializer
from qcompile.passes.insert_qdq import QuantizedLayer

LAYOUT_OF = {"QcW6A16Gemm": "fp6_4+2", "QcW4A16Gemm": "nibble", "QcW4A8Gemm": "nibble"}


def plugin_shape_problem(op_type: str, n: int, k: int, group_size: int) -> str:
    """Why a layer of shape N x K cannot be this plugin ("" if it can)."""
    from qcompile.plugin_specs import load_specs

    spec = load_specs().get(op_type)
    layout = LAYOUT_OF[op_type]
    attrs = {"N": n, "K": k}
    if "group_size" in spec.attributes:
        allowed = spec.attributes["group_size"].values
        if allowed and group_size not in allowed:
            return f"group size {group_size} is not one of {list(allowed)} ({op_type})"
        attrs["group_size"] = group_size
    k_multiple = spec.multiple("K_multiple", attrs)
    if k_multiple and k % k_multiple:
        what = "the group size " if spec.shape_rules.get("K_multiple") == "group_size" else ""
        return f"K={k} is not a multiple of {what}{k_multiple} ({layout} layout)"
    n_multiple = spec.multiple("N_multiple", attrs)
    if n_multiple and n % n_multiple:
        return f"N={n} is not a multiple of {n_multiple} ({op_type} kernel tiles)"
    return ""


def _fp16(name: str, array: np.ndarray) -> np.ndarray:
    out = np.asarray(array, np.float32).astype(np.float16)
    if not np.isfinite(out).all():
        raise LayoutError(f"{name}: a scale exceeds the float16 range (65504)")
    return out


def _group_view(array: np.ndarray, k: int, group_size: int) -> np.ndarray:
    """[N, G] per-group values; per-channel [N, 1] values repeated over K / group_size groups."""
    groups = k // group_size
    if array.shape[1] == groups:
        return np.ascontiguousarray(array)
    if array.shape[1] != 1:
        raise LayoutError(f"{array.shape[1]} scales per row do not match groups of {group_size} over K={k}")
    return np.ascontiguousarray(np.repeat(array, groups, axis=1))


def _bytes(packed: np.ndarray) -> np.ndarray:
    return packed.view(np.int8)


def w4a16_layout(n: int, k: int, fmt_name: str, group_size: int, target_arch: str = "any") -> int:
    """The QcW4A16Gemm layout_version of an N x K weight: 3 (int4_sm90) where the Hopper target's
    sm_90a path takes it, else 2 (int4_v2) where that applies, else 1 (nibble)."""
    from qcompile.packing import int4_v2_problem
    from qcompile.packing_sm90 import int4_sm90_problem

    if target_arch == "sm90" and not int4_sm90_problem(n, k, fmt_name, group_size):
        return 3
    return 1 if int4_v2_problem(n, k, fmt_name) else 2


def plugin_arrays(
    ql: QuantizedLayer, op_type: str, target_arch: str = "any"
) -> tuple[dict[str, np.ndarray], dict]:
    """(constant inputs by spec name, attribute values) of the plugin node for `ql`."""
    from qcompile.packing import fp6_v2_problem, pack_fp6, pack_fp6_v2, pack_int4_v2, pack_nibbles
    from qcompile.packing_sm90 import pack_int4_sm90

    qw, layer = ql.weight, ql.layer
    fmt, n, k = qw.spec.fmt, layer.n, layer.k
    g = qw.spec.group_size
    problem = plugin_shape_problem(op_type, n, k, g)
    if op_type == "QcW6A16Gemm":
        problem = problem or (
            "" if qw.scales.shape[1] == 1 else "QcW6A16Gemm takes one scale per output channel"
        )
    if problem:
        raise LayoutError(f"{layer.name}: {problem}")
    values = {"N": n, "K": k, "format": fmt.name}
    if op_type == "QcW6A16Gemm":
        v2 = not fp6_v2_problem(n, k, fmt.name)
        values["layout_version"] = 2 if v2 else 1
        lo4, hi2 = pack_fp6_v2(qw.codes, fmt.name) if v2 else pack_fp6(qw.codes)
        return {
            "w_lo4": _bytes(lo4),
            "w_hi2": _bytes(hi2),
            "scales": _fp16(layer.name, qw.scales[:, 0]),
        }, values
    values["group_size"] = g
    if op_type == "QcW4A16Gemm":
        layout = w4a16_layout(n, k, fmt.name, g, target_arch)
        values["layout_version"] = layout
        pack = {1: pack_nibbles, 2: pack_int4_v2, 3: pack_int4_sm90}[layout]
        arrays = {
            "w": _bytes(pack(qw.codes)),
            "scales": _fp16(layer.name, _group_view(qw.scales, k, g)),
        }
        if qw.zero_points is not None:
            arrays["zeros"] = _group_view(qw.zero_points, k, g).astype(np.int8)
        values["has_zeros"] = int(qw.zero_points is not None)
        return arrays, values
    if op_type == "QcW4A8Gemm":
        from qcompile.fold import fold_group_exponents

        if ql.act_fmt is not None and ql.act_fmt.name != "fp8_e4m3fn":
            raise LayoutError(
                f"{layer.name}: QcW4A8Gemm quantizes activations to fp8_e4m3fn, not {ql.act_fmt.name}"
            )
        folded = fold_group_exponents(qw)
        per_tensor = ql.act_scale is not None
        values["act_quant"] = "per_tensor" if per_tensor else "per_token"
        act_scale = np.array([ql.act_scale if per_tensor else 1.0], np.float32)  # unused per token
        return {
            "w": _bytes(pack_nibbles(folded.codes)),
            "group_exp": _group_view(folded.group_exp, k, g).astype(np.int8),
            "channel_scale": folded.channel_scale.astype(np.float32),
            "act_scale": act_scale,
        }, values
    raise LayoutError(f"{layer.name}: unknown plugin {op_type!r}")


def _check_op(ql: QuantizedLayer) -> None:
    layer = ql.layer
    node = layer.node
    if layer.op == "Conv" or layer.op not in ("MatMul", "Gemm"):
        raise LayoutError(f"{layer.name}: {layer.op} has no plugin GEMM form")
    if layer.op == "MatMul" and node.inputs[1] is not layer.weight:
        raise LayoutError(f"{layer.name}: MatMul with the weight as first operand has no plugin form")
    if layer.op == "Gemm":
        if node.attributes.get_int("transA", 0):
            raise LayoutError(f"{layer.name}: Gemm with transA=1 has no plugin form")
        for attr in ("alpha", "beta"):
            if node.attributes.get_float(attr, 1.0) != 1.0 and (attr == "alpha" or len(node.inputs) > 2):
                raise LayoutError(f"{layer.name}: Gemm with {attr} != 1 has no plugin form")


class EmitPluginGemms(ir.passes.InPlacePass):
    """items: (QuantizedLayer, plugin op_type); each MatMul / Gemm becomes its plugin node.
    target_arch: "any" (every GPU the plugins run on) or "sm90" (Hopper: int4_sm90 where it applies);
    for "sm90", `not_sm90` then holds, by layer name, why a QcW4A16Gemm weight kept another layout."""

    def __init__(self, items: list[tuple[QuantizedLayer, str]], target_arch: str = "any"):
        super().__init__()
        self.items = items
        self.target_arch = target_arch
        self.not_sm90: dict[str, str] = {}

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        from qcompile.plugin_specs import check_plugin_node, load_specs, node_attributes

        specs = load_specs()
        graph = model.graph
        for ql, op_type in self.items:
            _check_op(ql)
            spec = specs.get(op_type)
            arrays, values = plugin_arrays(ql, op_type, self.target_arch)
            attrs = node_attributes(op_type, specs, **values)
            if self.target_arch == "sm90" and op_type == "QcW4A16Gemm" and attrs["layout_version"] != 3:
                from qcompile.packing_sm90 import int4_sm90_problem

                why = int4_sm90_problem(attrs["N"], attrs["K"], attrs["format"], attrs["group_size"])
                self.not_sm90[ql.layer.name] = f"layout_version {attrs['layout_version']}: {why}"
            layer, node = ql.layer, ql.layer.node
            x, out = node.inputs[0], node.outputs[0]  # the live input: an earlier plugin may have replaced it
            out_dtype = out.dtype or x.dtype or ir.DataType.FLOAT
            new_nodes = []
            x16 = x
            if x.dtype != ir.DataType.FLOAT16:
                cast_in = ir.node("Cast", [x], {"to": ir.DataType.FLOAT16}, name=f"{layer.name}_to_fp16")
                x16 = cast_in.outputs[0]
                x16.name, x16.dtype, x16.shape = f"{layer.name}_x_fp16", ir.DataType.FLOAT16, x.shape
                new_nodes.append(cast_in)
            base = layer.source.name or layer.name
            inputs = [x16] + [
                add_initializer(graph, f"{base}_{t.name}", arrays[t.name]) if t.name in arrays else None
                for t in spec.inputs[1:]
            ]
            while inputs[-1] is None:
                inputs.pop()
            plugin = ir.node(op_type, inputs, attrs, domain=spec.namespace, name=f"{layer.name}_{op_type}")
            y = plugin.outputs[0]
            y.name, y.dtype = f"{layer.name}_y_fp16", ir.DataType.FLOAT16
            if x.shape is not None:
                y.shape = ir.Shape(list(x.shape)[:-1] + [layer.n])
            new_nodes.append(plugin)
            final = y
            if out_dtype != ir.DataType.FLOAT16:
                cast_out = ir.node("Cast", [y], {"to": out_dtype}, name=f"{layer.name}_from_fp16")
                final = cast_out.outputs[0]
                final.dtype, final.shape = out_dtype, y.shape
                new_nodes.append(cast_out)
            if layer.op == "Gemm" and len(node.inputs) > 2 and node.inputs[2] is not None:
                add = ir.node("Add", [final, node.inputs[2]], name=f"{layer.name}_bias")
                final = add.outputs[0]
                final.dtype, final.shape = out_dtype, y.shape
                new_nodes.append(add)
            problems = check_plugin_node(plugin, specs)
            if problems:
                raise CheckFailed(
                    f"stage 'emit': {layer.name}: {op_type} does not match its spec: {'; '.join(problems)}"
                )
            ir.convenience.replace_nodes_and_values(graph, node, [node], new_nodes, [out], [final])
        if self.items:
            model.opset_imports.setdefault(specs.namespace, 1)
            onnx_ir.passes.common.RemoveUnusedNodesPass()(model)
        return ir.passes.PassResult(model, modified=bool(self.items))

"""EmitPluginGemms and LowerPluginNodes on small MatMul / Gemm graphs, for the three plugins.

The lowered model (onnxruntime, CPU) is held to a numpy reference that decodes the very bytes
the plugin node carries with qcompile.packing + qcompile.formats:
- the decoded weight operand and the FP8-rounded activation are compared with zero tolerance
  (both are exact float32 computations of the same values);
- the output may differ by one float16 ulp of the result, plus 1e-5 x (|x| @ |W|^T) for
  results near zero: onnxruntime sums the K products in float32 in its own order, the
  reference in float64, and both are then rounded to float16 like the kernel's output.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from qcompile.errors import LayoutError
from qcompile.formats import FORMATS
from qcompile.packing import pack_fp6, pack_nibbles, unpack_fp6, unpack_fp6_v2, unpack_int4_v2, unpack_nibbles
from qcompile.passes.canonicalize import find_layers
from qcompile.passes.emit_plugins import EmitPluginGemms, plugin_shape_problem
from qcompile.passes.insert_qdq import QuantizedLayer
from qcompile.passes.lower_plugins import LowerPluginNodes
from qcompile.plugin_specs import check_plugin_node, load_specs
from qcompile.quantizer import WeightSpec, quantize_weight

K, N = 128, 64
RNG = np.random.default_rng(0)
X = (RNG.standard_normal((2, 3, K)) * np.where(np.arange(K) < 4, 8.0, 1.0)).astype(np.float32)

CASES = {
    "w6a16_e3m2": ("QcW6A16Gemm", WeightSpec(FORMATS["fp6_e3m2"], "channel", scale_dtype="float16"), None),
    "w6a16_e2m3": ("QcW6A16Gemm", WeightSpec(FORMATS["fp6_e2m3"], "channel"), None),
    "w4a16_int4": ("QcW4A16Gemm", WeightSpec(FORMATS["int4"], "group", 32), None),
    "w4a16_int4_g128": ("QcW4A16Gemm", WeightSpec(FORMATS["int4"], "group", 128), None),
    "w4a16_uint4_zeros": ("QcW4A16Gemm", WeightSpec(FORMATS["uint4"], "group", 64, symmetric=False), None),
    "w4a16_fp4_channel": ("QcW4A16Gemm", WeightSpec(FORMATS["fp4_e2m1"], "channel", 128), None),
    "w4a8_fp4_tensor": (
        "QcW4A8Gemm",
        WeightSpec(FORMATS["fp4_e2m1"], "group", 32, scale_constraint="pow2_ratio"),
        "per_tensor",
    ),
    "w4a8_int4_token": (
        "QcW4A8Gemm",
        WeightSpec(FORMATS["int4"], "group", 64, scale_constraint="pow2_ratio"),
        "per_token",
    ),
}
# N=64, K=128: whole v2 tiles
V2_CASES = ("w6a16_e3m2", "w6a16_e2m3", "w4a16_int4", "w4a16_int4_g128", "w4a16_uint4_zeros")
SQNR_FLOOR_DB = {"QcW6A16Gemm": 25.0, "QcW4A16Gemm": 15.0, "QcW4A8Gemm": 12.0}


def _model(op: str, n: int = N) -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((K, n)) * 0.1).astype(np.float32)
    w[:, :8] *= 10.0  # loud output channels
    w[:32] *= 0.05  # a quiet group of input channels: M2 exponents below 0
    inits = [
        numpy_helper.from_array(w if op == "MatMul" else w.T.copy(), "w"),
        numpy_helper.from_array(rng.standard_normal(n).astype(np.float32), "bias"),
    ]
    if op == "MatMul":
        nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")]
        x_shape, y_shape = [2, 3, K], [2, 3, n]
    else:
        nodes = [helper.make_node("Gemm", ["x", "w", "bias"], ["y"], name="fc", transB=1)]
        x_shape, y_shape = [6, K], [6, n]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def _emit(case: str, op: str = "MatMul", act_scale: float | None = None, n: int = N, target: str = "any"):
    plugin, spec, act = CASES[case]
    proto = _model(op, n)
    model = ir.from_proto(proto)
    (layer,), _ = find_layers(model.graph)
    qw = quantize_weight(layer.weight_nk(), spec)
    act_fmt = FORMATS["fp8_e4m3fn"] if act else None
    if act == "per_tensor" and act_scale is None:
        act_scale = float(np.abs(X).max()) / 448.0
    EmitPluginGemms([(QuantizedLayer(layer, qw, act_fmt, act_scale), plugin)], target)(model)
    return proto, model, act_scale


def _run(proto: onnx.ModelProto, x: np.ndarray, outputs=None):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # FP8 Q/DQ fusion bug
    sess = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return sess.run(outputs, {"x": x})


def _plugin_node(model: ir.Model) -> ir.Node:
    (node,) = [n for n in model.graph if n.domain == "qcompile"]
    return node


def _reference(node: ir.Node, x: np.ndarray):
    """(weight operand [N, K], activation operand, y) from the node's packed bytes, in numpy."""
    attrs = {name: attr.value for name, attr in node.attributes.items()}
    arrays = [v.const_value.numpy() if v is not None else None for v in node.inputs[1:]]
    fmt, n, k = FORMATS[attrs["format"]], attrs["N"], attrs["K"]
    x32 = x.astype(np.float16).astype(np.float32)
    if node.op_type == "QcW6A16Gemm":
        v2 = attrs["layout_version"] == 2
        codes = unpack_fp6_v2(arrays[0], arrays[1], fmt.name) if v2 else unpack_fp6(arrays[0], arrays[1])
        w = (fmt.decode(codes) * arrays[2].astype(np.float32)[:, None]).astype(np.float16).astype(np.float32)
        return w, x32, _matmul16(x32, w)
    g = attrs["group_size"]
    unpack = unpack_int4_v2 if attrs["layout_version"] == 2 else unpack_nibbles
    codes = unpack(arrays[0], signed=fmt.name == "int4")
    values = fmt.decode(codes).reshape(n, k // g, g)
    if node.op_type == "QcW4A16Gemm":
        if attrs["has_zeros"]:
            values = values - arrays[2].astype(np.float32)[:, :, None]
        w = (values * arrays[1].astype(np.float32)[:, :, None]).reshape(n, k)
        w = w.astype(np.float16).astype(np.float32)
        return w, x32, _matmul16(x32, w)
    w8 = (values * np.exp2(arrays[1].astype(np.float32))[:, :, None]).reshape(n, k)
    assert np.array_equal(w8.astype(ml_dtypes.float8_e4m3fn).astype(np.float32), w8)  # an exact FP8 operand
    if attrs["act_quant"] == "per_tensor":
        scale = arrays[3].reshape(())
    else:
        scale = np.maximum(
            np.abs(x32).max(axis=-1, keepdims=True) / np.float32(448), np.finfo(np.float32).tiny
        )
    # ml_dtypes rounds to nearest even and turns overflow into NaN: clip first, as the kernel saturates
    x8 = np.clip(x32 / scale, -448, 448).astype(ml_dtypes.float8_e4m3fn).astype(np.float32)
    acc = x8.astype(np.float64) @ w8.T.astype(np.float64)
    y = (acc * scale * arrays[2].astype(np.float64)).astype(np.float16).astype(np.float32)
    return w8, x8, y


def _matmul16(x32, w):
    return (x32.astype(np.float64) @ w.T.astype(np.float64)).astype(np.float16).astype(np.float32)


@pytest.mark.parametrize("case", list(CASES))
def test_emitted_node_matches_the_spec(case):
    plugin, spec, act = CASES[case]
    proto, model, _ = _emit(case)
    node = _plugin_node(model)
    assert node.op_type == plugin and node.domain == "qcompile"
    specs = load_specs()
    wanted = specs.get(plugin)
    names = [t.name for t in wanted.inputs][: len(node.inputs)]
    dtypes = {
        "float16": ir.DataType.FLOAT16,
        "float32": ir.DataType.FLOAT,
        "uint8": ir.DataType.UINT8,
        "int8": ir.DataType.INT8,
    }
    for value, tensor in zip(node.inputs, wanted.inputs):
        assert value.dtype == dtypes[tensor.dtype], (tensor.name, value.dtype)
    assert names[0] == "x" and all(v.const_value is not None for v in node.inputs[1:])
    attrs = {k: a.value for k, a in node.attributes.items()}
    assert (
        attrs["N"] == N
        and attrs["K"] == K
        and attrs["format"] == spec.fmt.name
        and attrs["layout_version"] == (2 if case in V2_CASES else 1)
    )
    assert attrs["plugin_version"] == "1" and attrs["plugin_namespace"] == "qcompile"
    if plugin != "QcW6A16Gemm":
        assert attrs["group_size"] == spec.group_size
    if plugin == "QcW4A8Gemm":
        assert attrs["act_quant"] == act
    assert attrs.get("has_zeros", 0) == int(not spec.symmetric)
    out = ir.to_proto(model)
    assert {o.domain: o.version for o in out.opset_import}.get("qcompile") == 1
    onnx.checker.check_model(out, full_check=True)
    assert not [i for i in out.graph.initializer if i.name == "w"]  # the float weight is gone
    types = [n.op_type for n in out.graph.node]
    assert types == ["Cast", plugin, "Cast"]


@pytest.mark.parametrize("case", list(CASES))
def test_lowered_model_decodes_the_same_bytes(case):
    plugin, _, _ = CASES[case]
    proto, model, _ = _emit(case)
    w_ref, x_ref, y_ref = _reference(_plugin_node(model), X)
    LowerPluginNodes()(model)
    assert not [n for n in model.graph if n.domain == "qcompile"]
    assert "qcompile" not in model.opset_imports
    onnx.checker.check_model(ir.to_proto(model), full_check=True)
    matmul = next(n for n in model.graph if n.op_type == "MatMul")
    transpose = matmul.inputs[1].producer()  # of the decoded weight [N, K]
    probes = [transpose.inputs[0], matmul.inputs[0]]
    fp16_out = model.graph.outputs[0].producer().inputs[0]  # what the lowered plugin writes
    assert fp16_out.dtype == ir.DataType.FLOAT16
    for v in probes + [fp16_out]:
        model.graph.outputs.append(v)  # probes: no shapes, so no checker on this one
    out = ir.to_proto(model)
    y, w, x8, y16 = _run(out, X)
    np.testing.assert_array_equal(w, w_ref)  # the decoded weight operand: zero tolerance
    np.testing.assert_array_equal(x8, x_ref)  # fp16-rounded (and for W4A8 FP8-rounded) activation
    np.testing.assert_array_equal(y, y16.astype(np.float32))
    bound = np.spacing(np.abs(y_ref).astype(np.float16)).astype(np.float32) + 1e-5 * (
        np.abs(x_ref) @ np.abs(w_ref).T
    )
    excess = np.abs(y - y_ref) - bound
    assert excess.max() <= 0, f"max excess {excess.max()} at {np.unravel_index(excess.argmax(), y.shape)}"
    # and it is still the layer: the quantized output is close to the float one
    y_float = _run(proto, X)[0]
    sqnr = 10 * np.log10(np.sum(y_float.astype(np.float64) ** 2) / np.sum((y_float - y) ** 2.0))
    assert sqnr > SQNR_FLOOR_DB[plugin], f"{case}: output SQNR {sqnr:.1f} dB"


@pytest.mark.parametrize("case", ["w6a16_e3m2", "w4a16_uint4_zeros", "w4a8_fp4_tensor"])
def test_lowering_reads_uint8_typed_bytes_of_older_models_the_same(case):
    _, model, _ = _emit(case)
    packed = [v for v in _plugin_node(model).inputs[1:] if v is not None and v.dtype == ir.DataType.INT8]
    assert packed, "packed bytes are typed INT8"
    LowerPluginNodes()(model)
    y_int8 = _run(ir.to_proto(model), X)[0]
    _, old, _ = _emit(case)
    for value in _plugin_node(old).inputs[1:]:
        if value is not None and value.name.endswith(("_w", "_w_lo4", "_w_hi2", "_zeros")):
            value.const_value = ir.tensor(value.const_value.numpy().view(np.uint8), name=value.name)
            value.dtype = ir.DataType.UINT8
    LowerPluginNodes()(old)
    np.testing.assert_array_equal(_run(ir.to_proto(old), X)[0], y_int8)


def _assert_same_lowering(model, old):
    """Both models lowered: the decoded weight operand and the output are bit-identical."""
    results = []
    for m in (model, old):
        LowerPluginNodes()(m)
        matmul = next(n for n in m.graph if n.op_type == "MatMul")
        m.graph.outputs.append(matmul.inputs[1].producer().inputs[0])  # the decoded weight [N, K]
        results.append(_run(ir.to_proto(m), X))
    np.testing.assert_array_equal(results[0][1], results[1][1])  # decoded weight operand
    np.testing.assert_array_equal(results[0][0], results[1][0])


@pytest.mark.parametrize("case", ["w4a16_int4", "w4a16_uint4_zeros"])
def test_int4_v2_and_v1_models_of_the_same_codes_decode_the_same(case):
    """The emitter writes layout_version 2 here; the same codes in the v1 nibble layout (a model
    written before v2) lower to the same weight operand and output, zero tolerance."""
    _, model, _ = _emit(case)
    node = _plugin_node(model)
    assert node.attributes["layout_version"].value == 2
    w2 = node.inputs[1].const_value.numpy()
    signed = node.attributes["format"].value == "int4"
    codes = unpack_int4_v2(w2, signed=signed)
    w1 = pack_nibbles(codes).view(np.int8)
    assert w1.shape == w2.shape and not np.array_equal(w1, w2)  # the layouts really differ

    _, old, _ = _emit(case)
    old_node = _plugin_node(old)
    old_node.inputs[1].const_value = ir.tensor(w1, name=old_node.inputs[1].name)
    old_node.attributes["layout_version"] = ir.AttrInt64("layout_version", 1)
    assert check_plugin_node(old_node) == []
    _assert_same_lowering(model, old)


def _relayout(model: ir.Model, layout: int) -> np.ndarray:
    """The QcW4A16Gemm node's codes repacked in `layout` (1 nibble, 2 int4_v2, 3 int4_sm90)."""
    from qcompile.packing import pack_int4_v2
    from qcompile.packing_sm90 import pack_int4_sm90, unpack_int4_sm90

    node = _plugin_node(model)
    w = node.inputs[1]
    unpack = {1: unpack_nibbles, 2: unpack_int4_v2, 3: unpack_int4_sm90}
    codes = unpack[node.attributes["layout_version"].value](w.const_value.numpy())
    packed = {1: pack_nibbles, 2: pack_int4_v2, 3: pack_int4_sm90}[layout](codes).view(np.int8)
    w.const_value = ir.tensor(packed, name=w.name)
    node.attributes["layout_version"] = ir.AttrInt64("layout_version", layout)
    assert check_plugin_node(node) == []
    return packed


def _decoded_and_output(model: ir.Model) -> list[np.ndarray]:
    """(y, the decoded weight operand [N, K]) of the lowered model."""
    LowerPluginNodes()(model)
    matmul = next(n for n in model.graph if n.op_type == "MatMul")
    model.graph.outputs.append(matmul.inputs[1].producer().inputs[0])
    return _run(ir.to_proto(model), X)


@pytest.mark.parametrize("case", ["w4a16_int4_g128", "w4a16_uint4_zeros"])
def test_int4_sm90_and_v1_models_of_the_same_codes_decode_the_same(case):
    """Layout 3 (int4_sm90) and layout 1 (nibble) of the same codes lower to the same weight operand
    and output, zero tolerance."""
    models = {layout: _emit(case)[1] for layout in (1, 3)}
    packed = {layout: _relayout(m, layout) for layout, m in models.items()}
    assert not np.array_equal(packed[1], packed[3])  # the layouts really differ
    (y1, w1), (y3, w3) = (_decoded_and_output(models[layout]) for layout in (1, 3))
    np.testing.assert_array_equal(w3, w1)
    np.testing.assert_array_equal(y3, y1)


@pytest.mark.parametrize(
    "case, n, any_layout, sm90_layout",
    [
        ("w4a16_int4_g128", N, 2, 3),
        ("w4a16_uint4_zeros", N, 2, 3),  # UINT4 with zero points, group 64
        ("w4a16_int4_g128", 24, 1, 1),  # N=24: not whole 16-row tiles for either layout
        ("w4a16_int4", N, 2, 2),  # group 32: the sm_90a path declines it
        ("w4a16_fp4_channel", N, 1, 1),  # FP4: neither int4_v2 nor int4_sm90
        ("w6a16_e3m2", N, 2, 2),  # other plugins: unchanged
        ("w4a8_fp4_tensor", N, 1, 1),
    ],
)
def test_the_hopper_target_writes_int4_sm90_only_where_the_sm90_path_takes_it(
    case, n, any_layout, sm90_layout
):
    layouts = {}
    for target in ("any", "sm90"):
        node = _plugin_node(_emit(case, n=n, target=target)[1])
        assert check_plugin_node(node) == []
        layouts[target] = node.attributes["layout_version"].value
    assert layouts == {"any": any_layout, "sm90": sm90_layout}

    plugin, spec, _ = CASES[case]
    model = ir.from_proto(_model("MatMul", n))
    (layer,), _ = find_layers(model.graph)
    emitter = EmitPluginGemms(
        [(QuantizedLayer(layer, quantize_weight(layer.weight_nk(), spec)), plugin)], "sm90"
    )
    emitter(model)
    if plugin == "QcW4A16Gemm" and sm90_layout != 3:  # the reason is recorded for the report
        assert emitter.not_sm90[layer.name].startswith(f"layout_version {sm90_layout}: int4_sm90 layout: ")
    else:
        assert emitter.not_sm90 == {}


@pytest.mark.parametrize("case", ["w4a16_int4_g128", "w4a16_uint4_zeros"])
def test_hopper_and_default_models_lower_to_the_same_output(case):
    """The sm90 target's layout-3 model and the default layout-2 model of the same layer: the same
    decoded weight operand and output, zero tolerance."""
    hopper, default = _emit(case, target="sm90")[1], _emit(case)[1]
    assert _plugin_node(hopper).attributes["layout_version"].value == 3
    (y3, w3), (y2, w2) = _decoded_and_output(hopper), _decoded_and_output(default)
    np.testing.assert_array_equal(w3, w2)
    np.testing.assert_array_equal(y3, y2)


def test_unknown_target_arch_is_refused():
    from qcompile.errors import RecipeError
    from qcompile.recipe import Recipe

    with pytest.raises(RecipeError, match="unknown target arch 'sm100'; known: any, sm90"):
        Recipe(precision="w4a16", target_arch="sm100")
    assert Recipe(precision="w4a16", target_arch="sm90").to_dict()["target_arch"] == "sm90"
    assert Recipe().target_arch == "any"


@pytest.mark.parametrize("case", ["w6a16_e3m2", "w6a16_e2m3"])
def test_fp6_v2_and_v1_models_of_the_same_codes_decode_the_same(case):
    """The emitter writes layout_version 2 (fp6_v2) here; the same codes in the v1 fp6_4+2 layout (a
    model written before v2) lower to the same weight operand and output, zero tolerance."""
    _, model, _ = _emit(case)
    node = _plugin_node(model)
    assert node.attributes["layout_version"].value == 2
    fmt = node.attributes["format"].value
    lo4, hi2 = (v.const_value.numpy() for v in node.inputs[1:3])
    codes = unpack_fp6_v2(lo4, hi2, fmt)
    v1 = [a.view(np.int8) for a in pack_fp6(codes)]
    assert not np.array_equal(v1[0], lo4) and not np.array_equal(v1[1], hi2)  # the layouts really differ

    _, old, _ = _emit(case)
    old_node = _plugin_node(old)
    for value, array in zip(old_node.inputs[1:3], v1):
        value.const_value = ir.tensor(array, name=value.name)
    old_node.attributes["layout_version"] = ir.AttrInt64("layout_version", 1)
    assert check_plugin_node(old_node) == []
    _assert_same_lowering(model, old)


def test_shapes_fp6_v2_cannot_take_keep_layout_1():
    """N=24 (not whole 16-row tiles): the fp6_4+2 layout, still a valid node that lowers."""
    _, model, _ = _emit("w6a16_e2m3", n=24)
    node = _plugin_node(model)
    assert node.attributes["layout_version"].value == 1 and check_plugin_node(node) == []
    w_ref, _, _ = _reference(node, X)
    LowerPluginNodes()(model)
    matmul = next(n for n in model.graph if n.op_type == "MatMul")
    model.graph.outputs.append(matmul.inputs[1].producer().inputs[0])
    np.testing.assert_array_equal(_run(ir.to_proto(model), X)[1], w_ref)


def test_shapes_int4_v2_cannot_take_keep_layout_1():
    """N=8 (not a 16-row tile) or an FP4 weight: the nibble layout, still a valid node."""
    from qcompile.packing import int4_v2_problem

    assert int4_v2_problem(64, 128, "int4") == ""
    assert "N=8, K=128 must be multiples of 16 and 64" in int4_v2_problem(8, 128, "int4")
    assert "format fp4_e2m1" in int4_v2_problem(64, 128, "fp4_e2m1")
    _, model, _ = _emit("w4a16_fp4_channel")
    assert _plugin_node(model).attributes["layout_version"].value == 1


@pytest.mark.parametrize("case", ["w6a16_e3m2", "w4a8_fp4_tensor"])
def test_gemm_with_bias_gets_an_add(case):
    proto, model, _ = _emit(case, "Gemm")
    types = [n.op_type for n in model.graph]
    assert types == ["Cast", CASES[case][0], "Cast", "Add"]
    onnx.checker.check_model(ir.to_proto(model), full_check=True)
    LowerPluginNodes()(model)
    y = _run(ir.to_proto(model), X.reshape(6, K))[0]
    y_float = _run(proto, X.reshape(6, K))[0]
    sqnr = 10 * np.log10(np.sum(y_float.astype(np.float64) ** 2) / np.sum((y_float - y) ** 2.0))
    assert sqnr > SQNR_FLOOR_DB[CASES[case][0]], sqnr


def _fp8_operand(model: ir.Model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    LowerPluginNodes()(model)
    matmul = next(n for n in model.graph if n.op_type == "MatMul")
    model.graph.outputs.append(matmul.inputs[0])
    return _run(ir.to_proto(model), x)


def test_per_token_fp8_rounding_matches_ml_dtypes_on_awkward_rows():
    # a row spanning +-448 (ties at the top binades), tiny values, an all-zero row, a huge row
    x = np.zeros((2, 3, K), np.float32)
    x[0, 0] = np.linspace(-448, 448, K)
    x[0, 1, :3] = [1e-3, 3.0, -(2.0**-10)]
    x[1, 0] = RNG.standard_normal(K) * 1e3
    _, model, _ = _emit("w4a8_int4_token")
    _, x_ref, _ = _reference(_plugin_node(model), x)
    y, x8 = _fp8_operand(model, x)
    np.testing.assert_array_equal(x8, x_ref)
    assert np.all(y[0, 2] == 0)


def test_per_tensor_fp8_rounding_matches_ml_dtypes_on_ties_and_saturation():
    grid = FORMATS["fp8_e4m3fn"].grid().astype(np.float64)
    mids = ((grid[1:] + grid[:-1]) / 2)[::2]  # exact E4M3 midpoints (x / 0.5 is exact)
    x = np.zeros((2, 3, K), np.float32)
    x.reshape(-1)[: mids.size] = mids * 0.5
    x[1, 2, :4] = [300.0, -1e4, 2.0**-12, -(2.0**-11)]  # saturates at +-448 / rounds into subnormals
    _, model, _ = _emit("w4a8_fp4_tensor", act_scale=0.5)
    _, x_ref, _ = _reference(_plugin_node(model), x)
    _, x8 = _fp8_operand(model, x.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(x8, x_ref)
    assert x8[1, 2, 1] == -448.0


def test_plugin_shape_problems_have_reasons():
    assert plugin_shape_problem("QcW6A16Gemm", 64, 128, 128) == ""
    assert (
        plugin_shape_problem("QcW6A16Gemm", 64, 1000, 128)
        == "K=1000 is not a multiple of 64 (fp6_4+2 layout)"
    )
    assert (
        plugin_shape_problem("QcW4A16Gemm", 64, 96, 64)
        == "K=96 is not a multiple of the group size 64 (nibble layout)"
    )
    assert "N=60 is not a multiple of 8" in plugin_shape_problem("QcW4A8Gemm", 60, 128, 128)
    assert "group size 16" in plugin_shape_problem("QcW4A8Gemm", 64, 128, 16)


def test_refusals():
    model = ir.from_proto(_model("MatMul"))
    (layer,), _ = find_layers(model.graph)
    w = layer.weight_nk()
    unconstrained = quantize_weight(w, WeightSpec(FORMATS["fp4_e2m1"], "group", 32))
    with pytest.raises(LayoutError, match="scale_constraint"):
        EmitPluginGemms([(QuantizedLayer(layer, unconstrained, FORMATS["fp8_e4m3fn"], 0.1), "QcW4A8Gemm")])(
            model
        )
    grouped = quantize_weight(w, WeightSpec(FORMATS["fp6_e3m2"], "group", 32))
    with pytest.raises(LayoutError, match="one scale per output channel"):
        EmitPluginGemms([(QuantizedLayer(layer, grouped), "QcW6A16Gemm")])(model)
    conv = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
        "c",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 4, 4])],
        [numpy_helper.from_array(np.ones((64, 64, 1, 1), np.float32), "w")],
    )
    cmodel = ir.from_proto(
        helper.make_model(conv, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    )
    (clayer,), _ = find_layers(cmodel.graph)
    cw = quantize_weight(clayer.weight_nk(), WeightSpec(FORMATS["fp6_e3m2"], "channel"))
    with pytest.raises(LayoutError, match="Conv has no plugin GEMM form"):
        EmitPluginGemms([(QuantizedLayer(clayer, cw), "QcW6A16Gemm")])(cmodel)

"""TensorRT preflight: one good and one deliberately broken tiny graph per rule."""

import ml_dtypes
import numpy as np
import onnx_ir as ir
import pytest

from qcompile import plugin_specs
from qcompile.passes.trt_preflight import check_tensorrt_rules

K, N = 64, 8
F32 = ir.DataType.FLOAT


def const(name, array):
    return ir.Value(name=name, const_value=ir.tensor(np.asarray(array), name=name))


def act(name="x", shape=(2, K), dtype=F32):
    return ir.Value(name=name, type=ir.TensorType(dtype), shape=ir.Shape(list(shape)))


def model(nodes, inputs, outputs, opset=21):
    initializers = [v for n in nodes for v in n.inputs if v is not None and v.const_value is not None]
    graph = ir.Graph(
        inputs,
        outputs,
        nodes=nodes,
        initializers=list({v.name: v for v in initializers}.values()),
        opset_imports={"": opset, "qcompile": 1},
    )
    return ir.Model(graph, ir_version=10)


def act_qdq(x, name="act", scale=np.float32(0.1), zero_point=np.int8(0), q_attrs=None):
    """x -> Q -> DQ (activation, per tensor)."""
    inputs = [x, const(f"{name}_s", scale)] + (
        [const(f"{name}_zp", zero_point)] if zero_point is not None else []
    )
    q = ir.node("QuantizeLinear", inputs, attributes=q_attrs or {}, name=f"{name}_q")
    dq = ir.node("DequantizeLinear", [q.outputs[0], *inputs[1:]], name=f"{name}_dq")
    return [q, dq], dq.outputs[0]


def weight_dq(codes, scale, name="w", zero_point=None, **attrs):
    inputs = [const(f"{name}_codes", codes), const(f"{name}_s", scale)]
    if zero_point is not None:
        inputs.append(const(f"{name}_zp", zero_point))
    dq = ir.node("DequantizeLinear", inputs, attributes=attrs, name=f"{name}_dq")
    return [dq], dq.outputs[0]


def linear(weight_nodes, weight, opset=21, **act_kwargs):
    x = act()
    act_nodes, xq = act_qdq(x, **act_kwargs)
    mm = ir.node("MatMul", [xq, weight], name="mm")
    return model(act_nodes + weight_nodes + [mm], [x], [mm.outputs[0]], opset)


def int8_weight(**kw):
    return weight_dq(np.ones((K, N), np.int8), np.full(N, 0.01, np.float32), axis=1, **kw)


def int4_weight(k=K, n=N, block=32, scale_shape=None, axis=0):
    codes = np.ones((k, n), ml_dtypes.int4)
    scale = np.full(scale_shape or (k // block, n), 0.01, np.float32)
    return weight_dq(codes, scale, axis=axis, block_size=block)


def rules(m):
    return sorted({v.rule for v in check_tensorrt_rules(m)})


GOOD = {
    "int8 per-channel weight, per-tensor activation": lambda: linear(*int8_weight()),
    "fp8 activation and weight": lambda: linear(
        *weight_dq(np.ones((K, N), ml_dtypes.float8_e4m3fn), np.full(N, 0.5, np.float32), axis=1),
        zero_point=np.zeros((), ml_dtypes.float8_e4m3fn),
    ),
    "int4 block weight": lambda: linear(*int4_weight()),
    "int4 block weight, zero points of zeros": lambda: linear(
        *weight_dq(
            np.ones((K, N), ml_dtypes.int4),
            np.full((2, N), 0.1, np.float32),
            axis=0,
            block_size=32,
            zero_point=np.zeros((2, N), ml_dtypes.int4),
        )
    ),
    "fp4 weight at opset 23": lambda: linear(
        *weight_dq(
            np.ones((K, N), ml_dtypes.float4_e2m1fn), np.full((4, N), 0.5, np.float32), axis=0, block_size=16
        ),
        opset=23,
    ),
}


@pytest.mark.parametrize("make", GOOD.values(), ids=GOOD.keys())
def test_good_graphs_pass(make):
    assert check_tensorrt_rules(make()) == []


BROKEN = {
    "opset 19": (lambda: linear(*int8_weight(), opset=19), ["opset"]),
    "fp4 below opset 23": (
        lambda: linear(
            *weight_dq(
                np.ones((K, N), ml_dtypes.float4_e2m1fn),
                np.full((4, N), 0.5, np.float32),
                axis=0,
                block_size=16,
            )
        ),
        ["opset"],
    ),
    "uint8 activation (Q default type)": (lambda: linear(*int8_weight(), zero_point=None), ["qdq-type"]),
    "fp8 e5m2 weight": (
        lambda: linear(
            *weight_dq(np.ones((K, N), ml_dtypes.float8_e5m2), np.full(N, 0.5, np.float32), axis=1)
        ),
        ["qdq-type"],
    ),
    "int4 activation": (
        lambda: linear(*int8_weight(), zero_point=np.zeros((), ml_dtypes.int4)),
        ["int4-weight-only"],
    ),
    "asymmetric weight": (lambda: linear(*int8_weight(zero_point=np.full(N, 3, np.int8))), ["symmetric"]),
    "asymmetric activation": (lambda: linear(*int8_weight(), zero_point=np.int8(-2)), ["symmetric"]),
    "negative scale": (lambda: linear(*int8_weight(), scale=np.float32(-0.1)), ["scale"]),
    "nan scale": (
        lambda: linear(
            *weight_dq(np.ones((K, N), np.int8), np.array([np.nan] + [0.1] * (N - 1), np.float32), axis=1)
        ),
        ["scale"],
    ),
    "per-channel activation": (
        lambda: linear(*int8_weight(), scale=np.full(K, 0.1, np.float32), zero_point=np.zeros(K, np.int8)),
        ["activation-per-tensor"],
    ),
    "per-channel scale on the wrong axis": (
        lambda: linear(*weight_dq(np.ones((K, N), np.int8), np.full(N, 0.1, np.float32), axis=0)),
        ["per-channel"],
    ),
    "block size not dividing K": (lambda: linear(*int4_weight(block=24, scale_shape=(3, N))), ["block"]),
    "two blocked axes": (lambda: linear(*int4_weight(scale_shape=(2, N // 2))), ["block"]),
    "odd last dim of int4": (lambda: linear(*int4_weight(n=7)), ["even-last-dim"]),
}


@pytest.mark.parametrize("make, expected", BROKEN.values(), ids=BROKEN.keys())
def test_broken_graphs_are_rejected_with_their_rule(make, expected):
    m = make()
    got = rules(m)
    assert got == expected, [str(v) for v in check_tensorrt_rules(m)]


def test_int4_block_on_a_3d_weight_is_rejected():
    codes = np.ones((2, K, N), ml_dtypes.int4)
    nodes, w = weight_dq(codes, np.full((2, 2, N), 0.1, np.float32), axis=1, block_size=32)
    assert rules(linear(nodes, w)) == ["block"]


def test_activation_scale_from_a_graph_input_is_rejected():
    x, s = act(), act("s", shape=(), dtype=F32)
    q = ir.node("QuantizeLinear", [x, s, const("zp", np.int8(0))], name="q")
    dq = ir.node("DequantizeLinear", [q.outputs[0], s, const("zp2", np.int8(0))], name="dq")
    w_nodes, w = int8_weight()
    mm = ir.node("MatMul", [dq.outputs[0], w], name="mm")
    violations = check_tensorrt_rules(model([q, dq, *w_nodes, mm], [x, s], [mm.outputs[0]]))
    assert {(v.node, v.rule) for v in violations} == {("q", "scale"), ("dq", "scale")}


def _two_layers(between):
    """x -> [Q/DQ] -> MatMul -> Q -> DQ -> between... -> graph output."""
    x = act()
    a_nodes, xq = act_qdq(x)
    w1_nodes, w1 = weight_dq(np.ones((K, K), np.int8), np.full(K, 0.01, np.float32), name="w1", axis=1)
    mm1 = ir.node("MatMul", [xq, w1], name="mm1")
    h_nodes, hq = act_qdq(mm1.outputs[0], name="h")
    tail, out = between(hq)
    return model(a_nodes + w1_nodes + [mm1] + h_nodes + tail, [x], [out])


def test_qdq_on_a_weighted_output_must_feed_a_quantized_op():
    def into_matmul_through_reshape(hq):
        shape = ir.node("Reshape", [hq, const("shape", np.array([2, K], np.int64))], name="reshape")
        w_nodes, w = weight_dq(np.ones((K, N), np.int8), np.full(N, 0.01, np.float32), name="w2", axis=1)
        mm2 = ir.node("MatMul", [shape.outputs[0], w], name="mm2")
        return [shape, *w_nodes, mm2], mm2.outputs[0]

    def into_softmax(hq):
        sm = ir.node("Softmax", [hq], name="softmax")
        return [sm], sm.outputs[0]

    assert check_tensorrt_rules(_two_layers(into_matmul_through_reshape)) == []
    violations = check_tensorrt_rules(_two_layers(into_softmax))
    assert [(v.node, v.rule) for v in violations] == [("h_q", "qdq-after-weighted-op")]


def _plugin_model(n=N, **attr_overrides):
    x = act(dtype=ir.DataType.FLOAT16)
    attrs = plugin_specs.node_attributes("QcW6A16Gemm", N=n, K=K)
    attrs.update(attr_overrides)
    node = ir.node(
        "QcW6A16Gemm",
        [
            x,
            const("lo4", np.zeros((n, K // 2), np.int8)),
            const("hi2", np.zeros((n, K // 4), np.int8)),
            const("s", np.ones(n, np.float16)),
        ],
        attributes=attrs,
        domain="qcompile",
        name="fp6",
    )
    return model([node], [x], [node.outputs[0]])


def test_plugin_nodes_are_checked_against_their_spec():
    assert check_tensorrt_rules(_plugin_model()) == []
    assert check_tensorrt_rules(_plugin_model(n=16, layout_version=2)) == []  # fp6_v2 (N a multiple of 16)
    violations = check_tensorrt_rules(_plugin_model(layout_version=7))
    assert [(v.node, v.rule) for v in violations] == [("fp6", "plugin")]
    assert "'layout_version' is 7, expected one of [1, 2]" in violations[0].message
    violations = check_tensorrt_rules(_plugin_model(layout_version=2))  # N=8: not a 16-row tile
    assert [(v.node, v.rule) for v in violations] == [("fp6", "plugin")]
    assert "N=8 is not a multiple of 16 (layout_version 2)" in violations[0].message


def _w4a16_model(n=16, k=128, **attr_overrides):
    x = act(shape=(2, k), dtype=ir.DataType.FLOAT16)
    g = attr_overrides.get("group_size", 64)
    attrs = plugin_specs.node_attributes("QcW4A16Gemm", N=n, K=k, group_size=g)
    attrs.update(attr_overrides)
    node = ir.node(
        "QcW4A16Gemm",
        [x, const("w", np.zeros((n, k // 2), np.int8)), const("s", np.ones((n, k // g), np.float16))],
        attributes=attrs,
        domain="qcompile",
        name="w4",
    )
    return model([node], [x], [node.outputs[0]])


def test_int4_sm90_plugin_nodes_pass_where_the_sm90_path_takes_them():
    assert check_tensorrt_rules(_w4a16_model(layout_version=3)) == []
    assert check_tensorrt_rules(_w4a16_model(layout_version=3, group_size=128, format="uint4")) == []
    for overrides, message in (
        ({"n": 8}, "N=8 is not a multiple of 16 (layout_version 3)"),
        ({"format": "fp4_e2m1"}, "format 'fp4_e2m1' has no layout_version 3"),
        ({"group_size": 32}, "group_size 32 has no layout_version 3"),
    ):
        violations = check_tensorrt_rules(_w4a16_model(layout_version=3, **overrides))
        assert [(v.node, v.rule) for v in violations] == [("w4", "plugin")], overrides
        assert message in violations[0].message, violations[0].message

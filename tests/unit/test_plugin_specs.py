"""plugin_specs: attributes of plugin nodes and the checker that compares a node with its spec."""

import json
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest

from qcompile import plugin_specs
from qcompile.errors import LayoutError, RecipeError

SPEC_JSON = Path(__file__).resolve().parents[2] / "compiler" / "plugin_specs.json"


def test_loaded_specs_match_the_json_file():
    data = json.loads(SPEC_JSON.read_text())
    specs = plugin_specs.load_specs()
    assert specs.namespace == data["namespace"] == "qcompile"
    assert set(specs.plugins) == set(data["plugins"])
    for op_type, entry in data["plugins"].items():
        spec = specs.get(op_type)
        assert set(spec.attributes) == set(entry["attributes"])
        assert [t.name for t in spec.inputs] == [i["name"] for i in entry["inputs"]]


def test_node_attributes_fills_defaults_and_parser_attributes():
    attrs = plugin_specs.node_attributes("QcW4A16Gemm", N=16, K=256)
    assert attrs == {
        "N": 16,
        "K": 256,
        "group_size": 128,
        "format": "int4",
        "has_zeros": 0,
        "layout_version": 1,
        "plugin_version": "1",
        "plugin_namespace": "qcompile",
    }
    attrs = plugin_specs.node_attributes("QcW6A16Gemm", N=8, K=64, format="fp6_e2m3")
    assert attrs["format"] == "fp6_e2m3"


@pytest.mark.parametrize(
    "values, error, word",
    [
        ({"N": 16}, RecipeError, "'K'"),  # required attribute missing
        ({"N": 16, "K": 256, "group_size": 48}, RecipeError, "'group_size'"),
        ({"N": 16, "K": 256, "format": "nf4"}, RecipeError, "'format'"),
        ({"N": 16, "K": 256, "format": 4}, RecipeError, "'format'"),
        ({"N": "16", "K": 256}, RecipeError, "'N'"),
        ({"N": True, "K": 256}, RecipeError, "'N'"),
        ({"N": 16, "K": 256, "bits": 4}, RecipeError, "bits"),
        ({"N": 16, "K": 256, "layout_version": 4}, RecipeError, "'layout_version' is 4"),
        ({"N": 8, "K": 256, "layout_version": 3}, LayoutError, r"N=8 .* 16 \(layout_version 3\)"),
        ({"N": 16, "K": 256, "format": "fp4_e2m1", "layout_version": 3}, LayoutError, "no layout_version 3"),
        ({"N": 16, "K": 256, "group_size": 32, "layout_version": 3}, LayoutError, "group_size 32 has no"),
        ({"N": 8, "K": 256, "layout_version": 2}, LayoutError, r"N=8 .* 16 \(layout_version 2\)"),
        ({"N": 16, "K": 96, "group_size": 32, "layout_version": 2}, LayoutError, "K=96 .* 64"),
        ({"N": 16, "K": 256, "format": "fp4_e2m1", "layout_version": 2}, LayoutError, "no layout_version"),
        ({"N": 16, "K": 192}, LayoutError, "K=192"),  # K not a multiple of group_size 128
        ({"N": 12, "K": 256}, LayoutError, "N=12"),
    ],
)
def test_node_attributes_rejects_invalid_values(values, error, word):
    with pytest.raises(error, match=word):
        plugin_specs.node_attributes("QcW4A16Gemm", **values)


def test_int4_sm90_layout_is_listed():
    """Layout 3 (int4_sm90): INT4 / UINT4, N and K multiples of 16, group 64 or 128."""
    for fmt, g in (("int4", 64), ("uint4", 128)):
        attrs = plugin_specs.node_attributes(
            "QcW4A16Gemm", N=16, K=128, group_size=g, format=fmt, layout_version=3
        )
        assert attrs["layout_version"] == 3


def test_unknown_plugin_names_the_known_ones():
    with pytest.raises(RecipeError, match="QcW6A16Gemm"):
        plugin_specs.node_attributes("QcW3Gemm", N=8, K=64)


def test_resolve_dim():
    attrs = {"K": 256, "group_size": 64, "N": 8}
    assert plugin_specs.resolve_dim("K/group_size", attrs) == 4
    assert plugin_specs.resolve_dim("K/2", attrs) == 128
    assert plugin_specs.resolve_dim(1, attrs) == 1
    assert plugin_specs.resolve_dim("K/3", attrs) is None
    assert plugin_specs.resolve_dim("M", attrs) is None


def _const(name, array):
    return ir.Value(name=name, const_value=ir.tensor(array, name=name))


def w4a16_node(n=16, k=256, g=64, x_dtype=ir.DataType.FLOAT16, zeros=False, **overrides):
    x = ir.Value(name="x", type=ir.TensorType(x_dtype), shape=ir.Shape(["batch", "seq", k]))
    inputs = [
        x,
        _const("w", np.zeros((n, k // 2), np.int8)),
        _const("scales", np.ones((n, k // g), np.float16)),
    ]
    if zeros:
        inputs.append(_const("zeros", np.full((n, k // g), 8, np.int8)))
    attrs = plugin_specs.node_attributes(
        "QcW4A16Gemm", N=n, K=k, group_size=g, format="uint4" if zeros else "int4", has_zeros=int(zeros)
    )
    attrs.update(overrides)
    node = ir.node("QcW4A16Gemm", inputs, attributes=attrs, domain="qcompile", num_outputs=1)
    node.outputs[0].dtype = ir.DataType.FLOAT16
    node.outputs[0].shape = ir.Shape(["batch", "seq", n])
    return node


def test_valid_nodes_have_no_problems():
    assert plugin_specs.check_plugin_node(w4a16_node()) == []
    assert plugin_specs.check_plugin_node(w4a16_node(zeros=True)) == []
    assert plugin_specs.check_plugin_node(w4a16_node(layout_version=2)) == []  # int4_v2
    assert plugin_specs.check_plugin_node(w4a16_node(layout_version=3)) == []  # int4_sm90


def w6a16_node(n=8, k=128, **overrides):
    x = ir.Value(name="x", type=ir.TensorType(ir.DataType.FLOAT16), shape=ir.Shape([4, k]))
    inputs = [
        x,
        _const("lo4", np.zeros((n, k // 2), np.int8)),
        _const("hi2", np.zeros((n, k // 4), np.int8)),
        _const("s", np.ones(n, np.float16)),
    ]
    attrs = plugin_specs.node_attributes("QcW6A16Gemm", N=n, K=k)
    attrs.update(overrides)
    return ir.node("QcW6A16Gemm", inputs, attributes=attrs, domain="qcompile")


def test_valid_w6a16_and_w4a8_nodes():
    n, k = 8, 128
    x = ir.Value(name="x", type=ir.TensorType(ir.DataType.FLOAT16), shape=ir.Shape([4, k]))
    assert plugin_specs.check_plugin_node(w6a16_node(n, k)) == []
    fp6_v2 = w6a16_node(16, k, layout_version=2, format="fp6_e2m3")
    assert plugin_specs.check_plugin_node(fp6_v2) == []
    w4a8 = ir.node(
        "QcW4A8Gemm",
        [
            x,
            _const("w", np.zeros((n, k // 2), np.int8)),
            _const("e", np.zeros((n, k // 32), np.int8)),
            _const("cs", np.ones(n, np.float32)),
            _const("a", np.ones(1, np.float32)),
        ],
        attributes=plugin_specs.node_attributes("QcW4A8Gemm", N=n, K=k, group_size=32),
        domain="qcompile",
    )
    assert plugin_specs.check_plugin_node(w4a8) == []


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: w4a16_node(x_dtype=ir.DataType.FLOAT), "input 'x' is FLOAT, expected FLOAT16"),
        (lambda: w4a16_node(layout_version=4), "attribute 'layout_version' is 4, expected one of [1, 2, 3]"),
        (lambda: w4a16_node(n=8, layout_version=3), "N=8 is not a multiple of 16 (layout_version 3)"),
        (lambda: w4a16_node(g=32, layout_version=3), "group_size 32 has no layout_version 3"),
        (lambda: w4a16_node(n=8, layout_version=2), "N=8 is not a multiple of 16 (layout_version 2)"),
        (lambda: w6a16_node(layout_version=3), "attribute 'layout_version' is 3, expected one of [1, 2]"),
        (lambda: w6a16_node(n=8, layout_version=2), "N=8 is not a multiple of 16 (layout_version 2)"),
        (lambda: w4a16_node(group_size=96), "attribute 'group_size' is 96"),
        (lambda: w4a16_node(K=288), "K=288 is not a positive multiple of 64"),
        (lambda: w4a16_node(N=32), "input 'w' dim 0 is 16, expected N=32"),
        (lambda: w4a16_node(has_zeros=1), "has_zeros=1 but the zeros input is absent"),
        (lambda: w4a16_node(zeros=True, has_zeros=0), "has a zeros input but has_zeros=0"),
        (lambda: w4a16_node(plugin_namespace="trt"), "attribute 'plugin_namespace' is 'trt'"),
        (lambda: w4a16_node(alpha=1.0), "unknown attribute(s) ['alpha']"),
    ],
)
def test_broken_nodes_are_reported(make, reason):
    problems = plugin_specs.check_plugin_node(make())
    assert any(reason in p for p in problems), problems


def test_packed_bytes_typed_uint8_are_flagged_with_the_parser_reason():
    node = w4a16_node()
    node.replace_input_with(1, _const("w_u8", np.zeros((16, 128), np.uint8)))
    assert plugin_specs.check_plugin_node(node) == [
        "input 'w' is UINT8, expected INT8 (TensorRT 10.0/10.1's parser widens UINT8 to INT32)"
    ]


def test_missing_attribute_and_wrong_input_count_and_non_constant_weight():
    node = w4a16_node()
    del node.attributes["N"]
    assert "attribute 'N' is missing" in plugin_specs.check_plugin_node(node)
    node = w4a16_node()
    node.replace_input_with(
        1, ir.Value(name="w_dyn", type=ir.TensorType(ir.DataType.INT8), shape=ir.Shape([16, 128]))
    )
    assert "input 'w' must be a constant (initializer)" in plugin_specs.check_plugin_node(node)
    x = ir.Value(name="x", type=ir.TensorType(ir.DataType.FLOAT16), shape=ir.Shape([2, 256]))
    short = ir.node(
        "QcW4A16Gemm",
        [x],
        attributes=plugin_specs.node_attributes("QcW4A16Gemm", N=16, K=256),
        domain="qcompile",
    )
    assert "has 1 inputs, expected 3..4" in plugin_specs.check_plugin_node(short)


def test_wrong_domain_and_unknown_op():
    node = w4a16_node()
    node.domain = ""
    assert "domain is '', expected 'qcompile'" in plugin_specs.check_plugin_node(node)
    other = ir.node("MatMul", [w4a16_node().inputs[0], w4a16_node().inputs[1]])
    assert plugin_specs.check_plugin_node(other) == ["'MatMul' is not a qcompile plugin"]


def test_wrong_output_dims():
    node = w4a16_node()
    node.outputs[0].shape = ir.Shape(["batch", "seq", 17])
    assert "output 'y' dim 0 is 17, expected N=16" in plugin_specs.check_plugin_node(node)

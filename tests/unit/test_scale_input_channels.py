"""ScaleInputChannels: the model output is unchanged; 1/s folded into LayerNorm when safe, else a Mul.

Tolerance: rel 1e-5 / abs 1e-5 on outputs of magnitude ~1-10 for real-valued s (each weight
and gamma/beta gets one extra float32 rounding, and the LayerNorm/MatMul sums over K = 64
reorder nothing, so the difference is a few float32 ulps); powers of two are checked exactly
where no normalization arithmetic is involved.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from qcompile.errors import LayoutError
from qcompile.passes.canonicalize import find_layers
from qcompile.passes.scale_input_channels import ScaleInputChannels

K, N = 64, 16


def _model(consumers: str, norm: bool = True) -> onnx.ModelProto:
    """x -> [LayerNorm] -> a; a -> MatMul(w1) -> y1, a -> Gemm(w2, transB=1) -> y2, maybe a -> Relu -> y3."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((K, N)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal((N, K)).astype(np.float32), "w2"),
        numpy_helper.from_array((1 + rng.random(K)).astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.standard_normal(K).astype(np.float32), "beta"),
    ]
    nodes = (
        [helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["a"], name="ln", axis=-1)]
        if norm
        else [helper.make_node("Identity", ["x"], ["a"], name="id")]
    )
    nodes += [
        helper.make_node("MatMul", ["a", "w1"], ["y1"], name="fc1"),
        helper.make_node("Gemm", ["a", "w2"], ["y2"], name="fc2", transB=1),
    ]
    outputs = [
        helper.make_tensor_value_info("y1", TensorProto.FLOAT, [4, N]),
        helper.make_tensor_value_info("y2", TensorProto.FLOAT, [4, N]),
    ]
    if consumers == "extra":
        nodes.append(helper.make_node("Relu", ["a"], ["y3"], name="other"))
        outputs.append(helper.make_tensor_value_info("y3", TensorProto.FLOAT, [4, K]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, K])], outputs, inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def _run(proto: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})


def _apply(proto, s, pick=("fc1", "fc2")):
    model = ir.from_proto(proto)
    layers, _ = find_layers(model.graph)
    chosen = [layer for layer in layers if layer.name in pick]
    act = chosen[0].activation
    scale_pass = ScaleInputChannels([(act, chosen, s)])
    result = scale_pass(model)
    assert result.modified
    return ir.to_proto(result.model), scale_pass.applied


X = np.random.default_rng(1).standard_normal((4, K)).astype(np.float32) * 3
S_REAL = np.random.default_rng(2).uniform(0.2, 5.0, K).astype(np.float32)
S_POW2 = np.exp2(np.random.default_rng(3).integers(-3, 4, K)).astype(np.float32)


@pytest.mark.parametrize("s", [S_REAL, S_POW2], ids=["real", "pow2"])
def test_folds_into_layernorm_when_it_feeds_only_the_layer(s):
    proto = _model("only")
    new, applied = _apply(proto, s)
    assert [(a.how, a.node, a.layers) for a in applied] == [("folded", "ln", ("fc1", "fc2"))]
    assert not any(n.op_type == "Mul" for n in new.graph.node)
    gamma = {i.name: numpy_helper.to_array(i) for i in new.graph.initializer}["gamma"]
    np.testing.assert_allclose(
        gamma * s, {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}["gamma"], rtol=1e-6
    )
    for got, want in zip(_run(new, X), _run(proto, X)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_mul_when_the_activation_has_other_consumers():
    proto = _model("extra")
    new, applied = _apply(proto, S_REAL)
    assert [a.how for a in applied] == ["mul"]
    muls = [n for n in new.graph.node if n.op_type == "Mul"]
    assert len(muls) == 1 and muls[0].input[0] == "a"
    fc1, fc2, relu = (next(n for n in new.graph.node if n.name == name) for name in ("fc1", "fc2", "other"))
    assert fc1.input[0] == fc2.input[0] == muls[0].output[0]
    assert relu.input[0] == "a"  # other consumers keep the original tensor
    for got, want in zip(_run(new, X), _run(proto, X)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_mul_when_not_every_consumer_is_scaled():
    proto = _model("only")
    new, applied = _apply(proto, S_REAL, pick=("fc1",))
    assert [a.how for a in applied] == ["mul"]
    for got, want in zip(_run(new, X), _run(proto, X)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_mul_without_a_norm_producer_and_gemm_trans_b_columns():
    proto = _model("only", norm=False)
    new, applied = _apply(proto, S_POW2, pick=("fc2",))
    assert [a.how for a in applied] == ["mul"]
    w2 = {i.name: numpy_helper.to_array(i) for i in new.graph.initializer}["w2"]
    w2_old = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}["w2"]
    np.testing.assert_array_equal(w2, w2_old * S_POW2[None, :])  # [N, K]: columns scaled
    got, want = _run(new, X), _run(proto, X)
    np.testing.assert_array_equal(got[1], want[1])  # powers of two, no norm in between: exact
    np.testing.assert_array_equal(got[0], want[0])  # fc1 untouched


def test_layer_behind_a_transpose_chain_gets_the_right_axis():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((N, K)).astype(np.float32)  # stored [N, K], Transposed to [K, N] for MatMul
    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["w"], ["wt"], name="t", perm=[1, 0]),
            helper.make_node("MatMul", ["x", "wt"], ["y"], name="fc"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, N])],
        [numpy_helper.from_array(w, "w")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    new, _ = _apply(proto, S_POW2, pick=("fc",))
    np.testing.assert_array_equal(_run(new, X)[0], _run(proto, X)[0])


def test_refusals():
    model = ir.from_proto(_model("only"))
    layers, _ = find_layers(model.graph)
    fc1 = next(layer for layer in layers if layer.name == "fc1")
    with pytest.raises(LayoutError, match="K=64"):
        ScaleInputChannels([(fc1.activation, [fc1], np.ones(K + 1, np.float32))])(model)
    with pytest.raises(LayoutError, match="positive"):
        ScaleInputChannels([(fc1.activation, [fc1], -np.ones(K, np.float32))])(model)
    with pytest.raises(LayoutError, match="scaled twice"):
        ScaleInputChannels([(fc1.activation, [fc1], np.ones(K, np.float32))] * 2)(model)

"""Documented graphs that used to fail: a weight behind Cast(float16 -> float32), GEMMs wired directly
together under plugin presets, Gemm alpha != 1, inputs whose dimensions are all symbolic."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import qcompile
from qcompile.recipe import Recipe

RNG = np.random.default_rng(0)
W = (RNG.standard_normal((64, 64)) * 0.05).astype(np.float32)


def _model(nodes, inits, input_dims=(4, 64)) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_dims))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [input_dims[0], 64])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def _compile(tmp_path, model, recipe, calib=None):
    onnx.save(model, tmp_path / "m.onnx")
    artifacts = qcompile.compile(tmp_path / "m.onnx", recipe, calib, output=tmp_path / "q.onnx")
    onnx.checker.check_model(str(tmp_path / "q.onnx"), full_check=True)
    return artifacts


@pytest.mark.parametrize("preset, calib", [("w8a8", "random"), ("w4a16", None), ("fp8", "random")])
def test_weight_behind_a_float16_cast(tmp_path, preset, calib):
    model = _model(
        [
            helper.make_node("Cast", ["w16"], ["w"], to=TensorProto.FLOAT, name="cast"),
            helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
        ],
        [numpy_helper.from_array(W.astype(np.float16), "w16")],
    )
    artifacts = _compile(tmp_path, model, preset, calib)
    scales = [t for t in onnx.load(str(tmp_path / "q.onnx")).graph.initializer if t.name.endswith("_scale")]
    assert scales and all(t.data_type == TensorProto.FLOAT for t in scales)
    assert artifacts.report.accuracy[0].cosine_mean > 0.99  # 4- or 8-bit weights of a 64x64 GEMM


@pytest.mark.parametrize("op", ["MatMul", "Gemm"])
@pytest.mark.parametrize("preset", ["w4a16", "w4a8"])
def test_two_gemms_wired_together_as_plugins(tmp_path, op, preset):
    attrs = {"transB": 1} if op == "Gemm" else {}
    model = _model(
        [
            helper.make_node(op, ["x", "w1"], ["h"], name="first", **attrs),
            helper.make_node(op, ["h", "w2"], ["y"], name="second", **attrs),
        ],
        [numpy_helper.from_array(W, "w1"), numpy_helper.from_array(W.T.copy(), "w2")],
    )
    artifacts = _compile(
        tmp_path, model, Recipe(preset, int4_plugin=True), "random" if preset == "w4a8" else None
    )
    assert all(layer.quantized for layer in artifacts.report.layers)
    assert artifacts.report.accuracy[0].cosine_mean > 0.98  # two chained 4-bit GEMMs


def test_gemm_alpha_under_a_plugin_preset_keeps_that_layer(tmp_path):
    model = _model(
        [
            helper.make_node("Gemm", ["x", "w1"], ["h"], name="scaled", transB=1, alpha=2.0),
            helper.make_node("Gemm", ["h", "w2"], ["y"], name="plain", transB=1),
        ],
        [numpy_helper.from_array(W, "w1"), numpy_helper.from_array(W.T.copy(), "w2")],
    )
    artifacts = _compile(tmp_path, model, Recipe("w4a16", int4_plugin=True))
    layers = {layer.name: layer for layer in artifacts.report.layers}
    assert layers["plain"].quantized
    assert layers["scaled"].reason == "Gemm with alpha=2 has no plugin form"


@pytest.mark.parametrize("dims", [("n", "k"), ("batch", 64)])
def test_symbolic_input_dimensions_with_a_weight_only_preset(tmp_path, dims):
    """K is taken from the GEMM the input feeds, so the random verification inputs are valid."""
    model = _model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        [numpy_helper.from_array(W, "w")],
        input_dims=dims,
    )
    artifacts = _compile(tmp_path, model, "w4a16")
    assert artifacts.report.accuracy and artifacts.report.accuracy[0].cosine_mean > 0.99


def test_unguessable_input_shape_skips_verification_with_a_note(tmp_path):
    """x feeds a Reshape to [-1, 64] first: a guessed [1, 16] input cannot be reshaped, the original fails."""
    model = _model(
        [
            helper.make_node("Reshape", ["x", "shape"], ["x2"], name="flat"),
            helper.make_node("MatMul", ["x2", "w"], ["y"], name="mm"),
        ],
        [numpy_helper.from_array(W, "w"), numpy_helper.from_array(np.array([-1, 64], np.int64), "shape")],
        input_dims=("n", "k"),
    )
    artifacts = _compile(tmp_path, model, "w4a16")
    assert not artifacts.report.accuracy
    assert any(note.startswith("verification skipped") for note in artifacts.report.notes), (
        artifacts.report.notes
    )


def test_tiny_weights_under_float16_scales_are_reported(tmp_path):
    """Rows of a weight 10^6 times smaller than the rest: their float16 scales underflow, and the
    report says so for that layer instead of silently decoding them as 0."""
    tiny = W.copy()
    tiny[:, :8] *= 1e-6  # output channels 0..7 (MatMul weight is [K, N])
    model = _model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [numpy_helper.from_array(tiny, "w")]
    )
    artifacts = _compile(tmp_path, model, Recipe("w4a16", int4_plugin=True))
    note = artifacts.report.layers[0].details["float16_scales"]
    assert note.startswith("8 of 64 scale groups below float16's normal range"), note


def _endless_loop_after_matmul() -> onnx.ModelProto:
    """MatMul, then a Loop of 2^40 cheap steps: fine to quantize, endless to run."""
    body = helper.make_graph(
        [
            helper.make_node("Add", ["h_in", "one"], ["h_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("h_in", TensorProto.FLOAT, [4, 64]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [4, 64]),
        ],
        [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])],
    )
    return _model(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
            helper.make_node("Loop", ["trips", "go", "h"], ["y"], body=body, name="loop"),
        ],
        [
            numpy_helper.from_array(W, "w"),
            helper.make_tensor("trips", TensorProto.INT64, [], [1 << 40]),
            helper.make_tensor("go", TensorProto.BOOL, [], [True]),
        ],
    )


def test_verification_stops_at_its_time_budget(tmp_path):
    import time

    onnx.save(_endless_loop_after_matmul(), tmp_path / "m.onnx")
    t0 = time.perf_counter()
    artifacts = qcompile.compile(tmp_path / "m.onnx", "w8a16", output=tmp_path / "q.onnx", verify_timeout=1)
    # 1 s budget plus loading and quantizing a 64x64 model; without the budget this runs for hours
    assert time.perf_counter() - t0 < 60
    assert artifacts.report.accuracy == []
    assert any("verification stopped after 1 s" in n for n in artifacts.report.notes)
    onnx.checker.check_model(str(tmp_path / "q.onnx"), full_check=True)


@pytest.mark.parametrize("bad", ["10", -1, True, float("nan")])
def test_verify_timeout_must_be_seconds(tmp_path, bad):
    onnx.save(_endless_loop_after_matmul(), tmp_path / "m.onnx")
    with pytest.raises(qcompile.errors.RecipeError, match="verify_timeout"):
        qcompile.compile(tmp_path / "m.onnx", "w8a16", output=tmp_path / "q.onnx", verify_timeout=bad)
    assert not (tmp_path / "q.onnx").exists()

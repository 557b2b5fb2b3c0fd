"""Float offsets (`--offsets`): w = s * decode(q) + m per scale group, m added by a side branch."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

import qcompile
import tiny_models
from qcompile.cli import main
from qcompile.errors import RecipeError
from qcompile.formats import get_format
from qcompile.ort_runner import session_options
from qcompile.passes.trt_preflight import check_tensorrt_rules
from qcompile.quantizer import WeightSpec, quantize_weight, sqnr_db
from qcompile.recipe import Recipe


def _q4_1_blocks(n=16, k=128, seed=0):
    """Weights on GGUF Q4_1's grid: per block of 32, m + d q with q in 0..15 (both ends used), d and m
    float16."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(0.01, 0.05, (n, k // 32, 1)).astype(np.float16).astype(np.float32)
    m = rng.uniform(-0.4, 0.1, (n, k // 32, 1)).astype(np.float16).astype(np.float32)
    q = rng.integers(0, 16, (n, k // 32, 32))
    q[..., 0], q[..., 1] = 0, 15
    return (m + d * q).reshape(n, k).astype(np.float32)


def test_offsets_reproduce_an_asymmetric_grid():
    w = _q4_1_blocks()
    qw = quantize_weight(w, WeightSpec(get_format("int4"), "group", 32, offsets=True))
    assert qw.codes.min() == -8 and qw.codes.max() == 7
    # The scale is d exactly (float32 arithmetic on float16 inputs); the offset m + 8d is rounded to float16:
    # at most half an ulp of float16 (2^-11 relative), plus float32 round-off.
    bound = np.abs(qw.offsets).max() * 2.0**-11 + 1e-6
    assert np.abs(qw.dequantize() - w).max() <= bound
    symmetric = quantize_weight(w, WeightSpec(get_format("int4"), "group", 32))
    assert sqnr_db(w, qw.dequantize()) > sqnr_db(w, symmetric.dequantize()) + 30


@pytest.mark.parametrize("fmt", ["int4", "fp4_e2m1", "int8"])
def test_offsets_help_skewed_weights_and_are_counted(fmt):
    w = np.random.default_rng(1).gamma(2.0, 0.02, (32, 256)).astype(np.float32)  # all positive, skewed
    plain = WeightSpec(get_format(fmt), "group", 64, scale_dtype="float16")
    offset = WeightSpec(get_format(fmt), "group", 64, scale_dtype="float16", offsets=True)
    assert sqnr_db(w, quantize_weight(w, offset).dequantize()) > sqnr_db(
        w, quantize_weight(w, plain).dequantize()
    )
    assert offset.bits_per_weight(32, 256) == plain.bits_per_weight(32, 256) + 16 / 64


def test_offsets_spec_refuses_zero_points_and_pow2_scales():
    with pytest.raises(RecipeError, match="offsets"):
        WeightSpec(get_format("uint4"), "group", 32, symmetric=False, offsets=True)
    with pytest.raises(RecipeError, match="offsets"):
        WeightSpec(get_format("fp4_e2m1"), "group", 32, scale_constraint="pow2_ratio", offsets=True)


def _initializers(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def test_graph_computes_the_offset_weights(mlp, tmp_path):
    import onnxruntime as ort

    out = tmp_path / "off.onnx"
    artifacts = qcompile.compile(
        mlp, Recipe("w4a16", group_size=64, offsets=True), tiny_models.calibration(), output=out
    )
    model = onnx.load(str(out))
    assert [o.name for o in model.graph.output] == ["y"]
    assert sum(n.op_type == "ReduceSum" for n in model.graph.node) == 2  # fc1 and fc2 read different tensors
    assert all(
        len(n.input) == 2 for n in model.graph.node if n.op_type == "DequantizeLinear"
    )  # no zero points
    assert check_tensorrt_rules(ir.load(out)) == []
    for layer in artifacts.report.layers:
        assert layer.bits_per_weight == pytest.approx(4 + 32 / 64 + 16 / 64)
    # Rebuild both effective weights from the file (DQ codes x block scales + the branch's offsets per block)
    # and run the graph in numpy: float32 round-off over two layers of 256 inputs stays below 1e-4.
    init = _initializers(model)
    dq = {n.input[0][:2]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    w1 = init[dq["w1"].input[0]].astype(np.float32) * np.repeat(
        init[dq["w1"].input[1]], 64, axis=0
    ) + np.repeat(init["fc1_offsets_B"], 64, axis=0)  # MatMul weight [K, N], blocks along K
    w2 = init[dq["w2"].input[0]].astype(np.float32) * np.repeat(
        init[dq["w2"].input[1]], 64, axis=1
    ) + np.repeat(init["fc2_offsets_B"].T, 64, axis=1)  # Gemm transB weight [N, K]
    x = tiny_models.calibration(seed=5)["x"][0]
    expected = np.maximum(x @ w1 + init["b1"], 0) @ w2.T
    session = ort.InferenceSession(str(out), session_options(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(["y"], {"x": x})[0], expected, rtol=1e-4, atol=1e-4)


def test_measuring_sessions_keep_float_activations_in_fused_int4_matmuls(mlp, tmp_path):
    """onnxruntime's default fuses DQ(int4) + MatMul into MatMulNBits with int8 activations; the
    measuring options must not (an int8 rounding of x moves y by ~1e-2 here, far above 1e-4)."""
    import onnxruntime as ort

    out = tmp_path / "plain.onnx"
    qcompile.compile(mlp, Recipe("w4a16", group_size=64), None, output=out, verify=False)
    x = tiny_models.calibration(seed=5)["x"][0]
    unfused = ort.SessionOptions()
    unfused.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    reference = ort.InferenceSession(str(out), unfused, providers=["CPUExecutionProvider"]).run(
        ["y"], {"x": x}
    )[0]
    measured = ort.InferenceSession(str(out), session_options(), providers=["CPUExecutionProvider"]).run(
        ["y"], {"x": x}
    )[0]
    np.testing.assert_allclose(measured, reference, rtol=1e-4, atol=1e-4)


def test_offsets_with_gptq_lorc_and_the_int4_plugin(mlp, tmp_path):
    calib = tiny_models.calibration(samples=40, batch=16)
    report = qcompile.compile(
        mlp,
        Recipe("w4a16", group_size=64, offsets=True, algorithm="gptq", lorc_rank=4, int4_plugin=True),
        calib,
        output=tmp_path / "o.onnx",
    ).report
    for layer in report.layers:
        assert layer.emitted_as == "plugin QcW4A16Gemm"
        assert layer.details["output_mse"] < layer.details["output_mse_rtn"]
    assert report.accuracy[0].cosine_mean > 0.99  # verified through the lowered plugin + both side branches
    nodes = [n.op_type for n in onnx.load(str(tmp_path / "o.onnx")).graph.node]
    assert nodes.count("ReduceSum") == 2 and nodes.count("QcW4A16Gemm") == 2


def test_conv_layers_keep_symmetric_weights(tmp_path):
    onnx.save(tiny_models.conv(), tmp_path / "conv.onnx")
    report = qcompile.compile(tmp_path / "conv.onnx", Recipe("w8a16", offsets=True), None).report
    assert "side branch" in report.layers[0].details["offsets"]


def test_offsets_refused_where_they_cannot_go():
    with pytest.raises(RecipeError, match="QcW4A8Gemm"):
        Recipe("wfp4a8", offsets=True)
    with pytest.raises(RecipeError, match="not both"):
        Recipe("w4a16", offsets=True, asymmetric=True)


def test_cli_flag(mlp, tmp_path):
    out = tmp_path / "cli.onnx"
    result = CliRunner().invoke(
        main, [str(mlp), "-p", "w4a16", "--offsets", "--calib", "random", "-o", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert any(n.op_type == "ReduceSum" for n in onnx.load(str(out)).graph.node)

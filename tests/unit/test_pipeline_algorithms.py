"""Algorithms, LoRC branches and plugin presets through qcompile.compile(), and TensorRT's
pre-flight rules on everything qcompile emits."""

from __future__ import annotations

import onnx
import onnx_ir as ir
import pytest

import qcompile
import tiny_models
from qcompile.errors import CalibrationError
from qcompile.passes.trt_preflight import check_tensorrt_rules
from qcompile.recipe import PRESETS, Recipe


def _layers(report):
    return {layer.name: layer for layer in report.layers}


def _compile(mlp, **recipe):
    # 40 samples x 16 rows: GPTQ's Hessian needs well over K=256 tokens to generalize
    return qcompile.compile(mlp, Recipe(**recipe), tiny_models.calibration(samples=40, batch=16)).report


@pytest.mark.parametrize("algorithm", ["gptq", "awq"])
def test_algorithms_lower_the_output_error_and_report_it(mlp, algorithm):
    report = _compile(mlp, precision="w4a16", group_size=64, algorithm=algorithm)
    for layer in report.layers:
        details = layer.details
        assert details["algorithms"] == [algorithm]
        # AWQ keeps RTN when no scale helps (alpha 0 is exactly RTN): never worse
        assert details["output_mse"] <= details["output_mse_rtn"], (layer.name, details)
    assert _layers(report)["fc1"].details["output_mse"] < _layers(report)["fc1"].details["output_mse_rtn"]


def test_gptq_beats_rtn_on_the_sample_transformer():
    """On real correlated activations (the iid inputs of the MLP give GPTQ nothing to exploit)."""
    model, calib = tiny_models.sample_transformer()
    rtn = qcompile.compile(model, Recipe("w4a16"), calib).report.accuracy[0].cosine_mean
    gptq = qcompile.compile(model, Recipe("w4a16", algorithm="gptq"), calib).report.accuracy[0].cosine_mean
    assert gptq > rtn, (gptq, rtn)


def test_smoothquant_scales_are_folded_or_multiplied_and_recorded(mlp, tmp_path):
    out = tmp_path / "sq.onnx"
    artifacts = qcompile.compile(
        mlp, Recipe("w8a8", algorithm="smoothquant"), tiny_models.calibration(), output=out
    )
    fc1 = _layers(artifacts.report)["fc1"]
    # fc1 reads the graph input: nothing to fold into, so an explicit Mul carries 1/s
    assert fc1.details["input_scale"].startswith("explicit Mul")
    assert any(n.op_type == "Mul" for n in onnx.load(str(out)).graph.node)
    assert artifacts.report.accuracy[0].cosine_mean > 0.99


def test_lorc_branch_is_emitted_counted_and_helps(mlp, tmp_path):
    out = tmp_path / "lorc.onnx"
    artifacts = qcompile.compile(mlp, Recipe("w4a16", group_size=64, lorc_rank=8), None, output=out)
    names = [n.name for n in onnx.load(str(out)).graph.node]
    assert "fc1_lorc_up" in names and "fc2_lorc_add" in names
    fc1 = _layers(artifacts.report)["fc1"]
    assert fc1.details["lorc_bits_per_weight"] == pytest.approx(16 * 8 * (256 + 256) / (256 * 256))
    assert fc1.bits_per_weight == pytest.approx(
        4 + 32 / 64 + fc1.details["lorc_bits_per_weight"]
    )  # fp32 scales
    plain = qcompile.compile(mlp, Recipe("w4a16", group_size=64), None).report.accuracy[0].cosine_mean
    assert artifacts.report.accuracy[0].cosine_mean > plain
    assert onnx.load(str(out)).graph.output[0].name == "y"


def test_algorithms_refuse_to_invent_float_inputs(mlp):
    with pytest.raises(CalibrationError, match="input 'x' is a float tensor: qcompile cannot generate"):
        qcompile.compile(mlp, Recipe("w4a16", algorithm="gptq"), None)


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_passes_tensorrt_preflight(mlp, tmp_path, preset):
    out = tmp_path / f"{preset}.onnx"
    qcompile.compile(mlp, Recipe(preset, group_size=64), tiny_models.calibration(), output=out, verify=False)
    violations = check_tensorrt_rules(ir.load(out))
    assert violations == [], violations


@pytest.mark.parametrize(
    "preset, op_type, floor",
    [("w6a16", "QcW6A16Gemm", 0.99), ("wfp4a8", "QcW4A8Gemm", 0.97), ("wfp4a16", "QcW4A16Gemm", 0.97)],
)
def test_plugin_presets_emit_plugin_nodes_and_measure_the_lowering(mlp, tmp_path, preset, op_type, floor):
    out = tmp_path / f"{preset}.onnx"
    artifacts = qcompile.compile(mlp, Recipe(preset, group_size=64), tiny_models.calibration(), output=out)
    nodes = [n for n in onnx.load(str(out)).graph.node if n.domain == "qcompile"]
    assert [n.op_type for n in nodes] == [op_type, op_type]
    assert artifacts.report.accuracy[0].cosine_mean > floor
    assert any("lowering" in note for note in artifacts.report.notes)


@pytest.mark.parametrize("preset, op_type", [("w4a16", "QcW4A16Gemm"), ("w4a8", "QcW4A8Gemm")])
def test_int4_plugin_option(mlp, tmp_path, preset, op_type):
    out = tmp_path / "p.onnx"
    artifacts = qcompile.compile(mlp, Recipe(preset, int4_plugin=True), tiny_models.calibration(), output=out)
    assert {n.op_type for n in onnx.load(str(out)).graph.node if n.domain == "qcompile"} == {op_type}
    assert artifacts.report.accuracy[0].cosine_mean > 0.97
    assert check_tensorrt_rules(ir.load(out)) == []


def test_llmfp4_offsets_fold_into_layernorm():
    """LLM-FP4's power-of-two activation offsets on the sample transformer are folded into the
    LayerNorms (the pass's exactness is tested in test_scale_input_channels)."""
    model, calib = tiny_models.sample_transformer()
    report = qcompile.compile(model, Recipe("fp8", algorithm="llmfp4"), calib).report
    folded = [lr for lr in report.layers if lr.details.get("input_scale", "").startswith("folded into")]
    assert len(folded) >= 4, [lr.details for lr in report.layers]
    assert report.accuracy[0].cosine_mean > 0.99


def test_fpsearch_picks_format_and_clip_and_never_loses_to_rtn(tmp_path):
    """LLM-FP4's per-layer search on w6a16: E3M2 or E2M3 and a clip per output channel, emitted
    as the plugin's format attribute; on the calibration tokens never worse than plain E3M2."""
    model, calib = tiny_models.sample_transformer()
    out = tmp_path / "s.onnx"
    report = qcompile.compile(model, Recipe("w6a16", algorithm="fpsearch"), calib, output=out).report
    quantized = [lr for lr in report.layers if lr.quantized]
    for layer in quantized:
        assert layer.weight_format == layer.details["fpsearch"]["format"]
        assert layer.details["output_mse"] <= layer.details["output_mse_rtn"] * (1 + 1e-6), layer.details
    formats = {
        n.attribute[[a.name for a in n.attribute].index("format")].s.decode()
        for n in onnx.load(str(out)).graph.node
        if n.op_type == "QcW6A16Gemm"
    }
    assert formats == {lr.weight_format for lr in quantized}
    assert report.accuracy[0].cosine_mean > 0.99


def test_asymmetric_int4_has_zero_points_and_preflight_says_tensorrt_wants_symmetric(mlp, tmp_path):
    out = tmp_path / "asym.onnx"
    artifacts = qcompile.compile(mlp, Recipe("w4a16", group_size=64, asymmetric=True), None, output=out)
    model = onnx.load(str(out))
    weight_dqs = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert all(len(n.input) == 3 for n in weight_dqs)
    assert {t.data_type for t in model.graph.initializer if t.name.endswith("_zero")} == {
        onnx.TensorProto.UINT4
    }
    assert artifacts.report.layers[0].weight_format == "uint4"
    assert artifacts.report.accuracy[0].cosine_mean > 0.97
    assert {v.rule for v in check_tensorrt_rules(ir.load(out))} == {"symmetric", "qdq-type"}  # UINT4 too

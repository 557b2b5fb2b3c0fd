"""End to end through qcompile.compile() on tiny models: structure of the emitted graph and the
accuracy the report measured."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

import qcompile
import tiny_models
from qcompile.errors import CalibrationError, ModelError, OutputError
from qcompile.recipe import Recipe


@pytest.fixture
def mlp_path(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(tiny_models.mlp(), path)
    return path


def _nodes(path, op_type):
    return [n for n in onnx.load(str(path)).graph.node if n.op_type == op_type]


# Cosine floors: int8/fp8 per-channel weights with per-tensor activations on a 2-layer MLP with
# outlier channels lose a few 1e-3; 4-bit weights (SQNR ~18 dB) lose ~2e-2.
@pytest.mark.parametrize(
    "preset, floor, act_type",
    [
        ("w8a8", 0.99, onnx.TensorProto.INT8),
        ("fp8", 0.99, onnx.TensorProto.FLOAT8E4M3FN),
        ("w4a16", 0.97, None),
        ("w4a8", 0.97, onnx.TensorProto.FLOAT8E4M3FN),
    ],
)
def test_presets_emit_qdq_and_measure_accuracy(mlp_path, tmp_path, preset, floor, act_type):
    out = tmp_path / f"mlp.{preset}.onnx"
    artifacts = qcompile.compile(
        mlp_path, preset, tiny_models.calibration(), output=out, report_path=tmp_path / "r.json"
    )
    onnx.checker.check_model(str(out), full_check=True)
    model = onnx.load(str(out))
    assert model.opset_import[0].version >= 21
    inits = {t.name: t for t in model.graph.initializer}
    weight_dqs = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert len(weight_dqs) == 2
    for dq in weight_dqs:
        q = inits[dq.input[0]]
        scale = inits[dq.input[1]]
        if preset.startswith("w4"):
            assert q.data_type == onnx.TensorProto.INT4
            block = {a.name: a.i for a in dq.attribute}["block_size"]
            assert block == 128 and len(scale.dims) == 2
        else:
            assert len(scale.dims) == 1  # per output channel
    quantizers = _nodes(out, "QuantizeLinear")
    if act_type is None:
        assert not quantizers
    else:
        assert len(quantizers) == 2
        zero_types = {inits[q.input[2]].data_type for q in quantizers}
        assert zero_types == {act_type}
    report = artifacts.report
    assert report.size_after < report.size_before
    (acc,) = report.accuracy
    assert acc.cosine_mean >= floor, acc
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["accuracy"][0]["cosine_mean"] == pytest.approx(acc.cosine_mean)
    assert all(layer["weight_sqnr_db"] > 10 for layer in saved["layers"])


def test_report_accuracy_is_measured_not_assumed(mlp_path, monkeypatch):
    """A quantizer that flips the weights' sign must show up in the measured cosine."""
    import dataclasses

    from qcompile.algorithms import ALGORITHMS, LayerResult
    from qcompile.quantizer import quantize_weight

    flipped = dataclasses.replace(
        ALGORITHMS["rtn"], apply=lambda w, spec, *a, **k: LayerResult(quantize_weight(-w, spec))
    )
    monkeypatch.setitem(ALGORITHMS, "rtn", flipped)
    report = qcompile.compile(mlp_path, Recipe("w8a8", exclude=("fc1",)), tiny_models.calibration()).report
    assert report.accuracy[0].cosine_mean < -0.9, report.accuracy


def test_group_size_falls_back_to_a_divisor_of_k_or_records_why_not(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(tiny_models.mlp(k=96), path)  # K=96: a multiple of 32, not of 64 or 128
    artifacts = qcompile.compile(path, Recipe("w4a16", group_size=64), None, output=tmp_path / "q.onnx")
    layers = {layer.name: layer for layer in artifacts.report.layers}
    assert layers["fc1"].quantized and layers["fc1"].granularity == "group 32"
    assert layers["fc1"].details["group_size"] == "group size 32: K=96 is not a multiple of 64"
    assert layers["fc1"].bits_per_weight == 4 + 32 / 32
    assert layers["fc2"].quantized and layers["fc2"].granularity == "group 64"
    assert "random inputs" in artifacts.report.eval_source
    onnx.save(tiny_models.mlp(k=80), path)  # no allowed group size divides 80
    layers = {
        layer.name: layer
        for layer in qcompile.compile(path, Recipe("w4a16", group_size=64), None).report.layers
    }
    assert layers["fc1"].reason == "K=80 is not a multiple of the group size 64"


def test_conv_per_channel_and_int4_refused_for_conv():
    artifacts = qcompile.compile(tiny_models.conv(), "w8a8", "random")
    (layer,) = artifacts.report.layers
    assert layer.quantized and layer.granularity == "channel"
    assert artifacts.report.accuracy[0].cosine_mean > 0.99
    with pytest.raises(ModelError, match="no INT4 Conv"):
        qcompile.compile(tiny_models.conv(), "w4a16", None)


def test_no_quantizable_layer(tmp_path):
    with pytest.raises(ModelError, match="no quantizable layer"):
        qcompile.compile(tiny_models.no_weights(), "w4a16", None)


def test_activation_presets_need_calibration(mlp_path):
    with pytest.raises(CalibrationError, match="random"):
        qcompile.compile(mlp_path, "w8a8", None)


def test_input_model_never_overwritten(mlp_path):
    before = mlp_path.read_bytes()
    with pytest.raises(OutputError, match="is an input file"):
        qcompile.compile(mlp_path, "w4a16", None, output=mlp_path, force=True)
    assert mlp_path.read_bytes() == before


def test_external_data_in_and_out(tmp_path, monkeypatch):
    from qcompile import model_io

    src = tmp_path / "src"
    src.mkdir()
    onnx.save(
        tiny_models.mlp(),
        src / "ext.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.onnx.data",
        size_threshold=0,
    )
    monkeypatch.setattr(model_io, "EXTERNAL_DATA_THRESHOLD", 1000)
    out = tmp_path / "q.onnx"
    artifacts = qcompile.compile(src / "ext.onnx", "w4a16", None, output=out)
    assert (tmp_path / "q.onnx.data").is_file()
    onnx.checker.check_model(str(out))
    assert artifacts.report.accuracy[0].cosine_mean > 0.97


def test_external_data_outside_model_folder_refused(tmp_path):
    model = tiny_models.mlp()
    onnx.save(model, tmp_path / "evil.onnx", save_as_external_data=True, location="w.data", size_threshold=0)
    proto = onnx.load(str(tmp_path / "evil.onnx"), load_external_data=False)
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../../etc/passwd"
    inner = tmp_path / "inner"
    inner.mkdir()
    onnx.save(proto, inner / "evil.onnx")
    with pytest.raises(ModelError, match="outside the model's folder"):
        qcompile.compile(inner / "evil.onnx", "w4a16", None)


def test_recipe_file_and_overrides(tmp_path, mlp_path):
    recipe_path = tmp_path / "r.toml"
    recipe_path.write_text('precision = "w4a16"\ngroup_size = 64\noverrides = {"re:fc2" = "w8a16"}\n')
    recipe = Recipe.from_file(recipe_path)
    artifacts = qcompile.compile(mlp_path, recipe, None)
    layers = {layer.name: layer for layer in artifacts.report.layers}
    assert layers["fc1"].weight_format == "int4" and layers["fc1"].granularity == "group 64"
    assert layers["fc2"].weight_format == "int8"
    assert np.isfinite(artifacts.report.accuracy[0].cosine_mean)


def test_external_data_input_small_output_is_self_contained(tmp_path):
    """Unquantized external initializers are read in, not left pointing at the input's data file."""
    src = tmp_path / "src"
    src.mkdir()
    onnx.save(
        tiny_models.mlp(),
        src / "ext.onnx",
        save_as_external_data=True,
        location="ext.onnx.data",
        size_threshold=0,
    )
    out = tmp_path / "out" / "q.onnx"
    out.parent.mkdir()
    qcompile.compile(src / "ext.onnx", Recipe("w4a16", exclude=("fc2",)), None, output=out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["q.onnx", "q.recipe.json"]
    onnx.checker.check_model(str(out))
    assert all(t.data_location == onnx.TensorProto.DEFAULT for t in onnx.load(str(out)).graph.initializer)

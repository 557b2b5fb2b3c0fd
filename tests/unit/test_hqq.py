"""HQQ: the data-free offset fit lowers the weight error of min/max offsets, and compiles without
calibration data into the offsets form TensorRT runs (symmetric DQ + side branch)."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnx_ir as ir
import pytest

import qcompile
from qcompile.algorithms import LayerCalibration, get_algorithm, make_options
from qcompile.algorithms.hqq import hqq
from qcompile.errors import RecipeError
from qcompile.formats import get_format
from qcompile.passes.trt_preflight import check_tensorrt_rules
from qcompile.quantizer import WeightSpec, quantize_weight
from qcompile.recipe import Recipe


def _weights(seed=0):
    return (np.random.default_rng(seed).standard_t(4, (64, 512)) * 0.02).astype(np.float32)


@pytest.mark.parametrize("select", ["group", "reference"])
@pytest.mark.parametrize("group", [128, 32])
def test_hqq_lowers_the_weight_error_of_range_offsets(group, select):
    w = _weights(group)
    spec = WeightSpec(get_format("int4"), "group", group, offsets=True)
    qw, info = hqq(w, spec, select=select)
    plain = quantize_weight(w, spec)
    sym = quantize_weight(w, dataclasses.replace(spec, offsets=False))
    err = {
        name: float(np.abs(w - q.dequantize()).mean())
        for name, q in (("hqq", qw), ("range offsets", plain), ("symmetric", sym))
    }
    print(f"group {group}: mean |w - w'|", {k: f"{v:.4e}" for k, v in err.items()})
    assert err["hqq"] < err["range offsets"] and err["hqq"] < err["symmetric"]
    assert info.mean_abs_error_after == pytest.approx(err["hqq"], rel=1e-6)
    assert qw.codes.min() >= -8 and qw.codes.max() <= 7 and (qw.scales > 0).all()
    assert qw.offsets.dtype == np.float32 and np.array_equal(
        qw.offsets, qw.offsets.astype(np.float16).astype(np.float32)
    )


def test_hqq_without_offsets_falls_back_to_rtn():
    w = _weights(1)
    spec = WeightSpec(get_format("int4"), "group", 128)
    result = get_algorithm("hqq").apply(w, spec, LayerCalibration(), make_options("hqq"))
    assert result.info["hqq"]["applied"] is False and result.qw.offsets is None


def test_hqq_options_are_checked():
    with pytest.raises(RecipeError, match="lp_norm"):
        make_options("hqq", {"lp_norm": 2})
    with pytest.raises(RecipeError, match="select"):
        make_options("hqq", {"select": "best"})


def test_hqq_compiles_without_data_into_the_offsets_form(mlp, tmp_path):
    out = tmp_path / "hqq.onnx"
    report = qcompile.compile(mlp, Recipe("w4a16", group_size=64, algorithm="hqq"), None, output=out).report
    for layer in report.layers:
        assert layer.details["algorithms"] == ["hqq"] and layer.details["hqq"]["iterations"] == 20
        assert layer.details["hqq"]["mean_abs_error_after"] < layer.details["hqq"]["mean_abs_error_before"]
    assert report.accuracy[0].cosine_mean > 0.99
    nodes = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert nodes.count("ReduceSum") == 2
    assert all(len(n.input) == 2 for n in onnx.load(str(out)).graph.node if n.op_type == "DequantizeLinear")
    assert check_tensorrt_rules(ir.load(out)) == []

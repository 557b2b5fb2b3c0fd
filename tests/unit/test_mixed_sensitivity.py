"""Each sensitivity method runs on a toy residual network and ranks an obviously sensitive layer
above a benign one where it should; residual blocks are found generically."""

from __future__ import annotations

import numpy as np
import pytest
from test_mixed_models import calibration, residual_mlp

from qcompile.errors import RecipeError
from qcompile.mixed.auto import AutoOptions, analyze
from qcompile.mixed.candidates import weight_errors
from qcompile.mixed.sensitivity import METHODS, SensitivityOptions

AMPLIFIED = {1: 3.0}  # block 1's branch is 10x stronger than the others (0.3): it changes its input most
OUTLIER = ("up2.w", 40.0)  # one huge weight in up2: a coarse scale for its channel


@pytest.fixture(scope="module")
def analysis():
    options = AutoOptions(
        method="measured",
        report_methods=tuple(METHODS),
        sensitivity=SensitivityOptions(samples=2, zd_direction="lower"),
    )
    return analyze(residual_mlp(3, gains=AMPLIFIED, outlier=OUTLIER), calibration(), options)


def _importance(analysis, method, layer, fmt="int4"):
    """A method's predicted error divided by the format's relative weight MSE (its layer importance)."""
    rel = weight_errors(analysis.infos, 128)[layer][fmt][1]
    return analysis.sensitivities[method].error[layer][fmt] / rel


def test_every_method_scores_every_layer_and_format(analysis):
    names = {i.name for i in analysis.infos}
    assert names == {"up0", "down0", "up1", "down1", "up2", "down2", "head"}
    for method, sens in analysis.sensitivities.items():
        assert set(sens.score) == names, method
        for info in analysis.infos:
            errs = sens.error[info.name]
            assert set(errs) == set(info.bits)
            assert errs["fp16"] == 0.0
            assert all(np.isfinite(v) and v >= 0 for v in errs.values()), (method, errs)


def test_lim_finds_the_residual_blocks_and_ranks_the_amplified_one_first(analysis):
    lim = analysis.sensitivities["lim"]
    blocks = lim.details["blocks"]
    assert [sorted(b["layers"]) for b in blocks] == [["down0", "up0"], ["down1", "up1"], ["down2", "up2"]]
    assert lim.details["outside_blocks"] == ["head"]
    assert lim.score["up1"] > lim.score["up0"] and lim.score["up1"] > lim.score["up2"], lim.score
    assert lim.score["head"] == max(lim.score.values())


def test_lim_falls_back_to_cka_without_residual_structure():
    from tiny_models import calibration as mlp_calibration
    from tiny_models import mlp

    analysis = analyze(mlp(), mlp_calibration(), AutoOptions(method="lim", report_methods=()))
    assert analysis.sensitivities["lim"].details == {"fallback": "per-layer linear CKA"}
    assert all(-1.0 - 1e-9 <= s <= 0.0 + 1e-9 for s in analysis.sensitivities["lim"].score.values())


def test_zd_direction_lower_ranks_the_outlier_layer_first(analysis):
    zd = analysis.sensitivities["zd"]
    # a huge outlier inflates the std, so almost no weight of up2 has z > 1
    assert zd.score["up2"] < 0.01 < zd.score["up0"], zd.score
    assert _importance(analysis, "zd", "up2") > 10 * _importance(analysis, "zd", "up0")


def test_zd_direction_higher_is_the_reverse():
    options = AutoOptions(
        method="zd", report_methods=(), sensitivity=SensitivityOptions(zd_direction="higher")
    )
    analysis = analyze(residual_mlp(3, outlier=OUTLIER), calibration(), options)
    assert _importance(analysis, "zd", "up2") < _importance(analysis, "zd", "up0")


def test_hessian_ranks_the_outlier_layer_and_the_amplified_input_above_benign_ones(analysis):
    h = analysis.sensitivities["hessian"]
    assert h.score["up2"] > 2 * h.score["up1"], h.score  # block 1 amplified the hidden state up2 reads
    for info in analysis.infos:
        assert h.error[info.name]["int4"] > h.error[info.name]["int8"] > 0
    # absolute output error: the outlier's coarse scale costs up2 more than a benign layer;
    # relative to the output energy (the default) the outlier's own large output hides it
    absolute = AutoOptions(
        method="hessian", report_methods=(), sensitivity=SensitivityOptions(hessian_normalize="none")
    )
    a = analyze(residual_mlp(3, gains=AMPLIFIED, outlier=OUTLIER), calibration(), absolute).sensitivities[
        "hessian"
    ]
    assert a.error["up2"]["int4"] > 5 * a.error["up0"]["int4"], a.error


def _anisotropic(d: int = 256):
    """x -> A: (x * [1..1, 0..0]) @ W, B: (x * [0..0, 1..1]) @ W' with W' a copy of W whose first 128
    input channels (one int4 group) hold one 8x outlier per output: A reads the badly quantized group."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w = (rng.standard_normal((d, d)) / np.sqrt(d)).astype(np.float32)  # [K, N]
    w[rng.integers(0, 128, d), np.arange(d)] = 8.0 / np.sqrt(d)
    first = (np.arange(d) < 128).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, "wa"),
        numpy_helper.from_array(w.copy(), "wb"),
        numpy_helper.from_array(first, "mask_a"),
        numpy_helper.from_array(1 - first, "mask_b"),
    ]
    nodes = [
        helper.make_node("Mul", ["x", "mask_a"], ["xa"], name="mul_a"),
        helper.make_node("Mul", ["x", "mask_b"], ["xb"], name="mul_b"),
        helper.make_node("MatMul", ["xa", "wa"], ["ya"], name="A"),
        helper.make_node("MatMul", ["xb", "wb"], ["yb"], name="B"),
    ]
    out = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["b", "s", d]) for n in ("ya", "yb")]
    graph = helper.make_graph(
        nodes,
        "anisotropic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", d])],
        out,
        inits,
    )
    x = np.random.default_rng(4).standard_normal((4, 1, 8, d)).astype(np.float32)
    return (
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10),
        {"x": x},
        w,
        first,
    )


@pytest.mark.parametrize("normalize", ["output", "none"])
def test_hessian_is_the_exact_layer_output_error_and_ranks_the_worse_layer_first(normalize):
    """Same weights, same weight MSE: only the input's energy distribution differs. The proxy must
    equal the output error measured directly on the calibration tokens."""
    from qcompile.mixed.candidates import weight_spec
    from qcompile.quantizer import quantize_weight

    model, cal, w, first = _anisotropic()
    options = AutoOptions(
        method="hessian",
        report_methods=(),
        holdout=0.0,
        formats=("int4", "int8", "fp16"),
        sensitivity=SensitivityOptions(hessian_normalize=normalize),
        guard=False,
    )
    h = analyze(model, cal, options).sensitivities["hessian"]
    x = cal["x"].reshape(-1, w.shape[0]).astype(np.float64)
    for name, mask in (("A", first), ("B", 1 - first)):
        xm = x * mask
        for fmt in ("int4", "int8"):
            dq = quantize_weight(w.T, weight_spec(fmt, 128)).dequantize().astype(np.float64)  # [N, K]
            exact = np.mean(np.sum((xm @ (w.T - dq).T) ** 2, axis=1))
            if normalize == "output":
                exact /= np.mean(np.sum((xm @ w) ** 2, axis=1))
            # float32 products over K=256 (the proxy multiplies in float32): relative 1e-4
            assert h.error[name][fmt] == pytest.approx(exact, rel=1e-4), (name, fmt)
        assert h.error[name]["fp16"] == 0.0
    # the outliers make group 0's int4 step about 3x coarser (error ~10x); relative to the output
    # energy (which the outliers also raise) A still measures 5x worse than B
    assert h.error["A"]["int4"] > 3 * h.error["B"]["int4"], h.error
    assert h.score["A"] == pytest.approx(
        h.score["B"], rel=0.2
    )  # equal input energy: the old proxy saw no difference


def test_measured_ranks_the_amplified_block_first(analysis):
    m = analysis.sensitivities["measured"]
    assert m.details["groups"] == 7 and m.details["runs"] == 7 * 5 * 2
    for name in ("up1", "down1"):
        assert m.error[name]["int4"] > 3 * m.error["up0"]["int4"], m.error
    assert m.error["up1"]["int4"] > m.error["up1"]["int8"]


def test_measured_groups_layers_over_the_run_cap():
    options = AutoOptions(
        method="measured", report_methods=(), sensitivity=SensitivityOptions(samples=1, measured_max_runs=15)
    )
    analysis = analyze(residual_mlp(3), calibration(), options)
    m = analysis.sensitivities["measured"]
    assert m.details["groups"] == 3 and m.details["runs"] == 15
    assert any("groups of consecutive layers" in n for n in analysis.notes)


def test_unknown_method_names_the_known_ones():
    with pytest.raises(RecipeError, match="known: lim, zd, hessian, measured"):
        AutoOptions(method="fisher")

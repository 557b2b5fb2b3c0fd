"""The algorithm registry: typed options with real errors, and the uniform apply() the pipeline calls."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from qcompile.algorithms import ALGORITHMS, LayerCalibration, get_algorithm, make_options
from qcompile.algorithms.hessian import HessianAccumulator
from qcompile.algorithms.layer import output_mse
from qcompile.algorithms.smoothquant import smooth_scales
from qcompile.algorithms.synthetic import synthetic_layer
from qcompile.errors import CalibrationError, RecipeError
from qcompile.formats import get_format
from qcompile.quantizer import WeightSpec, quantize_weight

SPEC = WeightSpec(get_format("int4"), "group", 128)


@pytest.fixture(scope="module")
def layer():
    lay = synthetic_layer(64, 256, 512, seed=0)
    acc = HessianAccumulator(256)
    acc.add(lay.x_calib)
    x = np.abs(lay.x_calib)
    calib = LayerCalibration(acc.hessian(), x.mean(axis=0), x.max(axis=0), lay.x_calib, get_format("int8"))
    return lay, calib


def test_registered_names_and_option_types():
    assert list(ALGORITHMS) == [
        "rtn",
        "hqq",
        "gptq",
        "awq",
        "smoothquant",
        "llmfp4",
        "fpsearch",
        "lorc",
        "lkd",
    ]
    for name, entry in ALGORITHMS.items():
        assert entry.name == name and entry.stage in ("quantize", "refine")
        options = entry.options()
        assert dataclasses.is_dataclass(options)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(options, "x", 1)
        assert set(entry.needs) <= {f.name for f in dataclasses.fields(LayerCalibration)}


def test_unknown_algorithm_names_the_registered_ones():
    with pytest.raises(RecipeError, match="rtn, hqq, gptq, awq, smoothquant, llmfp4, fpsearch, lorc, lkd"):
        get_algorithm("gptqq")


@pytest.mark.parametrize(
    "name, values, message",
    [
        ("gptq", {"block_size": 0}, "block_size"),
        ("gptq", {"block_size": True}, "block_size"),
        ("gptq", {"damp": 0.0}, "damp"),
        ("gptq", {"act_order": "yes"}, "act_order"),
        ("awq", {"grid": 0}, "grid"),
        ("awq", {"max_shrink": 1.0}, "max_shrink"),
        ("smoothquant", {"alpha": 1.2}, "alpha"),
        ("smoothquant", {"alphas": []}, "alphas"),
        ("lorc", {"rank": -1}, "rank"),
        ("lorc", {"factor_dtype": "fp8"}, "valid: float16, int8"),
        ("lkd", {"tune": "bias"}, "valid: scales, weights, both"),
        ("lkd", {"lr": "fast"}, "lr"),
        ("gptq", {"blocksize": 64}, "valid: block_size, damp, act_order"),
        ("rtn", {"alpha": 1}, "valid: mse_clip, grid, full_range"),
    ],
)
def test_bad_options_are_recipe_errors(name, values, message):
    with pytest.raises(RecipeError, match=message):
        make_options(name, values)


def test_make_options_builds_typed_options():
    opts = make_options("gptq", {"block_size": 64, "act_order": True})
    assert opts == ALGORITHMS["gptq"].options(block_size=64, damp=0.01, act_order=True)
    assert make_options("smoothquant", {"alpha": None, "alphas": [0.25, 0.5]}).alphas == (0.25, 0.5)


def _held_out(lay, result):
    return output_mse(lay.x_test, lay.w, result.effective_weight())


def test_quantize_entries_beat_rtn_through_apply(layer):
    lay, calib = layer
    results = {
        name: get_algorithm(name).apply(lay.w, SPEC, calib, get_algorithm(name).options())
        for name in ("rtn", "gptq", "awq")
    }
    errors = {name: _held_out(lay, r) for name, r in results.items()}
    print("int4 g128 held-out output MSE via apply():", {k: f"{v:.4e}" for k, v in errors.items()})
    assert errors["gptq"] < errors["rtn"] and errors["awq"] < errors["rtn"]
    np.testing.assert_array_equal(results["rtn"].qw.codes, quantize_weight(lay.w, SPEC).codes)
    s = results["awq"].input_scale
    np.testing.assert_array_equal(results["awq"].qw.codes, quantize_weight(lay.w * s, SPEC).codes)


def test_smoothquant_apply_fixed_and_searched(layer):
    lay, calib = layer
    entry = get_algorithm("smoothquant")
    w8 = WeightSpec(get_format("int8"), "channel")
    fixed = entry.apply(lay.w, w8, calib, entry.options())
    assert fixed.info["smoothquant"].alphas == (0.5,)
    np.testing.assert_array_equal(fixed.input_scale, smooth_scales(calib.x_absmax, lay.w, 0.5))
    searched = entry.apply(lay.w, w8, calib, make_options("smoothquant", {"alpha": None}))
    info = searched.info["smoothquant"]
    assert info.mse <= fixed.info["smoothquant"].mse and info.mse < info.mse_unsmoothed


def test_refiners_compose_on_a_scaled_base(layer):
    lay, calib = layer
    base = get_algorithm("awq").apply(lay.w, SPEC, calib, get_algorithm("awq").options())
    refined = get_algorithm("lorc").apply(lay.w, SPEC, calib, make_options("lorc", {"rank": 16}), base)
    assert refined.input_scale is base.input_scale and set(refined.info) == {"awq", "lorc"}
    print(f"awq {_held_out(lay, base):.4e} -> awq+lorc16 {_held_out(lay, refined):.4e}")
    assert _held_out(lay, refined) < _held_out(lay, base)
    with pytest.raises(RecipeError, match="lorc"):
        get_algorithm("lorc").apply(lay.w, SPEC, calib, make_options("lorc"), refined)


def test_lkd_refines_a_gptq_base(layer):
    torch = pytest.importorskip("torch", reason="LKD needs PyTorch")
    lay, calib = layer
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny layer on a shared machine; see test_algorithms_lkd
    try:
        base = get_algorithm("gptq").apply(lay.w, SPEC, calib, get_algorithm("gptq").options())
        tuned = get_algorithm("lkd").apply(lay.w, SPEC, calib, make_options("lkd", {"steps": 40}), base)
    finally:
        torch.set_num_threads(threads)
    info = tuned.info["lkd"]
    print(
        f"gptq -> gptq+lkd sample MSE {info.mse_before:.4e} -> {info.mse_after:.4e}; held-out "
        f"{_held_out(lay, base):.4e} -> {_held_out(lay, tuned):.4e}"
    )
    assert info.mse_after <= info.mse_before
    assert info.mse_before == pytest.approx(output_mse(lay.x_calib, lay.w, base.qw.dequantize()), rel=1e-12)


def test_missing_statistics_are_calibration_errors(layer):
    lay, _ = layer
    with pytest.raises(CalibrationError, match="hessian"):
        get_algorithm("gptq").apply(lay.w, SPEC, LayerCalibration(), make_options("gptq"))
    with pytest.raises(CalibrationError, match="x_absmean, x_sample"):
        get_algorithm("awq").apply(lay.w, SPEC, LayerCalibration(), make_options("awq"))


def test_imports_stay_light():
    code = (
        "import sys, qcompile; assert 'qcompile.algorithms' not in sys.modules; "
        "import qcompile.algorithms; assert 'torch' not in sys.modules and 'scipy' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _every_format():
    from qcompile.formats import FORMATS

    for name, fmt in FORMATS.items():
        unsigned = getattr(fmt, "signed", True) is False
        yield pytest.param(WeightSpec(fmt, "group", 32, symmetric=not unsigned), id=name)
    yield pytest.param(WeightSpec(get_format("e3m1_b2"), "channel"), id="e3m1_b2")


@pytest.mark.parametrize("spec", _every_format())
def test_every_format_runs_through_every_quantizer(spec):
    lay = synthetic_layer(32, 128, 256, seed=2)
    acc = HessianAccumulator(128)
    acc.add(lay.x_calib)
    x = np.abs(lay.x_calib)
    calib = LayerCalibration(
        acc.hessian(), x.mean(axis=0), x.max(axis=0), lay.x_calib, get_format("fp8_e4m3fn")
    )
    rtn = get_algorithm("rtn").apply(lay.w, spec, calib, make_options("rtn"))
    gptq = get_algorithm("gptq").apply(lay.w, spec, calib, make_options("gptq", {"act_order": True}))
    assert gptq.info["gptq"].calib_mse < gptq.info["gptq"].calib_mse_rtn
    for name in ("awq", "smoothquant"):
        result = get_algorithm(name).apply(lay.w, spec, calib, make_options(name))
        assert result.qw.codes.dtype == spec.fmt.code_dtype and result.qw.scales.shape == rtn.qw.scales.shape
        np.testing.assert_array_equal(
            result.qw.codes, quantize_weight(lay.w * result.input_scale, spec).codes
        )
    lorc = get_algorithm("lorc").apply(lay.w, spec, calib, make_options("lorc"), gptq)
    assert lorc.info["lorc"].weight_mse_after < lorc.info["lorc"].weight_mse_before
    assert np.isfinite(lorc.effective_weight()).all()


def test_rtn_mse_clip_never_raises_a_groups_weight_error():
    """Ratio 1 (plain amax) is a candidate, so every group's squared error can only go down."""
    import numpy as np

    from qcompile.formats import get_format
    from qcompile.quantizer import WeightSpec, mse_clipped_scales, quantize_weight

    w = np.random.default_rng(3).standard_t(4, (32, 256)).astype(np.float32)
    for fmt, gran in (("int4", "group"), ("fp4_e2m1", "group"), ("int8", "channel"), ("fp6_e3m2", "channel")):
        spec = WeightSpec(get_format(fmt), gran, 64)
        plain = (w - quantize_weight(w, spec).dequantize()) ** 2
        clipped = (
            w
            - ALGORITHMS["rtn"]
            .apply(w, spec, LayerCalibration(), make_options("rtn", {"mse_clip": True}))
            .qw.dequantize()
        ) ** 2
        groups = spec.groups(256)
        assert (
            clipped.reshape(32, groups, -1).sum(2) <= plain.reshape(32, groups, -1).sum(2) + 1e-12
        ).all(), fmt
        if spec.fmt.bits == 4:  # heavy tails: some 4-bit group always gains from a clip
            assert clipped.sum() < plain.sum(), fmt
    with pytest.raises(RecipeError, match="mse_clip takes symmetric scales"):
        mse_clipped_scales(w, WeightSpec(get_format("fp4_e2m1"), "group", 64, scale_constraint="pow2_ratio"))

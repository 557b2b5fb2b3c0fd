"""AWQ-style scale search (and clip search) on a layer with outlier input channels."""

import numpy as np
import pytest

from qcompile.algorithms.awq import awq_channel_scales, awq_scales, clip_search
from qcompile.algorithms.layer import output_mse
from qcompile.algorithms.synthetic import synthetic_layer
from qcompile.errors import CalibrationError, RecipeError
from qcompile.formats import get_format
from qcompile.quantizer import WeightSpec, quantize_weight

INT4_G128 = WeightSpec(get_format("int4"), "group", 128)


@pytest.fixture(scope="module")
def layer():
    return synthetic_layer(64, 256, 512, seed=0)


def _absmean(x):
    return np.abs(x).mean(axis=0)


def test_awq_beats_rtn_on_outliers_int4_g128(layer):
    s, qw, info = awq_scales(layer.w, _absmean(layer.x_calib), layer.x_calib, INT4_G128)
    rtn = output_mse(layer.x_test, layer.w, quantize_weight(layer.w, INT4_G128).dequantize())
    awq = output_mse(layer.x_test, layer.w, qw.dequantize() / s)  # (x / s) Q(W s)^T = x (Q(W s) / s)^T
    print(
        f"int4 g128 held-out output MSE: RTN {rtn:.4e}, AWQ {awq:.4e} ({rtn / awq:.2f}x), alpha {info.alpha}"
    )
    assert awq < rtn
    assert 0 < info.alpha < 1
    assert info.mse == min(info.mse_per_alpha) and info.mse_rtn == info.mse_per_alpha[0]
    # The outlier channels are the busiest ones, so they get the largest scales.
    assert set(np.argsort(s)[-len(layer.outliers) :]) == set(layer.outliers)


def test_alpha_zero_reproduces_rtn_exactly(layer):
    s, qw, info = awq_scales(layer.w, _absmean(layer.x_calib), layer.x_calib, INT4_G128, grid=1)
    rtn = quantize_weight(layer.w, INT4_G128)
    assert info.alphas == (0.0,)
    np.testing.assert_array_equal(s, np.ones(256, np.float32))
    np.testing.assert_array_equal(qw.codes, rtn.codes)
    np.testing.assert_array_equal(qw.scales, rtn.scales)


def test_scales_are_normalised_to_unit_geometric_midrange():
    s = awq_channel_scales(np.array([0.5, 2.0, 8.0, 1e-9]), 0.7)
    # max * min == 1 to float32 round-off (relative 1e-6)
    assert s.max() * s.min() == pytest.approx(1.0, rel=1e-6)
    assert np.all(np.diff(s[:3]) > 0)


@pytest.mark.parametrize(
    "spec",
    [
        INT4_G128,
        WeightSpec(get_format("fp4_e2m1"), "group", 32),
        WeightSpec(get_format("uint4"), "group", 64, symmetric=False),
        WeightSpec(get_format("int4"), "tensor"),
    ],
    ids=["int4_g128", "fp4_g32", "uint4_g64", "int4_tensor"],
)
def test_clip_search_lowers_error_further(layer, spec):
    s, qw, info = awq_scales(layer.w, _absmean(layer.x_calib), layer.x_calib, spec, search_clip=True)
    s0, qw0, _ = awq_scales(layer.w, _absmean(layer.x_calib), layer.x_calib, spec)
    held_clip = output_mse(layer.x_test, layer.w, qw.dequantize() / s)
    held_plain = output_mse(layer.x_test, layer.w, qw0.dequantize() / s0)
    print(
        f"{spec.fmt.name} {spec.granularity}: sample MSE {info.mse_rtn:.4e} -> scaled "
        f"{info.mse_scaled:.4e} -> "
        f"clipped {info.mse:.4e} (mean ratio {info.clip_ratio_mean:.3f}); "
        f"held-out {held_plain:.4e} -> {held_clip:.4e}"
    )
    assert info.mse < info.mse_scaled < info.mse_rtn
    assert held_clip < held_plain
    assert 0.5 < info.clip_ratio_mean < 1.0


def test_clip_search_ratio_one_is_rtn(layer):
    qw, ratio = clip_search(layer.w, layer.x_calib, INT4_G128, grid=1)
    np.testing.assert_array_equal(ratio, np.ones((64, 2)))
    np.testing.assert_array_equal(qw.codes, quantize_weight(layer.w, INT4_G128).codes)


def test_awq_rejects_bad_inputs(layer):
    with pytest.raises(CalibrationError, match="x_absmean"):
        awq_scales(layer.w, np.ones(10), layer.x_calib, INT4_G128)
    with pytest.raises(RecipeError, match="grid"):
        awq_scales(layer.w, _absmean(layer.x_calib), layer.x_calib, INT4_G128, grid=0)

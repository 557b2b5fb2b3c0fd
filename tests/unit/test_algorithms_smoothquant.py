"""SmoothQuant: an exact rewrite before quantization that makes W8A8 work on outlier activations."""

import numpy as np
import pytest

from qcompile.algorithms.smoothquant import S_MAX, S_MIN, search_alpha, smooth_scales, smoothed_error
from qcompile.algorithms.synthetic import synthetic_layer
from qcompile.errors import RecipeError
from qcompile.formats import get_format
from qcompile.quantizer import WeightSpec

INT8 = get_format("int8")
W8 = WeightSpec(INT8, "channel")


@pytest.fixture(scope="module")
def layer():
    return synthetic_layer(64, 256, 512, seed=0)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.85, 1.0])
def test_smoothing_without_quantization_is_exact(layer, alpha):
    s = smooth_scales(np.abs(layer.x_calib).max(axis=0), layer.w, alpha)
    xs = (layer.x_test / s).astype(np.float64)
    ws = (layer.w * s).astype(np.float64)
    ref = layer.x_test.astype(np.float64) @ layer.w.astype(np.float64).T
    # x/s and W*s are each rounded once to float32 (relative error <= u = 2^-24), so every product x_j
    # w_nj is off
    # by at most (2u + u^2) |x_j w_nj|; the float64 sums add ~1e-16 relative. Bound: 2.01 u (|x| @ |W|^T).
    bound = 2.01 * 2.0**-24 * (np.abs(layer.x_test).astype(np.float64) @ np.abs(layer.w).astype(np.float64).T)
    diff = np.abs(xs @ ws.T - ref)
    assert np.all(diff <= bound), float((diff / bound).max())


def test_w8a8_output_error_improves_on_outlier_activations(layer):
    alpha, s, qw, info = search_alpha(layer.x_calib, layer.w, INT8, W8)
    plain, _ = smoothed_error(layer.x_test, layer.w, np.ones(256, np.float32), INT8, W8)
    fixed, _ = smoothed_error(
        layer.x_test, layer.w, smooth_scales(np.abs(layer.x_calib).max(axis=0), layer.w), INT8, W8
    )
    searched, _ = smoothed_error(layer.x_test, layer.w, s, INT8, W8)
    print(
        f"w8a8 held-out output MSE: no smoothing {plain:.4e}, alpha 0.5 {fixed:.4e}, searched alpha {alpha} "
        f"{searched:.4e} ({plain / searched:.1f}x); sample {info.mse_unsmoothed:.4e} -> {info.mse:.4e}"
    )
    assert fixed < plain and searched < plain
    assert info.mse == min(info.mse_per_alpha) < info.mse_unsmoothed
    np.testing.assert_array_equal(
        qw.dequantize(), smoothed_error(layer.x_calib, layer.w, s, INT8, W8)[1].dequantize()
    )


def test_scales_formula_and_clamps():
    x_max = np.array([4.0, 1.0, 0.0, 9.0, 1e30])
    w = np.array([[1.0, -0.25, 3.0, 0.0, 1e-30]], np.float32)
    s = smooth_scales(x_max, w, 0.5)
    np.testing.assert_allclose(s[:2], [np.sqrt(4.0 / 1.0), np.sqrt(1.0 / 0.25)], rtol=1e-6)
    assert s[2] == 1.0 and s[3] == 1.0  # silent channel / all-zero weight column: nothing to migrate
    assert S_MIN <= s.min() and s.max() <= S_MAX


def test_alpha_out_of_range_is_a_recipe_error(layer):
    with pytest.raises(RecipeError, match=r"\[0, 1\]"):
        smooth_scales(np.ones(256), layer.w, 1.5)

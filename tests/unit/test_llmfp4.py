"""LLM-FP4: power-of-two split of activation scales (exact fold) and the format/clip search."""

from __future__ import annotations

import numpy as np
import pytest

from qcompile.errors import RecipeError
from qcompile.formats import FORMATS, get_format
from qcompile.llmfp4 import (
    CANDIDATES,
    fold_offsets,
    max_offset,
    offset_factors,
    quantize_activation,
    search_format,
    split_activation_scales,
)
from qcompile.quantizer import WeightSpec, quantize_weight

E4M3, E2M1 = FORMATS["fp8_e4m3fn"], FORMATS["fp4_e2m1"]


def _outlier_activations(seed=0, m=64, k=128):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, k)).astype(np.float32)
    x *= np.exp2(rng.integers(-3, 6, k)).astype(np.float32)  # channel magnitudes spread over 2^9
    return x


@pytest.mark.parametrize("fmt", [E4M3, E2M1])
def test_split_makes_every_channel_fit_one_scale(fmt):
    x = _outlier_activations()
    amax = np.abs(x).max(axis=0)
    rho, offsets = split_activation_scales(amax, fmt)
    assert offsets.dtype == np.int32 and offsets.shape == amax.shape
    assert offsets.min() >= 0 and offsets.max() <= max_offset(fmt)
    shifted = amax * 2.0 ** -offsets.astype(np.float64)
    unclamped = offsets < max_offset(fmt)
    assert np.all(shifted[unclamped] <= rho * fmt.max)  # fits: no clipping from the shared scale
    # and not wastefully: where o_j > 0, one offset less would not fit
    positive = offsets > 0
    assert np.all(amax[positive] * 2.0 ** -(offsets[positive] - 1.0) > rho * fmt.max)
    assert rho == np.float32(rho)


def test_split_clamps_at_the_format_exponent_range():
    amax = np.array([1.0, 2.0**10, 0.0, 3.0], np.float32)  # spread 2^10 > E2M1's 3 binades of offset
    rho, offsets = split_activation_scales(amax, E2M1)
    assert max_offset(E2M1) == 3 and max_offset(E4M3) == 15
    assert offsets[1] == 3 and offsets[2] == 0
    assert amax[1] * 2.0**-3 <= rho * E2M1.max  # the largest channel still fits
    with pytest.raises(RecipeError):
        split_activation_scales(np.array([1.0, np.nan]), E2M1)


def test_split_then_fold_keeps_the_matmul_exactly():
    # Tolerance: each product x_j 2^-o_j * W_nj 2^o_j is the very same float32 (powers of two are
    # exact), so the products are compared bit for bit; the summed matmul only gets float32
    # round-off slack (1e-6 relative) in case the BLAS kernel sums in another order.
    x = _outlier_activations(1)
    w = np.random.default_rng(2).standard_normal((32, x.shape[1])).astype(np.float32)
    rho, offsets = split_activation_scales(np.abs(x).max(axis=0), E4M3)
    assert offsets.max() > 0
    x_shift = x / offset_factors(offsets)[None, :]
    w_fold = fold_offsets(w, offsets)
    np.testing.assert_array_equal(x_shift[:, None, :] * w_fold[None, :, :], x[:, None, :] * w[None, :, :])
    ref = x @ w.T
    got = x_shift @ w_fold.T
    bound = 1e-6 * (np.abs(x) @ np.abs(w).T)
    assert np.all(np.abs(got - ref) <= bound), float(np.max(np.abs(got - ref) - bound))


def test_split_lowers_activation_quantization_error():
    # what the split is for: with per-channel offsets, small channels keep their resolution
    x = _outlier_activations(3)
    amax = np.abs(x).max(axis=0)
    rho, offsets = split_activation_scales(amax, E2M1)
    s = offset_factors(offsets)
    split = quantize_activation(x / s, E2M1, rho) * s
    plain = quantize_activation(x, E2M1, float(amax.max()) / E2M1.max)
    err_split, err_plain = np.sum((x - split) ** 2), np.sum((x - plain) ** 2)
    assert err_split < err_plain, (err_split, err_plain)


def _layer(seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_t(3, (48, 128)).astype(np.float32)  # heavy-tailed rows, as in LLM weights
    x = rng.standard_normal((96, 128)).astype(np.float32)
    return w, x


@pytest.mark.parametrize("act_fmt", [None, "fp8_e4m3fn"])
def test_search_is_at_least_as_good_as_min_max_e2m1_and_reports_real_errors(act_fmt):
    w, x = _layer(4)
    result = search_format(w, x, 4, act_fmt=act_fmt)
    assert set(result.errors) == set(CANDIDATES[4])
    assert result.fmt.name in CANDIDATES[4] and result.mse == min(result.errors.values())
    assert result.mse <= result.errors["fp4_e2m1"] <= result.default_mse  # clip 1.0 is in the grid
    assert result.clip.shape == (48,) and np.all((result.clip >= 0.5) & (result.clip <= 1.0))
    # recompute the chosen configuration independently
    qw = quantize_weight(w, WeightSpec(result.fmt, "channel"), scales=result.scales(w))
    xq = (
        x
        if act_fmt is None
        else quantize_activation(x, get_format(act_fmt), float(np.abs(x).max()) / get_format(act_fmt).max)
    )
    mse = np.mean((x.astype(np.float64) @ w.T - xq.astype(np.float64) @ qw.dequantize().T) ** 2)
    assert result.mse == pytest.approx(mse, rel=1e-9)
    plain = quantize_weight(w, WeightSpec(E2M1, "channel"))
    default = np.mean((x.astype(np.float64) @ w.T - xq.astype(np.float64) @ plain.dequantize().T) ** 2)
    assert result.default_mse == pytest.approx(default, rel=1e-9)


def test_search_six_bits_and_custom_candidates():
    w, x = _layer(5)
    result = search_format(w, x, 6)
    assert set(result.errors) == {"fp6_e3m2", "fp6_e2m3"}
    assert result.mse <= result.default_mse
    custom = search_format(w, x, 4, candidates=["e2m1", "e2m1_b2"])
    assert set(custom.errors) == {"fp4_e2m1", "fp4_e2m1_b2"}
    # a bias shift is a power-of-two scale: with per-channel min-max scales both grids give the same error
    assert custom.errors["fp4_e2m1"] == pytest.approx(custom.errors["fp4_e2m1_b2"], rel=1e-9)
    with pytest.raises(RecipeError, match="5-bit"):
        search_format(w, x, 5)

"""LoRC: a rank-r SVD correction of the quantization error, factors in float16 or int8."""

import numpy as np
import pytest

from qcompile.algorithms.layer import output_mse
from qcompile.algorithms.lorc import lorc
from qcompile.algorithms.synthetic import synthetic_layer
from qcompile.errors import RecipeError
from qcompile.formats import get_format
from qcompile.quantizer import WeightSpec, quantize_weight

N, K = 64, 256


@pytest.fixture(scope="module")
def case():
    lay = synthetic_layer(N, K, 512, seed=0)
    return lay, quantize_weight(lay.w, WeightSpec(get_format("int4"), "group", 128))


@pytest.mark.parametrize("factor_dtype", ["float16", "int8"])
@pytest.mark.parametrize("rank", [8, 32])
def test_lorc_reduces_weight_and_output_error(case, rank, factor_dtype):
    lay, qw = case
    a, b, info = lorc(lay.w, qw, rank, factor_dtype, x_sample=lay.x_calib)
    assert a.shape == (K, rank) and b.shape == (rank, N)
    w_hat = qw.dequantize()
    before = output_mse(lay.x_test, lay.w, w_hat)
    # The layer computes x Q(W)^T + (x A) B.
    y = lay.x_test.astype(np.float64) @ w_hat.T + (lay.x_test.astype(np.float64) @ a) @ b
    after = float(np.mean((lay.x_test.astype(np.float64) @ lay.w.T - y) ** 2))
    print(
        f"rank {rank} {factor_dtype}: +{info.added_bits_per_weight:.4f} bits/weight; weight MSE "
        f"{info.weight_mse_before:.4e} -> {info.weight_mse_after:.4e}; "
        f"held-out output MSE {before:.4e} -> {after:.4e}"
    )
    assert after < before
    assert info.weight_mse_after < info.weight_mse_before
    assert info.output_mse_after < info.output_mse_before
    # The rank-r SVD truncation is the best rank-r weight fit: rounding the factors may only add a
    # little to it.
    sigma = np.linalg.svd(lay.w.astype(np.float64) - w_hat, compute_uv=False)
    optimum = np.sum(sigma[rank:] ** 2) / (N * K)
    assert optimum <= info.weight_mse_after < optimum + 0.01 * info.weight_mse_before


def test_rank_zero_is_a_no_op(case):
    lay, qw = case
    a, b, info = lorc(lay.w, qw, 0, x_sample=lay.x_calib)
    assert a.shape == (K, 0) and b.shape == (0, N)
    assert info.added_bits_per_weight == 0.0
    assert info.weight_mse_after == info.weight_mse_before
    assert info.output_mse_after == info.output_mse_before


def test_bits_count(case):
    lay, qw = case
    _, _, fp16 = lorc(lay.w, qw, 8, "float16")
    _, _, int8 = lorc(lay.w, qw, 8, "int8")
    assert fp16.added_bits_per_weight == 8 * (K + N) * 16 / (N * K)
    assert int8.added_bits_per_weight == 8 * (K + N) * 8 / (N * K) + 2 * 8 * 32 / (
        N * K
    )  # + one scale per column


def test_factor_values_are_exact_in_their_dtype(case):
    lay, qw = case
    a, b, _ = lorc(lay.w, qw, 8, "float16")
    np.testing.assert_array_equal(a, a.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(b, b.astype(np.float16).astype(np.float32))
    a, b, info = lorc(lay.w, qw, 8, "int8")
    assert info.a_codes.dtype == np.int8 and np.abs(info.a_codes).max() == 127
    np.testing.assert_array_equal(a, info.a_codes.astype(np.float32) * info.a_scales[None, :])
    np.testing.assert_array_equal(b, info.b_codes.astype(np.float32) * info.b_scales[:, None])


def test_bad_options_are_recipe_errors(case):
    lay, qw = case
    with pytest.raises(RecipeError, match="rank"):
        lorc(lay.w, qw, N + 1)
    with pytest.raises(RecipeError, match="float16, int8"):
        lorc(lay.w, qw, 8, "bfloat16")

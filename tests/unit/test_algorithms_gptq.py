"""GPTQ on one synthetic layer: beats RTN on held-out tokens for every kind of grid, and is the OBS
recursion."""

import dataclasses

import numpy as np
import pytest

from qcompile.algorithms.gptq import _upper_cholesky_of_inverse, gptq, hessian_mse
from qcompile.algorithms.hessian import HessianAccumulator
from qcompile.algorithms.layer import output_mse
from qcompile.algorithms.synthetic import synthetic_layer
from qcompile.errors import CalibrationError
from qcompile.formats import get_format
from qcompile.quantizer import MIN_GROUP_EXP, WeightSpec, quantize_weight


@pytest.fixture(scope="module")
def layer():
    lay = synthetic_layer(64, 256, 512, seed=0)
    acc = HessianAccumulator(256)
    for chunk in np.array_split(lay.x_calib, 4):
        acc.add(chunk)
    return lay, acc.hessian()


CASES = {
    "int4_g128": WeightSpec(get_format("int4"), "group", 128),
    "int4_g32": WeightSpec(get_format("int4"), "group", 32),
    "fp4_e2m1_g32": WeightSpec(get_format("fp4_e2m1"), "group", 32),
    "fp6_e3m2_channel": WeightSpec(get_format("fp6_e3m2"), "channel"),
    "int8_channel": WeightSpec(get_format("int8"), "channel"),
    "uint4_asym_g64": WeightSpec(get_format("uint4"), "group", 64, symmetric=False),
    "fp4_g32_pow2_ratio": WeightSpec(get_format("fp4_e2m1"), "group", 32, scale_constraint="pow2_ratio"),
    "fp8_e4m3_tensor_pow2": WeightSpec(get_format("fp8_e4m3fn"), "tensor", scale_constraint="pow2"),
    "int4_g64_fp16_scales": WeightSpec(get_format("int4"), "group", 64, scale_dtype="float16"),
    "int4_g32_offsets": WeightSpec(get_format("int4"), "group", 32, offsets=True),
    "fp4_e2m1_g64_offsets": WeightSpec(
        get_format("fp4_e2m1"), "group", 64, scale_dtype="float16", offsets=True
    ),
}


@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_gptq_output_error_below_rtn(layer, case, act_order):
    lay, h = layer
    spec = CASES[case]
    rtn = output_mse(lay.x_test, lay.w, quantize_weight(lay.w, spec).dequantize())
    qw, info = gptq(lay.w, h, spec, act_order=act_order)
    err = output_mse(lay.x_test, lay.w, qw.dequantize())
    print(
        f"{case} act_order={act_order}: held-out output MSE RTN {rtn:.4e} GPTQ {err:.4e} ({rtn / err:.2f}x); "
        f"calibration {info.calib_mse_rtn:.4e} -> {info.calib_mse:.4e}"
    )
    assert err < rtn
    assert info.calib_mse < info.calib_mse_rtn
    assert qw.scales.shape == (64, spec.groups(256) if spec.granularity != "tensor" else 1)
    if spec.scale_constraint == "pow2_ratio":
        assert np.all((qw.group_exp >= MIN_GROUP_EXP) & (qw.group_exp <= 0))
        np.testing.assert_array_equal(
            qw.scales, qw.channel_scale[:, None] * np.exp2(qw.group_exp.astype(np.float32))
        )
    if spec.scale_dtype == "float16":
        np.testing.assert_array_equal(qw.scales, qw.scales.astype(np.float16).astype(np.float32))
    if spec.offsets:
        assert qw.offsets.shape == qw.scales.shape
        np.testing.assert_array_equal(qw.offsets, qw.offsets.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("case", ["int4_g32", "int4_g32_offsets", "uint4_asym_g64", "fp4_g32_pow2_ratio"])
def test_static_groups_keep_rtn_grid_and_still_beat_rtn(layer, case, act_order):
    lay, h = layer
    spec = CASES[case]
    rtn = quantize_weight(lay.w, spec)
    qw, info = gptq(lay.w, h, spec, act_order=act_order, static_groups=True)
    for field in ("scales", "zero_points", "offsets", "group_exp"):
        np.testing.assert_array_equal(getattr(qw, field), getattr(rtn, field), err_msg=field)
    assert not np.array_equal(qw.codes, rtn.codes)  # the same grid, GPTQ's rounding
    assert info.calib_mse < info.calib_mse_rtn
    assert output_mse(lay.x_test, lay.w, qw.dequantize()) < output_mse(lay.x_test, lay.w, rtn.dequantize())


@pytest.mark.parametrize("act_order", [False, True])
def test_result_does_not_depend_on_block_size(layer, act_order):
    # Lazy block updates are only a reordering of the same float32 arithmetic (round-off ~1e-6), far from the
    # rounding ties of this seeded case, so the codes must be identical and the lazy group scales (taken from
    # updated weights) equal up to that round-off.
    lay, h = layer
    spec = CASES["int4_g32"]
    ref, _ = gptq(lay.w, h, spec, block_size=256, act_order=act_order)
    for bs in (1, 7, 32, 128):
        other, _ = gptq(lay.w, h, spec, block_size=bs, act_order=act_order)
        np.testing.assert_array_equal(other.codes, ref.codes)
        np.testing.assert_allclose(other.scales, ref.scales, rtol=1e-5)


def _obs_reference(w, h, spec, damp, act_order=False):
    """Textbook optimal-brain-surgeon order-preserving recursion in float64 with an explicit inverse; a
    group's scale (symmetric integer specs) is taken from the updated weights when its first column comes
    up."""
    k = w.shape[1]
    perm = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(k)
    position = np.argsort(perm)
    work = w.astype(np.float64)[:, perm]
    hp = h[np.ix_(perm, perm)]
    hinv = np.linalg.inv(hp + damp * np.mean(np.diag(hp)) * np.eye(k))
    channel = dataclasses.replace(spec, granularity="channel")
    size = k // spec.groups(k)
    scales = quantize_weight(w, spec).scales
    ready = np.full(scales.shape[1], spec.granularity != "group")
    codes = np.zeros(w.shape, spec.fmt.code_dtype)
    for i in range(k):
        g = perm[i] // size if spec.granularity == "group" else 0
        if not ready[g]:
            scales[:, g] = quantize_weight(work[:, position[g * size : (g + 1) * size]], channel).scales[:, 0]
            ready[g] = True
        q = quantize_weight(work[:, i : i + 1].astype(np.float32), channel, scales=scales[:, g : g + 1])
        codes[:, perm[i]] = q.codes[:, 0]
        err = (work[:, i] - q.dequantize()[:, 0]) / hinv[i, i]
        work[:, i + 1 :] -= np.outer(err, hinv[i, i + 1 :])
        hinv = hinv - np.outer(hinv[:, i], hinv[i, :]) / hinv[i, i]
    return codes


def test_gptq_equals_obs_recursion(layer):
    lay, h = layer
    spec = CASES["int4_g32"]
    spec = dataclasses.replace(spec, granularity="channel")
    qw, _ = gptq(lay.w, h, spec, damp=0.01)
    # float32 GPTQ vs the float64 recursion: identical codes expected on this seeded case.
    np.testing.assert_array_equal(qw.codes, _obs_reference(lay.w, h, spec, 0.01))


@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_with_lazy_group_scales_equals_obs_recursion(layer, act_order):
    # GPTQ runs in float32 (round-off ~1e-6 relative). A code can differ from the float64 recursion only where
    # an updated weight lies that close to a rounding boundary (about 1 in 10^5 codes), and the changed error
    # then moves the columns after it a little; at most 1 in 1000 codes may differ.
    lay, h = layer
    spec = CASES["int4_g32"]
    qw, _ = gptq(lay.w, h, spec, damp=0.01, act_order=act_order)
    differ = np.mean(qw.codes != _obs_reference(lay.w, h, spec, 0.01, act_order))
    print(f"act_order={act_order}: {differ:.2e} of the codes differ from the float64 recursion")
    assert differ <= 1e-3


@pytest.mark.parametrize("act_order", [False, True])
@pytest.mark.parametrize("dead", [[], [3, 100, 255]])
def test_calib_mse_is_the_hessian_weighted_error(layer, act_order, dead):
    # calib_mse comes from GPTQ's own errors (sum(E^2) less the dampening and the dead channels' ones);
    # hessian_mse computes it from H directly. Both float32 with float64 sums: relative 1e-4 is generous.
    lay, _ = layer
    x = lay.x_calib.copy()
    x[:, dead] = 0
    h = 2.0 / len(x) * x.T.astype(np.float64) @ x
    for case in ("int4_g32", "uint4_asym_g64", "fp6_e3m2_channel"):
        qw, info = gptq(lay.w, h, CASES[case], act_order=act_order)
        assert info.dead_columns == len(dead)
        assert info.calib_mse == pytest.approx(hessian_mse(lay.w, qw.dequantize(), h), rel=1e-4)
        rtn = quantize_weight(lay.w, CASES[case]).dequantize()
        assert info.calib_mse_rtn == pytest.approx(hessian_mse(lay.w, rtn, h), rel=1e-6)


@pytest.mark.parametrize("case", ["int4_g32", "uint4_asym_g64", "fp8_e4m3_tensor_pow2"])
def test_diagonal_hessian_gives_rtn_exactly(layer, case):
    # With uncorrelated inputs there is nothing to compensate: GPTQ must reduce to round to nearest, bit
    # for bit.
    lay, h = layer
    spec = CASES[case]
    qw, _ = gptq(lay.w, np.diag(np.diag(h)), spec, act_order=True)
    rtn = quantize_weight(lay.w, spec)
    np.testing.assert_array_equal(qw.codes, rtn.codes)
    np.testing.assert_array_equal(qw.scales, rtn.scales)


@pytest.mark.parametrize("act_order", [False, True])
def test_dead_columns_are_rounded_to_nearest(layer, act_order):
    lay, _ = layer
    x = lay.x_calib.copy()
    dead = [3, 100, 255]
    x[:, dead] = 0
    acc = HessianAccumulator(256)
    acc.add(x)
    spec = CASES["int8_channel"]
    qw, info = gptq(lay.w, acc.hessian(), spec, act_order=act_order)
    assert info.dead_columns == 3
    np.testing.assert_array_equal(qw.codes[:, dead], quantize_weight(lay.w, spec).codes[:, dead])
    assert np.isfinite(qw.dequantize()).all()


def test_hessian_mse_is_the_calibration_output_mse(layer):
    lay, h = layer
    approx = quantize_weight(lay.w, CASES["int4_g128"]).dequantize()
    # Same quantity by two float32 BLAS routes (sums in float64); relative round-off 1e-5 is generous.
    assert hessian_mse(lay.w, approx, h) == pytest.approx(output_mse(lay.x_calib, lay.w, approx), rel=1e-5)


def test_bad_hessian_is_a_calibration_error(layer):
    lay, h = layer
    with pytest.raises(CalibrationError, match="Hessian"):
        gptq(lay.w, h[:10, :10], CASES["int8_channel"])
    with pytest.raises(CalibrationError, match="not positive definite"):
        gptq(lay.w, 2 * np.ones((256, 256)) - np.eye(256), CASES["int8_channel"], damp=0.0)  # eigenvalue -1


def test_upper_cholesky_of_inverse_in_float32():
    # U upper-triangular with U^T U H = I, for a Hessian damped like GPTQ's whose channels span 1e-2..1e2
    # (cond(H) in the thousands): float32 round-off times cond(L), 1e-4 is generous.
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 256)) * np.exp(rng.uniform(np.log(1e-2), np.log(1e2), 256))
    h = x.T @ x / 300
    h += 0.01 * np.mean(np.diag(h)) * np.eye(256)
    u = _upper_cholesky_of_inverse(h.copy()).astype(np.float64)
    assert not np.tril(u, -1).any() and np.all(np.diag(u) > 0)
    residual = np.abs(u.T @ u @ h - np.eye(256)).max()
    print(f"cond(H) {np.linalg.cond(h):.3g}, max |U^T U H - I| {residual:.2e}")
    assert residual < 1e-4

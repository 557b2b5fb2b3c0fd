"""GPTQ on one synthetic layer: beats RTN on held-out tokens for every kind of grid, and is the OBS
recursion."""

import dataclasses

import numpy as np
import pytest

from qcompile.algorithms.gptq import gptq, hessian_mse
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
def test_result_does_not_depend_on_block_size(layer, act_order):
    # Lazy block updates are only a reordering of the same float64 arithmetic (round-off ~1e-13), far from the
    # rounding ties of this seeded case, so the codes must be identical.
    lay, h = layer
    spec = CASES["int4_g32"]
    ref, _ = gptq(lay.w, h, spec, block_size=256, act_order=act_order)
    for bs in (1, 7, 32, 128):
        other, _ = gptq(lay.w, h, spec, block_size=bs, act_order=act_order)
        np.testing.assert_array_equal(other.codes, ref.codes)
        np.testing.assert_array_equal(other.scales, ref.scales)


def _obs_reference(w, h, spec, damp):
    """Textbook optimal-brain-surgeon order-preserving recursion with an explicit inverse (per-channel
    scales)."""
    work = w.astype(np.float64).copy()
    hd = h + damp * np.mean(np.diag(h)) * np.eye(len(h))
    hinv = np.linalg.inv(hd)
    scales = quantize_weight(w, spec).scales
    codes = np.zeros(w.shape, spec.fmt.code_dtype)
    for i in range(w.shape[1]):
        q = quantize_weight(work[:, i : i + 1].astype(np.float32), spec, scales=scales)
        codes[:, i] = q.codes[:, 0]
        err = (work[:, i] - q.dequantize()[:, 0]) / hinv[i, i]
        work[:, i + 1 :] -= np.outer(err, hinv[i, i + 1 :])
        hinv = hinv - np.outer(hinv[:, i], hinv[i, :]) / hinv[i, i]
    return codes


def test_gptq_equals_obs_recursion(layer):
    lay, h = layer
    spec = CASES["int4_g32"]
    spec = dataclasses.replace(spec, granularity="channel")
    qw, _ = gptq(lay.w, h, spec, damp=0.01)
    # Cholesky vs explicit inverse: float64 round-off only; identical codes expected on this seeded case.
    np.testing.assert_array_equal(qw.codes, _obs_reference(lay.w, h, spec, 0.01))


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
    # Same quantity by two float64 routes; relative round-off 1e-9 is generous.
    assert hessian_mse(lay.w, approx, h) == pytest.approx(output_mse(lay.x_calib, lay.w, approx), rel=1e-9)


def test_bad_hessian_is_a_calibration_error(layer):
    lay, h = layer
    with pytest.raises(CalibrationError, match="Hessian"):
        gptq(lay.w, h[:10, :10], CASES["int8_channel"])
    with pytest.raises(CalibrationError, match="not positive definite"):
        gptq(lay.w, 2 * np.ones((256, 256)) - np.eye(256), CASES["int8_channel"], damp=0.0)  # eigenvalue -1

"""Exponent folding (ZeroQuant-FP): integer field arithmetic == ml_dtypes' float cast, zero tolerance."""

from __future__ import annotations

import dataclasses

import ml_dtypes
import numpy as np
import pytest

from qcompile.fold import (
    EXACT_K_RANGE,
    FoldError,
    codes_to_fp8,
    constraint_costs,
    fold_group_exponents,
    fp4_to_fp8_by_exponent,
    int4_to_fp8_by_exponent,
)
from qcompile.formats import FORMATS
from qcompile.quantizer import MIN_GROUP_EXP, WeightSpec, quantize_weight

FP4, INT4, E4M3 = FORMATS["fp4_e2m1"], FORMATS["int4"], FORMATS["fp8_e4m3fn"]


def _e4m3_code(value: float) -> int:
    return int(np.array([value], np.float32).astype(ml_dtypes.float8_e4m3fn).view(np.uint8)[0])


def test_exact_ranges_are_what_the_formats_allow():
    assert EXACT_K_RANGE["fp4_e2m1"] == range(-5, 7)
    assert EXACT_K_RANGE["int4"] == range(-6, 6)
    assert MIN_GROUP_EXP in EXACT_K_RANGE["fp4_e2m1"] and MIN_GROUP_EXP in EXACT_K_RANGE["int4"]


@pytest.mark.parametrize("k", list(EXACT_K_RANGE["fp4_e2m1"]))
def test_fp4_every_code_matches_ml_dtypes(k):
    for code in range(16):
        value = float(FP4.decode(np.array([code], np.uint8))[0]) * 2.0**k
        got = fp4_to_fp8_by_exponent(code, k)
        assert got == _e4m3_code(value), f"code {code:#x} k={k}: got {got:#04x}"
        assert got & 0x7F != 0x7F  # never the NaN code
        # the landing value is a normal (exponent field >= 1) or zero
        assert (got & 0x78) or not (got & 0x7F)


@pytest.mark.parametrize("k", list(EXACT_K_RANGE["int4"]))
def test_int4_every_code_matches_ml_dtypes(k):
    for code in range(16):
        value = float(code - 16 if code >= 8 else code) * 2.0**k
        got = int4_to_fp8_by_exponent(code, k)
        assert got == _e4m3_code(value), f"code {code:#x} (value {value}) k={k}: got {got:#04x}"


@pytest.mark.parametrize(
    "fn,fmt,bad",
    [(fp4_to_fp8_by_exponent, "fp4_e2m1", [-6, -9, 7, 10]), (int4_to_fp8_by_exponent, "int4", [-7, 6])],
)
def test_k_outside_the_exact_range_is_refused_with_a_reason(fn, fmt, bad):
    for k in bad:
        with pytest.raises(FoldError, match=rf"{fmt} code \* 2\^{k}: k must be in"):
            fn(3, k)


def test_just_outside_the_range_really_is_inexact_or_subnormal():
    # the reason for the bounds: at k = -6 the FP4 0.5 lands on an E4M3 subnormal, at k = 7 6.0 overflows
    assert _e4m3_code(0.5 * 2.0**-6) & 0x78 == 0
    assert 6.0 * 2.0**7 > E4M3.max
    assert _e4m3_code(1.0 * 2.0**-7) & 0x78 == 0 and 8.0 * 2.0**6 > E4M3.max


@pytest.mark.parametrize("fmt_name", ["fp4_e2m1", "int4"])
def test_vectorized_matches_scalar(fmt_name):
    scalar = fp4_to_fp8_by_exponent if fmt_name == "fp4_e2m1" else int4_to_fp8_by_exponent
    ks = np.array(list(EXACT_K_RANGE[fmt_name]))
    codes = np.arange(16, dtype=np.uint8)
    got = codes_to_fp8(codes[None, :], fmt_name, ks[:, None])
    want = np.array([[scalar(int(c), int(k)) for c in codes] for k in ks], np.uint8)
    np.testing.assert_array_equal(got, want)
    int8_codes = (codes.view(np.int8) << 4) >> 4  # the quantizer's int4 codes are int8 values
    if fmt_name == "int4":
        np.testing.assert_array_equal(codes_to_fp8(int8_codes[None, :], "int4", ks[:, None]), want)
    with pytest.raises(FoldError):
        codes_to_fp8(codes, fmt_name, np.full(16, ks[0] - 1))


def _weight(seed=0, n=8, k=256):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, k)).astype(np.float32)
    w[:, :32] *= 40.0  # one loud group per row: other groups' ratios go well below 1
    w[0, 32:64] *= 1e-4  # a group whose ratio is below 2^-5: M2 clamps it
    return w


@pytest.mark.parametrize("fmt_name", ["fp4_e2m1", "int4"])
def test_fold_m2_reproduces_the_quantizer_exactly(fmt_name):
    w = _weight()
    spec = WeightSpec(FORMATS[fmt_name], "group", 32, scale_constraint="pow2_ratio")
    qw = quantize_weight(w, spec)
    folded = fold_group_exponents(qw)
    assert folded.group_exp.dtype == np.int8 and folded.group_exp.shape == (8, 8)
    assert folded.channel_scale.dtype == np.float32 and folded.channel_scale.shape == (8,)
    assert folded.group_exp.min() == MIN_GROUP_EXP and folded.group_exp.max() == 0
    # fp8 operand * channel scale == the quantizer's dequantized weight, bit for bit
    np.testing.assert_array_equal(folded.dequantize(), qw.dequantize())
    fp8 = folded.fp8_codes()
    values = FORMATS[fmt_name].decode(qw.codes) * np.repeat(
        np.exp2(folded.group_exp.astype(np.float32)), 32, 1
    )
    np.testing.assert_array_equal(fp8, values.astype(ml_dtypes.float8_e4m3fn).view(np.uint8))


def test_fold_m1_powers_of_two():
    w = np.random.default_rng(1).standard_normal((8, 256)).astype(np.float32)
    w[:, :32] *= 8.0
    w[0, 32:64] = 0.0  # an all-zero group: its exponent is free and gets clamped, not refused
    qw = quantize_weight(w, WeightSpec(FP4, "group", 32, scale_constraint="pow2"))
    folded = fold_group_exponents(qw)
    assert np.all(np.log2(folded.channel_scale) == np.round(np.log2(folded.channel_scale)))
    assert folded.group_exp.max() == 0 and folded.group_exp.min() >= -5
    np.testing.assert_array_equal(folded.dequantize(), qw.dequantize())


def test_fold_m1_clamps_then_refuses_a_spread_beyond_the_exact_range():
    w = _weight(2)
    w[0, 32:64] *= 1e-3  # ratio ~2^-15 to the row's loud group
    qw = quantize_weight(w, WeightSpec(FP4, "group", 32, scale_constraint="pow2"))
    # the quantizer's documented fallback: the quiet group gets 2^-5 of the row's largest scale
    assert qw.scales[0, 1] == qw.scales[0].max() * 2.0**-5
    fold_group_exponents(qw)
    qw.scales[0, 1] = qw.scales[0].max() * 2.0**-7  # a hand-made spread the fold cannot take,
    qw.codes[0, 32:64] = 2  # on a group that is not all zero (those are exempt)
    with pytest.raises(FoldError, match=r"group exponent -\d+ is outside \[-5, 0\]"):
        fold_group_exponents(qw)


def test_fold_refuses_unconstrained_scales_and_other_formats():
    w = _weight()
    with pytest.raises(FoldError, match="scale_constraint"):
        fold_group_exponents(quantize_weight(w, WeightSpec(FP4, "group", 32)))
    with pytest.raises(FoldError, match="fp6_e3m2"):
        fold_group_exponents(
            quantize_weight(w, WeightSpec(FORMATS["fp6_e3m2"], "group", 32, scale_constraint="pow2_ratio"))
        )


def test_constraint_costs_are_measured_and_consistent():
    w = _weight(3)
    spec = WeightSpec(FP4, "group", 32)
    costs = constraint_costs(w, spec)
    assert set(costs) == {"none", "pow2", "pow2_ratio"}
    for name, c in costs.items():
        assert np.isfinite(c["sqnr_db"]) and c["sqnr_db"] > 0, (name, c)
        # recompute independently: the figure is what the constrained quantizer really gives
        qw = quantize_weight(w, dataclasses.replace(spec, scale_constraint=name))
        err = np.sum((w.astype(np.float64) - qw.dequantize()) ** 2)
        assert c["sqnr_db"] == pytest.approx(
            10 * np.log10(np.sum(w.astype(np.float64) ** 2) / err), rel=1e-12
        )
    # both constraints only round scales up, by less than a factor 2 (M2's clamp aside)
    assert costs["none"]["scale_inflation_log2"] == 0.0
    assert 0.0 <= costs["pow2"]["scale_inflation_log2"] < 1.0
    assert 0.0 <= costs["pow2_ratio"]["scale_inflation_log2"] < 1.0
    assert costs["pow2_ratio"]["bits_per_weight"] < costs["none"]["bits_per_weight"]

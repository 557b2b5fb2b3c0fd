"""qcompile.formats against ml_dtypes and against an exact brute-force reference: zero tolerance.

ml_dtypes turns overflow into NaN (e4m3fn) or inf (e5m2) where our encode saturates, so the
oracle is ml_dtypes' cast of `clip(x, -max, max)`. Formats ml_dtypes lacks (any ExMy, any bias)
are checked against `_Reference`, which enumerates the grid with Python fractions.
"""

from __future__ import annotations

import fractions

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qcompile.errors import RecipeError
from qcompile.formats import FORMATS, get_format, minifloat

ML_FLOATS = ["fp8_e4m3fn", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1"]
ML_DTYPE = {
    "fp8_e4m3fn": ml_dtypes.float8_e4m3fn,
    "fp8_e5m2": ml_dtypes.float8_e5m2,
    "fp6_e3m2": ml_dtypes.float6_e3m2fn,
    "fp6_e2m3": ml_dtypes.float6_e2m3fn,
    "fp4_e2m1": ml_dtypes.float4_e2m1fn,
}
F32 = st.floats(width=32, allow_nan=False, allow_infinity=True)


def _codes_equal(got: np.ndarray, want: np.ndarray, x: np.ndarray) -> None:
    bad = np.nonzero(np.asarray(got, np.uint8) != np.asarray(want, np.uint8))[0]
    assert bad.size == 0, f"x={x[bad[:5]]} got codes {got[bad[:5]]} want {want[bad[:5]]}"


def _oracle(fmt, x: np.ndarray) -> np.ndarray:
    return np.clip(x, -fmt.max, fmt.max).astype(np.float32).astype(ML_DTYPE[fmt.name]).view(np.uint8)


# ---- decode: every code ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ML_FLOATS)
def test_every_minifloat_code_decodes_like_ml_dtypes(name):
    fmt = FORMATS[name]
    codes = np.arange(1 << fmt.bits, dtype=np.uint8)
    want = codes.view(ML_DTYPE[name]).astype(np.float32)
    got = fmt.decode(codes)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = ~np.isnan(want)
    np.testing.assert_array_equal(got[finite], want[finite])
    np.testing.assert_array_equal(np.signbit(got[finite]), np.signbit(want[finite]))  # -0 too


@pytest.mark.parametrize(
    "name,ml", [("int8", np.int8), ("int4", ml_dtypes.int4), ("uint4", ml_dtypes.uint4), ("uint8", np.uint8)]
)
def test_every_integer_code_decodes_like_ml_dtypes(name, ml):
    fmt = FORMATS[name]
    values = np.arange(fmt.qmin, fmt.qmax + 1)
    codes = values.astype(fmt.code_dtype)
    np.testing.assert_array_equal(fmt.decode(codes), values.astype(ml).astype(np.float32))
    assert fmt.ml_dtype == np.dtype(ml)


@pytest.mark.parametrize("name", ML_FLOATS)
def test_max_and_grid_match_ml_dtypes(name):
    fmt = FORMATS[name]
    assert fmt.max == float(ml_dtypes.finfo(ML_DTYPE[name]).max)
    assert fmt.min_subnormal == float(ml_dtypes.finfo(ML_DTYPE[name]).smallest_subnormal)
    grid = fmt.grid()
    assert np.all(np.diff(grid) > 0) and grid[0] == -fmt.max and grid[-1] == fmt.max
    assert fmt.ml_dtype == np.dtype(ML_DTYPE[name])


def test_onnx_dtypes():
    assert FORMATS["fp4_e2m1"].onnx_dtype == "FLOAT4E2M1"
    assert FORMATS["fp8_e4m3fn"].onnx_dtype == "FLOAT8E4M3FN"
    assert FORMATS["fp8_e5m2"].onnx_dtype == "FLOAT8E5M2"
    assert FORMATS["fp6_e3m2"].onnx_dtype is None and FORMATS["fp6_e2m3"].onnx_dtype is None
    assert FORMATS["int4"].onnx_dtype == "INT4" and FORMATS["uint4"].onnx_dtype == "UINT4"
    assert minifloat(4, 3, 9, "fn").onnx_dtype is None  # another bias is another type


# ---- encode: property tests against ml_dtypes -----------------------------------------------


@pytest.mark.parametrize("name", ML_FLOATS)
@settings(max_examples=60, deadline=None)
@given(xs=st.lists(F32, min_size=1, max_size=64))
def test_encode_random_float32_matches_ml_dtypes(name, xs):
    fmt = FORMATS[name]
    x = np.array(xs, np.float32)
    _codes_equal(fmt.encode(x), _oracle(fmt, x), x)


@pytest.mark.parametrize("name", ML_FLOATS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_encode_ties_subnormals_and_overflow_match_ml_dtypes(name, data):
    fmt = FORMATS[name]
    grid = fmt.grid().astype(np.float64)
    i = data.draw(st.integers(0, len(grid) - 2))
    tie = (grid[i] + grid[i + 1]) / 2  # exact midpoint: M+1 significant bits fit float32
    near_tie = np.nextafter(np.float32(tie), np.float32(data.draw(st.sampled_from([-np.inf, np.inf]))))
    sub = data.draw(st.floats(-4 * fmt.min_subnormal, 4 * fmt.min_subnormal, width=32))
    sign = data.draw(st.sampled_from([-1.0, 1.0]))
    over = data.draw(st.floats(fmt.max, float(np.finfo(np.float32).max), width=32)) * sign
    x = np.array([tie, near_tie, sub, over, np.float32(fmt.max) * 1.0625, -np.inf], np.float32)
    assert float(x[0]) == tie
    _codes_equal(fmt.encode(x), _oracle(fmt, x), x)


@pytest.mark.parametrize("name", ML_FLOATS)
def test_every_midpoint_at_once(name):
    fmt = FORMATS[name]
    grid = fmt.grid().astype(np.float64)
    mids = ((grid[1:] + grid[:-1]) / 2).astype(np.float32)
    x = np.concatenate([mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf)])
    _codes_equal(fmt.encode(x), _oracle(fmt, x), x)


@pytest.mark.parametrize("name", ML_FLOATS + ["fp4_e3m0", "fp4_e1m2", "e4m3_b9"])
def test_decode_encode_is_identity_on_the_grid(name):
    fmt = get_format(name)
    grid = fmt.grid()
    np.testing.assert_array_equal(fmt.decode(fmt.encode(grid)), grid)
    zero = np.array([0.0, -0.0], np.float32)
    assert list(np.signbit(fmt.decode(fmt.encode(zero)))) == [False, True]


@pytest.mark.parametrize("name", ["fp8_e4m3fn", "fp8_e5m2"])
def test_nan_encodes_to_a_nan_code(name):
    fmt = FORMATS[name]
    assert np.isnan(fmt.decode(fmt.encode(np.array([np.nan, -np.nan], np.float32)))).all()


@pytest.mark.parametrize("name", ["fp6_e3m2", "fp4_e2m1"])
def test_nan_is_refused_by_formats_without_nan(name):
    with pytest.raises(ValueError, match="NaN"):
        FORMATS[name].encode(np.array([1.0, np.nan], np.float32))


# ---- integers: round half to even, saturate ---------------------------------------------------


@pytest.mark.parametrize("name", ["int8", "int4", "uint4", "uint8"])
@settings(max_examples=60, deadline=None)
@given(xs=st.lists(st.one_of(F32, st.integers(-300, 300).map(lambda i: i + 0.5)), min_size=1, max_size=64))
def test_integer_encode_is_round_half_even_saturating(name, xs):
    fmt = FORMATS[name]
    x = np.array(xs, np.float32)
    want = [
        min(max(round(float(np.clip(v, -1e30, 1e30))), fmt.qmin), fmt.qmax) for v in x
    ]  # round(): half-even
    got = fmt.encode(x)
    assert got.dtype == fmt.code_dtype
    np.testing.assert_array_equal(got.astype(np.int64), want)
    np.testing.assert_array_equal(got.astype(fmt.ml_dtype).astype(np.int64), want)


# ---- generic ExMy against an exact brute-force reference -----------------------------------------


class _Reference:
    """Enumerate every code's value as a Fraction; nearest grid value, ties to the even code."""

    def __init__(self, e: int, m: int, bias: int, special: str):
        self.e, self.m, self.special = e, m, special
        self.values: list[fractions.Fraction | None] = []
        for code in range(1 << (e + m)):
            exp, man = code >> m, code & ((1 << m) - 1)
            top = exp == (1 << e) - 1
            if (special == "ieee" and top) or (special == "fn" and code == (1 << (e + m)) - 1):
                self.values.append(None)
                continue
            frac = fractions.Fraction(man, 1 << m)
            scale = fractions.Fraction(2) ** ((exp if exp else 1) - bias)
            self.values.append((frac if exp == 0 else 1 + frac) * scale)
        self.finite = [(v, c) for c, v in enumerate(self.values) if v is not None]

    def encode(self, x: float) -> int:
        top = self.finite[-1][0]
        target = top if abs(x) == float("inf") else min(abs(fractions.Fraction(x)), top)
        best = min(self.finite, key=lambda vc: (abs(vc[0] - target), vc[1] % 2))
        sign = (1 << (self.e + self.m)) if np.signbit(x) else 0
        return best[1] | sign

    def decode(self, code: int) -> float:
        magnitude = code & ((1 << (self.e + self.m)) - 1)
        v = self.values[magnitude]
        if v is None and self.special == "ieee" and magnitude == ((1 << self.e) - 1) << self.m:
            return -float("inf") if code >> (self.e + self.m) else float("inf")
        if v is None:
            return float("nan")
        return -float(v) if code >> (self.e + self.m) else float(v)


GENERIC = [
    (3, 0, None, "none"),
    (1, 2, None, "none"),
    (2, 2, None, "none"),
    (4, 3, 9, "none"),
    (4, 3, 9, "fn"),
    (5, 2, None, "none"),
    (3, 2, 5, "none"),
    (2, 1, -1, "none"),
    (3, 4, None, "ieee"),
]


def _generic(e, m, bias, special):
    fmt = minifloat(e, m, bias, special)
    return fmt, _Reference(e, m, fmt.bias, special)


@pytest.mark.parametrize("e,m,bias,special", GENERIC)
def test_generic_exmy_decodes_every_code_like_the_reference(e, m, bias, special):
    fmt, ref = _generic(e, m, bias, special)
    codes = np.arange(1 << fmt.bits)
    want = np.array([ref.decode(int(c)) for c in codes], np.float32)
    got = fmt.decode(codes.astype(np.uint8))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(want)], want[~np.isnan(want)])  # +-inf included
    assert fmt.max == float(ref.finite[-1][0])


@pytest.mark.parametrize("e,m,bias,special", GENERIC)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_generic_exmy_encodes_like_the_reference(e, m, bias, special, data):
    fmt, ref = _generic(e, m, bias, special)
    grid = fmt.grid().astype(np.float64)
    i = data.draw(st.integers(0, len(grid) - 2))
    xs = [
        data.draw(F32),
        (grid[i] + grid[i + 1]) / 2,
        grid[i],
        data.draw(st.floats(-4 * fmt.min_subnormal, 4 * fmt.min_subnormal, width=32)),
        data.draw(st.floats(-4 * fmt.max, 4 * fmt.max, width=32)),
    ]
    x = np.array(xs, np.float32)
    want = np.array([ref.encode(float(v)) for v in x], np.uint8)
    _codes_equal(fmt.encode(x), want, x)


def test_generic_exmy_every_midpoint_matches_the_reference():
    for e, m, bias, special in GENERIC:
        fmt, ref = _generic(e, m, bias, special)
        grid = fmt.grid().astype(np.float64)
        mids = ((grid[1:] + grid[:-1]) / 2).astype(np.float32)
        x = np.concatenate([mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf)])
        _codes_equal(fmt.encode(x), np.array([ref.encode(float(v)) for v in x], np.uint8), x)


@pytest.mark.parametrize("name", ML_FLOATS)
def test_encode_takes_any_layout_and_dtype(name):
    fmt = FORMATS[name]
    x = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32) * fmt.max / 2
    whole = fmt.encode(x)
    np.testing.assert_array_equal(fmt.encode(x[:, ::3]), whole[:, ::3])
    np.testing.assert_array_equal(fmt.encode(x.T), whole.T)
    np.testing.assert_array_equal(fmt.encode(x.astype(np.float64)), whole)
    scalar = fmt.encode(x[1, 2])
    assert scalar.shape == () and scalar.dtype == np.uint8 and scalar == whole[1, 2]


def test_bias_shift_scales_the_grid_by_a_power_of_two():
    base = get_format("fp4_e2m1")
    for k in range(-3, 4):
        np.testing.assert_array_equal(base.with_bias(base.bias - k).grid(), base.grid() * np.float32(2.0**k))


# ---- names and refusals ----------------------------------------------------------------------


def test_get_format_parses_exmy_names():
    assert get_format("e2m1") is FORMATS["fp4_e2m1"]
    assert get_format("fp6_e3m2") is FORMATS["fp6_e3m2"]
    assert get_format("e4m3fn") is FORMATS["fp8_e4m3fn"]
    f = get_format("e4m3_b9")
    assert (f.exp_bits, f.man_bits, f.bias, f.name) == (4, 3, 9, "fp8_e4m3_b9")
    assert get_format("e2m1_b-1").bias == -1


@pytest.mark.parametrize("name", ["e0m3", "e5m3", "fp9", "e3m0fn"])
def test_bad_format_names_are_refused(name):
    with pytest.raises(RecipeError):
        get_format(name)

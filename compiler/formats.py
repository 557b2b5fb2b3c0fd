"""Number formats: integers and minifloats (any ExMy with any exponent bias), one registry.

Every format encodes float32 to integer codes (round to nearest even, saturating at +-max) and
decodes codes exactly. Codes are held one per element in uint8 (minifloats, raw bit patterns)
or int8/uint8 (integers, their values). ml_dtypes is the oracle the tests hold them to.
"""

from __future__ import annotations

import dataclasses
import functools
import re

import numpy as np

from qcompile.errors import RecipeError


@dataclasses.dataclass(frozen=True)
class IntFormat:
    name: str
    bits: int
    signed: bool

    kind = "int"

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def max(self) -> float:
        """Largest magnitude a symmetric scale maps amax onto (7 for int4, 127 for int8)."""
        return float(self.qmax)

    @property
    def code_dtype(self) -> np.dtype:
        return np.dtype(np.int8 if self.signed else np.uint8)

    @property
    def onnx_dtype(self) -> str:
        return f"{'' if self.signed else 'U'}INT{self.bits}"

    @property
    def ml_dtype(self):
        import ml_dtypes

        return np.dtype(
            {
                (8, True): np.int8,
                (8, False): np.uint8,
                (4, True): ml_dtypes.int4,
                (4, False): ml_dtypes.uint4,
                (2, True): ml_dtypes.int2,
                (2, False): ml_dtypes.uint2,
            }[(self.bits, self.signed)]
        )

    def encode(self, x: np.ndarray, *, scratch: bool = False) -> np.ndarray:
        """Round half to even, saturate. `scratch`: `x` is a float32 temporary that may be overwritten."""
        x = np.asarray(x, np.float32)
        out = x if scratch and x.flags.writeable else None
        x = np.rint(x, out=out)
        return np.clip(x, self.qmin, self.qmax, out=x).astype(self.code_dtype)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(codes).astype(np.float32)

    def grid(self) -> np.ndarray:
        return np.arange(self.qmin, self.qmax + 1, dtype=np.float32)


@dataclasses.dataclass(frozen=True)
class MinifloatFormat:
    """Sign, `exp_bits` exponent, `man_bits` mantissa; subnormals always.

    special: "ieee" (top exponent is inf/NaN), "fn" (only the all-ones code is NaN, no inf),
    "none" (every code is a finite number: FP6 and FP4).
    """

    name: str
    exp_bits: int
    man_bits: int
    bias: int
    special: str = "none"

    kind = "float"

    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def code_dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    @functools.cached_property
    def _magnitudes(self) -> np.ndarray:
        """Value of every magnitude code 0 .. 2^(E+M)-1 (inf/NaN codes as nan)."""
        codes = np.arange(1 << (self.exp_bits + self.man_bits))
        exp, man = codes >> self.man_bits, codes & ((1 << self.man_bits) - 1)
        frac = man / float(1 << self.man_bits)
        vals = np.where(exp == 0, frac * 2.0 ** (1 - self.bias), (1 + frac) * 2.0 ** (exp - self.bias))
        top = (1 << self.exp_bits) - 1
        if self.special == "ieee":
            vals = np.where(exp == top, np.where(man == 0, np.inf, np.nan), vals)
        elif self.special == "fn":
            vals = np.where(codes == codes[-1], np.nan, vals)
        return vals.astype(np.float64)

    @functools.cached_property
    def _finite_count(self) -> int:
        return int(np.isfinite(self._magnitudes).sum())

    @property
    def max(self) -> float:
        return float(self._magnitudes[self._finite_count - 1])

    @property
    def min_subnormal(self) -> float:
        return float(self._magnitudes[1])

    @property
    def onnx_dtype(self) -> str | None:
        return _ONNX_FLOAT_TYPES.get((self.exp_bits, self.man_bits, self.bias, self.special))

    @property
    def ml_dtype(self):
        import ml_dtypes

        name = _ML_DTYPES.get((self.exp_bits, self.man_bits, self.bias, self.special))
        return np.dtype(getattr(ml_dtypes, name)) if name else None

    @functools.cached_property
    def _values(self) -> np.ndarray:
        """float32 value of every byte; the bits above the sign bit are ignored."""
        mag = self._magnitudes.astype(np.float32)
        return np.tile(np.concatenate([mag, -mag]), 256 // (2 * len(mag)))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self._values[np.asarray(codes, np.uint8)]

    @property
    def _unread_bits(self) -> int:
        return 23 - self.man_bits - 1

    @functools.cached_property
    def _rounding_table(self) -> np.ndarray:
        """Magnitude code of every float32 magnitude, keyed by its exponent, its top man_bits + 1 mantissa
        bits (the format's and the round bit) and a sticky bit (any lower bit set). Every grid value and
        midpoint between two needs no lower bits, so all magnitudes that share a key round alike."""
        low = self._unread_bits
        keys = np.arange(1 << (32 - low), dtype=np.uint32)
        mag = ((keys >> 1) << low | (keys & 1)).view(np.float32)  # a key's least magnitude
        mag = np.minimum(np.where(np.isnan(mag), 0, mag), self.max)  # NaN codes are set by encode
        finite = self._magnitudes[: self._finite_count]
        hi = np.clip(np.searchsorted(finite, mag), 1, len(finite) - 1)
        lo = hi - 1
        d_lo, d_hi = mag - finite[lo], finite[hi] - mag
        return np.where((d_hi < d_lo) | ((d_hi == d_lo) & (hi % 2 == 0)), hi, lo).astype(np.uint8)

    def encode(self, x: np.ndarray, *, scratch: bool = False) -> np.ndarray:
        """Round to nearest, ties to the even code, saturating at +-max; -0 keeps its sign. (`scratch`:
        as IntFormat.encode; the table lookup here makes its own arrays.)"""
        x = np.asarray(x, np.float32)
        nan = np.isnan(x)
        has_nan = bool(nan.any())
        if has_nan and self.special == "none":
            raise ValueError(f"NaN cannot be encoded in {self.name}: it has no NaN")
        bits = x.view(np.uint32)
        low = np.uint32(self._unread_bits)
        mag = bits & np.uint32(0x7FFFFFFF)
        sticky = (mag & np.uint32((1 << int(low)) - 1)) != 0
        code = self._rounding_table[(mag >> low) << np.uint32(1) | sticky]
        code |= (bits >> np.uint32(31)).astype(np.uint8) << np.uint8(self.exp_bits + self.man_bits)
        if has_nan:
            nan_code = (
                (1 << (self.bits - 1)) - 1
                if self.special == "fn"
                else ((1 << (self.bits - 1)) - 1) ^ ((1 << (self.man_bits - 1)) - 1)
            )
            code = np.where(nan, nan_code, code)
        return np.asarray(code, np.uint8)

    def grid(self) -> np.ndarray:
        """Every finite value, negative and positive, sorted (zero once)."""
        pos = self._magnitudes[: self._finite_count].astype(np.float32)
        return np.concatenate([-pos[:0:-1], pos])

    def with_bias(self, bias: int) -> MinifloatFormat:
        return minifloat(self.exp_bits, self.man_bits, bias, self.special)


Format = IntFormat | MinifloatFormat

_ONNX_FLOAT_TYPES = {
    (4, 3, 7, "fn"): "FLOAT8E4M3FN",
    (5, 2, 15, "ieee"): "FLOAT8E5M2",
    (2, 1, 1, "none"): "FLOAT4E2M1",
}
_ML_DTYPES = {
    (4, 3, 7, "fn"): "float8_e4m3fn",
    (5, 2, 15, "ieee"): "float8_e5m2",
    (3, 2, 3, "none"): "float6_e3m2fn",
    (2, 3, 1, "none"): "float6_e2m3fn",
    (2, 1, 1, "none"): "float4_e2m1fn",
}


def minifloat(
    exp_bits: int, man_bits: int, bias: int | None = None, special: str = "none"
) -> MinifloatFormat:
    if exp_bits < 1 or man_bits < 0 or 1 + exp_bits + man_bits > 8:
        raise RecipeError(f"e{exp_bits}m{man_bits}: need 1 <= exponent bits and at most 8 bits in all")
    if special not in ("none", "fn", "ieee") or (special == "ieee" and exp_bits < 2):
        raise RecipeError(
            f"e{exp_bits}m{man_bits}: unknown or impossible special-value convention {special!r}"
        )
    if special == "fn" and man_bits == 0:
        raise RecipeError(f"e{exp_bits}m0: the 'fn' convention needs a mantissa bit")
    default_bias = (1 << (exp_bits - 1)) - 1
    bias = default_bias if bias is None else bias
    suffix = "" if bias == default_bias else f"_b{bias}"
    name = f"fp{1 + exp_bits + man_bits}_e{exp_bits}m{man_bits}{'fn' if special == 'fn' else ''}{suffix}"
    return MinifloatFormat(name, exp_bits, man_bits, bias, special)


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        IntFormat("int8", 8, True),
        IntFormat("uint8", 8, False),
        IntFormat("int4", 4, True),
        IntFormat("uint4", 4, False),
        minifloat(4, 3, special="fn"),
        minifloat(5, 2, special="ieee"),
        minifloat(3, 2),
        minifloat(2, 3),
        minifloat(2, 1),
        minifloat(3, 0),
        minifloat(1, 2),
    )
}

_EXMY = re.compile(r"(?:fp\d+_)?e(\d)m(\d)(fn)?(?:_b(-?\d+))?")


def get_format(name: str) -> Format:
    """A registered format by name, or any minifloat spelled `e<E>m<M>[fn][_b<bias>]`."""
    if name in FORMATS:
        return FORMATS[name]
    match = _EXMY.fullmatch(name)
    if match:
        e, m, fn, bias = match.groups()
        fmt = minifloat(int(e), int(m), None if bias is None else int(bias), "fn" if fn else "none")
        return FORMATS.get(fmt.name, fmt)
    raise RecipeError(
        f"unknown number format {name!r}; known: {', '.join(FORMATS)} or any e<E>m<M>[_b<bias>]"
    )

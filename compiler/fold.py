"""Fold power-of-two scales into exponent biases (ZeroQuant-FP): 4-bit code * 2^k -> FP8 E4M3 code.

A factor 2^k on an ExMy value is the same bits read with exponent bias `b - k`. So a 4-bit
weight code times a power-of-two group ratio becomes an E4M3 code by integer arithmetic on the
exponent field alone: no float multiply, no rounding. This is what the W4A8 kernel does before
its FP8 MMA; the functions here are its bit-exact reference.

FP4 E2M1 (bias 1) -> E4M3 (bias 7), sign kept:
- normal (e2 in 1..3, m1): e4 = e2 + 6 + k, mantissa bit to the top of the 3-bit field;
- subnormal 0.5 (e2 = 0, m1 = 1): the E4M3 normal e4 = 6 + k, m3 = 0;
- zero stays zero.
INT4 (-8..7): the E4M3 codes of the 16 values at k = 0 (a table), plus k on the exponent field.
`EXACT_K_RANGE[fmt]` is every k for which all codes land on an E4M3 normal (or zero), so the
field add is exact; outside it some values would need E4M3 subnormals (or overflow 448).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qcompile.errors import LayoutError
from qcompile.formats import FORMATS, Format
from qcompile.quantizer import MIN_GROUP_EXP, QuantizedWeight, WeightSpec, quantize_weight, sqnr_db

E4M3_MAN_BITS = 3
E4M3_EXP_MASK = 0x78
# FP4 (0.5 .. 6): 6 + k >= 1 and 2 + 7 + k <= 15.  INT4 (1 .. 8): 7 + k >= 1 and 3 + 7 + k <= 15.
EXACT_K_RANGE = {"fp4_e2m1": range(-5, 7), "int4": range(-6, 6)}


class FoldError(LayoutError):
    """A power-of-two factor cannot be folded exactly into the FP8 exponent."""


def _check_k(fmt_name: str, k: int) -> None:
    exact = EXACT_K_RANGE[fmt_name]
    if k not in exact:
        raise FoldError(
            f"{fmt_name} code * 2^{k}: k must be in [{exact.start}, {exact.stop - 1}] for the "
            "exponent-field add to stay on E4M3 normals (smaller k needs E4M3 subnormals, "
            "larger k overflows 448)"
        )


def fp4_to_fp8_by_exponent(code: int, k: int) -> int:
    """E4M3 code of `decode_e2m1(code) * 2^k`, by integer arithmetic on the bit fields only."""
    _check_k("fp4_e2m1", k)
    sign, exp2, man1 = (code >> 3) & 1, (code >> 1) & 3, code & 1
    if exp2 == 0 and man1 == 0:
        return sign << 7
    if exp2 == 0:  # 0.5 = 2^-1: an E4M3 normal with exponent field 6 + k
        exp4, man3 = 6 + k, 0
    else:
        exp4, man3 = exp2 + 6 + k, man1 << 2
    return (sign << 7) | (exp4 << E4M3_MAN_BITS) | man3


def _int4_table() -> np.ndarray:
    """E4M3 codes of the INT4 values -8..7, indexed by the 4-bit two's complement code."""
    values = FORMATS["int4"].decode(np.arange(16, dtype=np.uint8).view(np.int8) << 4 >> 4)
    return FORMATS["fp8_e4m3fn"].encode(values)


INT4_E4M3_TABLE = _int4_table()


def int4_to_fp8_by_exponent(code: int, k: int) -> int:
    """E4M3 code of `int4(code) * 2^k`: table lookup at k = 0, then k added to the exponent field."""
    _check_k("int4", k)
    base = int(INT4_E4M3_TABLE[code & 0xF])
    if base & 0x7F == 0:
        return base
    return base + (k << E4M3_MAN_BITS)  # the exponent field stays in 1..15: no carry into the sign


def codes_to_fp8(codes: np.ndarray, fmt_name: str, k: np.ndarray) -> np.ndarray:
    """Vectorized: E4M3 codes of 4-bit `codes` (any shape) times 2^k (broadcast), via the same fields."""
    k = np.asarray(k, np.int16)
    bad = ~np.isin(k, np.array(list(EXACT_K_RANGE[fmt_name])))
    if bad.any():
        _check_k(fmt_name, int(k[bad].flat[0]))
    c = np.asarray(codes).astype(np.uint8) & 0xF
    if fmt_name == "fp4_e2m1":
        sign, exp2, man1 = (c >> 3) & 1, ((c >> 1) & 3).astype(np.int16), c & 1
        exp4 = np.where(exp2 == 0, 6, exp2 + 6) + k
        out = (sign << 7) | (exp4 << 3).astype(np.uint8) | np.where(exp2 == 0, 0, man1 << 2)
        return np.where((c & 7) == 0, sign << 7, out).astype(np.uint8)
    base = INT4_E4M3_TABLE[c].astype(np.int16)
    return np.where(base & 0x7F == 0, base, base + (k << 3)).astype(np.uint8)


@dataclasses.dataclass
class FoldedWeight:
    """What the W4A8 kernel reads: value = decode(code) * 2^group_exp * channel_scale[n]."""

    codes: np.ndarray  # [N, K] 4-bit codes as the quantizer made them
    group_exp: np.ndarray  # int8 [N, G], every entry in EXACT_K_RANGE[fmt.name], <= 0
    channel_scale: np.ndarray  # float32 [N]
    fmt: Format

    def fp8_codes(self) -> np.ndarray:
        """E4M3 codes [N, K] of decode(code) * 2^group_exp: the kernel's MMA operand."""
        g = self.group_exp.shape[1]
        k = np.repeat(self.group_exp.astype(np.int16), self.codes.shape[1] // g, axis=1)
        return codes_to_fp8(self.codes, self.fmt.name, k)

    def dequantize(self) -> np.ndarray:
        fp8 = FORMATS["fp8_e4m3fn"].decode(self.fp8_codes())
        return fp8 * self.channel_scale[:, None]


def fold_group_exponents(qw: QuantizedWeight) -> FoldedWeight:
    """Split the scales of an M2 ("pow2_ratio") or M1 ("pow2") weight into channel scale x 2^group_exp.

    M2: the quantizer's own (channel_scale, group_exp); it already clamps group_exp at
    MIN_GROUP_EXP = -5 (groups that would need a smaller ratio get the coarser grid
    2^-5 * channel_scale, so the fold stays exact). M1: every scale is a power of two; the
    channel scale is the row's largest and group_exp = log2(scale / channel scale) <= 0. An M1
    row whose scales span more than the exact range is refused (FoldError), not re-rounded.
    """
    fmt, spec = qw.spec.fmt, qw.spec
    if fmt.name not in EXACT_K_RANGE:
        raise FoldError(f"W4A8 folding takes fp4_e2m1 or int4 codes, not {fmt.name}")
    if qw.zero_points is not None or qw.offsets is not None:
        raise FoldError("W4A8 folding needs symmetric scales (no zero points or offsets)")
    if spec.scale_constraint == "pow2_ratio":
        exp, channel = np.asarray(qw.group_exp, np.int16), np.asarray(qw.channel_scale, np.float32)
    elif spec.scale_constraint == "pow2":
        scales = np.asarray(qw.scales, np.float32)
        channel = scales.max(axis=1)
        ratio = np.log2(scales / channel[:, None])
        if not np.array_equal(ratio, np.round(ratio)):
            raise FoldError("scale_constraint 'pow2' weight has scales that are not powers of two")
        exp = ratio.astype(np.int16)
    else:
        raise FoldError(
            f"W4A8 folding needs scale_constraint 'pow2_ratio' (M2) or 'pow2' (M1), "
            f"not {spec.scale_constraint!r}"
        )
    exact = EXACT_K_RANGE[fmt.name]
    n, k = qw.codes.shape
    empty = ~(fmt.decode(qw.codes) != 0).reshape(n, exp.shape[1], -1).any(axis=2)
    exp = np.where(empty, np.maximum(exp, exact.start), exp)  # an all-zero group's exponent is free
    low = int(exp.min())
    if low < exact.start or int(exp.max()) > 0:
        raise FoldError(
            f"group exponent {low} is outside [{exact.start}, 0]: the FP8 exponent add would "
            f"not be exact for {fmt.name} (quantize with scale_constraint 'pow2_ratio', which "
            f"clamps at {MIN_GROUP_EXP})"
        )
    return FoldedWeight(np.asarray(qw.codes), exp.astype(np.int8), channel.astype(np.float32), fmt)


def constraint_costs(w: np.ndarray, spec: WeightSpec) -> dict:
    """Weight SQNR (dB) of `w[N, K]` with unconstrained, M1 (pow2) and M2 (pow2_ratio) scales.

    Also the mean log2 inflation of the scales over the unconstrained ones (>= 0 by
    construction: both constraints round scales up) and the bits per weight of each.
    """
    w = np.asarray(w, np.float32)
    out = {}
    base = None
    for constraint in ("none", "pow2", "pow2_ratio"):
        s = dataclasses.replace(spec, scale_constraint=constraint)
        qw = quantize_weight(w, s)
        if base is None:
            base = qw.scales
        out[constraint] = {
            "sqnr_db": float(sqnr_db(w, qw.dequantize())),
            "scale_inflation_log2": float(np.mean(np.log2(qw.scales / base))),
            "bits_per_weight": s.bits_per_weight(*w.shape),
        }
    return out

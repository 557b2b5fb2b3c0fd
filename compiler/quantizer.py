"""Round-to-nearest weight quantization of a `W[N, K]` matrix onto any registered format.

Granularity: per tensor, per output channel, or per group of `g` consecutive input channels.
Scales are symmetric (`amax / format.max`; for signed integers a group whose extreme value is
negative maps it onto the most negative code, so the whole code range is used) unless an asymmetric integer
format is asked for
(integer zero points) or float offsets are (`w = s * decode(q) + m` per scale group: the group's
[min, max] spans the format's whole grid, m is a float16 value added by a side branch); they can be
constrained to powers of two (ZeroQuant-FP M1) or to power-of-two ratios under one
real scale per output channel (M2), and rounded to float16 when a kernel reads them so.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qcompile.errors import LayoutError, RecipeError
from qcompile.formats import Format, IntFormat

GRANULARITIES = ("tensor", "channel", "group")
SCALE_CONSTRAINTS = ("none", "pow2", "pow2_ratio")
# Group exponents (relative to the row's largest scale) below this make FP4 -> FP8 exponent
# arithmetic leave E4M3's normal range: such groups get the coarser grid 2^MIN_GROUP_EXP times
# the row's scale instead (documented fallback, M1 and M2 alike).
MIN_GROUP_EXP = -5


@dataclasses.dataclass(frozen=True)
class WeightSpec:
    fmt: Format
    granularity: str = "channel"
    group_size: int = 128
    symmetric: bool = True
    scale_constraint: str = "none"
    scale_dtype: str = "float32"
    offsets: bool = False  # a float16 offset per scale group: w = s * decode(q) + m
    # signed integers: a group whose extreme value is negative maps it to the most negative code (-8, -128),
    # as onnxruntime does; scales stay positive (TensorRT requires it), so a positive extreme maps to qmax
    full_range: bool = True

    def __post_init__(self):
        if self.granularity not in GRANULARITIES:
            raise RecipeError(f"unknown granularity {self.granularity!r}; known: {', '.join(GRANULARITIES)}")
        if self.scale_constraint not in SCALE_CONSTRAINTS:
            raise RecipeError(
                f"unknown scale constraint {self.scale_constraint!r}; known: {', '.join(SCALE_CONSTRAINTS)}"
            )
        if not self.symmetric and not (isinstance(self.fmt, IntFormat) and not self.fmt.signed):
            raise RecipeError(
                f"asymmetric quantization needs an unsigned integer format, not {self.fmt.name}"
            )
        if self.offsets and not (self.symmetric and self.scale_constraint == "none"):
            raise RecipeError("float offsets take signed codes without zero points or power-of-two scales")
        if self.scale_dtype not in ("float32", "float16"):
            raise RecipeError(f"scale dtype must be float32 or float16, not {self.scale_dtype!r}")

    def groups(self, k: int) -> int:
        """How many scales one output channel has for input dimension `k`."""
        if self.granularity == "group":
            if k % self.group_size:
                raise LayoutError(f"K={k} is not a multiple of the group size {self.group_size}")
            return k // self.group_size
        return 1

    def bits_per_weight(self, n: int, k: int) -> float:
        scale_bits = 16 if self.scale_dtype == "float16" else 32
        per_scale = scale_bits + (0 if self.symmetric else 8) + (16 if self.offsets else 0)
        if self.granularity == "tensor":
            return self.fmt.bits + per_scale / (n * k)
        if self.scale_constraint == "pow2_ratio":
            return self.fmt.bits + 8 * self.groups(k) / k + 32 / k
        return self.fmt.bits + per_scale * self.groups(k) / k


@dataclasses.dataclass
class QuantizedWeight:
    """Codes [N, K], scales [N, G] (G scales per output channel), optional zero points or offsets [N, G]."""

    spec: WeightSpec
    codes: np.ndarray
    scales: np.ndarray
    zero_points: np.ndarray | None = None
    channel_scale: np.ndarray | None = None  # [N], M2 only: scales = channel_scale * 2^group_exp
    group_exp: np.ndarray | None = None  # [N, G] int8, M2 only
    offsets: np.ndarray | None = None  # [N, G] float16 values as float32, spec.offsets only

    def rows(self, r0: int, r1: int) -> QuantizedWeight:
        """Output channels r0:r1 (views)."""

        def part(a):
            return None if a is None else a[r0:r1]

        return QuantizedWeight(
            self.spec,
            self.codes[r0:r1],
            self.scales[r0:r1],
            part(self.zero_points),
            part(self.channel_scale),
            part(self.group_exp),
            part(self.offsets),
        )

    def dequantize(self) -> np.ndarray:
        n, k = self.codes.shape
        g = self.scales.shape[1]
        vals = self.spec.fmt.decode(self.codes).reshape(n, g, k // g)
        if self.zero_points is not None:
            vals -= self.zero_points.astype(np.float32)[:, :, None]
        vals *= self.scales.astype(np.float32)[:, :, None]
        if self.offsets is not None:
            vals += self.offsets[:, :, None]
        return vals.reshape(n, k)


def _amax(w: np.ndarray, spec: WeightSpec) -> np.ndarray:
    """Per scale group [N, G], the magnitude that symmetric_scales maps onto `fmt.max`: amax, or with
    `full_range` amax * qmax / |qmin| where the group's extreme is negative (it lands on qmin exactly)."""
    n, k = w.shape
    grouped = w.reshape(1, 1, -1) if spec.granularity == "tensor" else w.reshape(n, spec.groups(k), -1)
    hi, lo = grouped.max(axis=2), grouped.min(axis=2)
    amax = np.maximum(hi, -lo)
    fmt = spec.fmt
    if spec.full_range and isinstance(fmt, IntFormat) and fmt.signed:
        amax = np.where(-lo > hi, amax * np.float32(fmt.qmax / -fmt.qmin), amax)
    return np.broadcast_to(amax, (n, amax.shape[1])).astype(np.float32)


def _pow2_ceil(x: np.ndarray) -> np.ndarray:
    return np.exp2(np.ceil(np.log2(x))).astype(np.float32)


def symmetric_scales(
    amax: np.ndarray, spec: WeightSpec
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Scales [N, G] from group maxima, with the spec's constraint; also M2's (channel_scale, group_exp)."""
    tiny = np.finfo(np.float32).tiny
    scales = np.maximum(amax / spec.fmt.max, tiny).astype(np.float32)
    if spec.scale_dtype == "float16":
        scales = np.clip(scales, 2.0**-24, 65504).astype(np.float16).astype(np.float32)
    if spec.scale_constraint == "pow2":
        pow2 = _pow2_ceil(scales)  # the same fallback as M2: no group below 2^MIN_GROUP_EXP of its row
        return np.maximum(pow2, pow2.max(axis=1, keepdims=True) * np.float32(2.0**MIN_GROUP_EXP)), None, None
    if spec.scale_constraint == "pow2_ratio":
        channel = scales.max(axis=1)
        exp = np.clip(np.ceil(np.log2(scales / channel[:, None])), MIN_GROUP_EXP, 0).astype(np.int8)
        return (channel[:, None] * np.exp2(exp.astype(np.float32))).astype(np.float32), channel, exp
    return scales, None, None


def offset_params(lo: np.ndarray, hi: np.ndarray, spec: WeightSpec) -> tuple[np.ndarray, np.ndarray]:
    """(scales, offsets) that map each group's [lo, hi] onto the format's whole grid [min code, max]."""
    low_code = float(spec.fmt.grid().min())
    scales = np.maximum((hi - lo) / (spec.fmt.max - low_code), np.finfo(np.float32).tiny).astype(np.float32)
    if spec.scale_dtype == "float16":
        scales = np.clip(scales, 2.0**-24, 65504).astype(np.float16).astype(np.float32)
    offsets = np.clip(lo - low_code * scales, -65504, 65504).astype(np.float16).astype(np.float32)
    return scales, offsets


def quantize_weight(w: np.ndarray, spec: WeightSpec, scales: np.ndarray | None = None) -> QuantizedWeight:
    """Round-to-nearest quantization of `w[N, K]`; `scales` [N, G] overrides the amax scales
    (and `(scales, offsets)` the range-derived pair of an offsets spec)."""
    w = np.asarray(w, np.float32)
    if not np.isfinite(w).all():
        raise LayoutError("weight holds NaN or infinity")
    n, k = w.shape
    g = spec.groups(k)
    channel, exp = None, None
    if spec.offsets:
        if scales is None:
            grouped = w.reshape(n, g, -1)
            lo, hi = grouped.min(axis=2), grouped.max(axis=2)
            if spec.granularity == "tensor":
                lo, hi = np.full_like(lo, lo.min()), np.full_like(hi, hi.max())
            scales, offsets = offset_params(lo, hi, spec)
        else:
            scales, offsets = scales
        reps = k // scales.shape[1]
        codes = spec.fmt.encode((w - np.repeat(offsets, reps, axis=1)) / np.repeat(scales, reps, axis=1))
        return QuantizedWeight(spec, codes, scales.astype(np.float32), offsets=offsets.astype(np.float32))
    if spec.symmetric:
        if scales is None:
            scales, channel, exp = symmetric_scales(_amax(w, spec), spec)
        zero = None
    else:
        grouped = w.reshape(n, g, -1)
        lo, hi = np.minimum(grouped.min(axis=2), 0), np.maximum(grouped.max(axis=2), 0)
        if scales is None:
            scales = np.maximum((hi - lo) / spec.fmt.qmax, np.finfo(np.float32).tiny).astype(np.float32)
            if spec.scale_dtype == "float16":
                scales = scales.astype(np.float16).astype(np.float32)
        zero = np.clip(np.rint(-lo / scales), 0, spec.fmt.qmax).astype(np.uint8)
    # w / scale per group through broadcasting: the same divisions as repeating the scales, no copies
    shifted = w.reshape(n, g, k // g) / scales[:, :, None]
    if zero is not None:
        shifted += zero.astype(np.float32)[:, :, None]
    codes = spec.fmt.encode(shifted, scratch=True)
    return QuantizedWeight(spec, codes.reshape(n, k), scales.astype(np.float32), zero, channel, exp)


def clip_searchable(spec: WeightSpec) -> bool:
    """Whether mse_clipped_scales applies: symmetric scales without offsets or a power-of-two constraint."""
    return spec.symmetric and not spec.offsets and spec.scale_constraint == "none"


def mse_clipped_scales(w: np.ndarray, spec: WeightSpec, grid: int = 20) -> np.ndarray:
    """Per-group symmetric scales [N, G]: of the plain scale (full-range where the spec says so) and amax /
    max
    shrunk by each ratio in [0.5, 1], the one that minimizes the group's weight squared error, so no group
    gets worse than plain RTN. (The full-range scale amax / 8 is ratio 7/8 of amax / 7: searching from
    amax / max keeps the candidates between the two.) For minifloats, whose grid is symmetric, this is the
    best-fitting scale on the grid of ratios."""
    if not clip_searchable(spec):
        raise RecipeError("mse_clip takes symmetric scales without offsets or a power-of-two constraint")
    w = np.asarray(w, np.float32)
    n, k = w.shape
    amax = _amax(w, dataclasses.replace(spec, full_range=False))
    best_err, best = None, None
    for ratio in [None, *np.linspace(1.0, 0.5, grid + 1)]:
        scales = symmetric_scales(_amax(w, spec) if ratio is None else amax * np.float32(ratio), spec)[0]
        err = (w - quantize_weight(w, spec, scales).dequantize()) ** 2
        err = (
            err.reshape(n, scales.shape[1], -1).sum(axis=2)
            if spec.granularity != "tensor"
            else np.full((n, 1), err.sum())
        )
        if best is None:
            best_err, best = err, scales
        else:
            better = err < best_err
            best_err, best = np.where(better, err, best_err), np.where(better, scales, best)
    return best


def sqnr_db(reference: np.ndarray, approx: np.ndarray) -> float:
    """10 log10(|ref|^2 / |ref - approx|^2); inf when exact."""
    ref = np.asarray(reference, np.float64)
    err = float(np.sum((ref - approx) ** 2))
    sig = float(np.sum(ref**2))
    if err == 0:
        return float("inf")
    return 10 * np.log10(max(sig, 1e-300) / err)

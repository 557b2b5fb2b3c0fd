"""LLM-FP4: per-channel activation scales as powers of two folded into weights; format + clip search.

Direction (used everywhere in qcompile): channel j of the activation is multiplied by 2^-o_j,
the matching weight input channel (column j of W[N, K]) by 2^o_j, o_j >= 0. Then every channel
fits one per-tensor scale `rho_scale`, the effective scale of channel j is rho_scale * 2^o_j,
and x @ W.T is unchanged (exact: the products are the same floats barring under/overflow).
This is LLM-FP4's "pre-shifted exponent bias" with the shared scale taken at the small
channels: quantizing channel j with bias rho + o_j is the same as scaling it by 2^-o_j.

`search_format` is LLM-FP4's per-layer search: the minifloat format (4 bits: E2M1, E3M0, E1M2;
6 bits: E3M2, E2M3) and, per output channel, a clip ratio on the channel max (a real-valued
exponent bias: clip c is bias b - log2 c), minimizing the layer's output MSE on calibration
activations.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qcompile.errors import RecipeError
from qcompile.formats import Format, MinifloatFormat, get_format
from qcompile.quantizer import WeightSpec, quantize_weight

CANDIDATES = {4: ("fp4_e2m1", "fp4_e3m0", "fp4_e1m2"), 6: ("fp6_e3m2", "fp6_e2m3")}
DEFAULT = {4: "fp4_e2m1", 6: "fp6_e3m2"}
CLIP_RATIOS = tuple(np.round(np.linspace(0.5, 1.0, 21), 3))


def max_offset(fmt: Format) -> int:
    """Largest per-channel offset: the format's number of binades, 2^E - 1 (LLM-FP4's clamp)."""
    if isinstance(fmt, MinifloatFormat):
        return (1 << fmt.exp_bits) - 1
    return fmt.bits - 1


def split_activation_scales(channel_amax: np.ndarray, fmt: Format) -> tuple[float, np.ndarray]:
    """(rho_scale, offsets int [K]): channel j gets scale rho_scale * 2^offsets[j].

    rho_scale is the smallest positive channel scale amax_j / fmt.max, raised if needed so the
    largest channel fits within the maximal offset; o_j = ceil(log2(scale_j / rho_scale)) clamped
    to [0, max_offset(fmt)], so `amax_j * 2^-o_j <= rho_scale * fmt.max` wherever o_j is not clamped.
    """
    amax = np.asarray(channel_amax, np.float64)
    if amax.ndim != 1 or not np.isfinite(amax).all() or (amax < 0).any():
        raise RecipeError("channel maxima must be a finite non-negative vector")
    scales = amax / fmt.max
    positive = scales[scales > 0]
    top = max_offset(fmt)
    if positive.size == 0:
        return 1.0, np.zeros(amax.shape, np.int32)
    rho = max(positive.min(), positive.max() * 2.0**-top)
    rho32 = np.float32(rho)
    rho = float(rho32 if rho32 >= rho else np.nextafter(rho32, np.float32(np.inf)))  # never below
    offsets = np.ceil(np.log2(np.maximum(scales, 1e-300) / rho))
    offsets = np.clip(offsets, 0, top).astype(np.int32)
    return rho, offsets


def offset_factors(offsets: np.ndarray) -> np.ndarray:
    """s[K] = 2^offsets: the activation is divided by s, weight input channels multiplied by s."""
    return np.exp2(np.asarray(offsets, np.float32)).astype(np.float32)


def fold_offsets(w: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """W[N, K] with column j multiplied by 2^offsets[j] (exact in float32 barring overflow)."""
    return (np.asarray(w, np.float32) * offset_factors(offsets)[None, :]).astype(np.float32)


def quantize_activation(x: np.ndarray, fmt: Format, scale: float) -> np.ndarray:
    """Per-tensor fake quantization of `x` onto `fmt` with `scale` (saturating)."""
    return fmt.decode(fmt.encode(np.asarray(x, np.float32) / np.float32(scale))) * np.float32(scale)


@dataclasses.dataclass
class SearchResult:
    fmt: Format
    clip: np.ndarray  # float32 [N]: per-output-channel clip ratio on the channel max
    mse: float  # the chosen format's output MSE
    errors: dict[str, float]  # every candidate format's best output MSE
    default_mse: float  # the default format (E2M1 / E3M2) at clip 1.0: plain min-max

    def scales(self, w: np.ndarray) -> np.ndarray:
        """Per-output-channel scales [N, 1] of the chosen format and clips."""
        return _channel_scales(np.asarray(w, np.float32), self.fmt, self.clip)


def _channel_scales(w: np.ndarray, fmt: Format, clip: np.ndarray) -> np.ndarray:
    amax = np.abs(w).max(axis=1)
    return np.maximum(amax * clip / fmt.max, np.finfo(np.float32).tiny).astype(np.float32)[:, None]


def _per_channel_errors(w, x, y, fmt, clip_ratios):
    """Output squared error per (clip, output channel): [C, N]. Channels are independent."""
    n = w.shape[0]
    spec = WeightSpec(fmt, "channel")
    errs = np.empty((len(clip_ratios), n))
    for i, c in enumerate(clip_ratios):
        qw = quantize_weight(w, spec, scales=_channel_scales(w, fmt, np.full(n, c, np.float32)))
        errs[i] = np.sum((y - x @ qw.dequantize().T.astype(np.float64)) ** 2, axis=0)
    return errs


def search_format(
    w: np.ndarray,
    x_sample: np.ndarray,
    bits: int,
    candidates=None,
    act_fmt: Format | str | None = None,
    clip_ratios=CLIP_RATIOS,
) -> SearchResult:
    """Format and per-channel clip for `w[N, K]` minimizing the output MSE on `x_sample[M, K]`.

    The reference is the float output x @ W.T. With `act_fmt`, the activations are fake-quantized
    per tensor (scale amax(x) / act_fmt.max) before the quantized GEMM, as the deployed kernel sees
    them; otherwise they stay unquantized. MSE is the mean over the M x N outputs.
    """
    w = np.asarray(w, np.float32)
    x = np.asarray(x_sample, np.float32).reshape(-1, w.shape[1])
    if bits not in CANDIDATES and candidates is None:
        raise RecipeError(
            f"no {bits}-bit candidate formats to search; give candidates or bits in {sorted(CANDIDATES)}"
        )
    names = tuple(candidates) if candidates is not None else CANDIDATES[bits]
    clip_ratios = tuple(float(c) for c in clip_ratios)
    if 1.0 not in clip_ratios:
        clip_ratios += (1.0,)
    y = x.astype(np.float64) @ w.T.astype(np.float64)
    if act_fmt is not None:
        act_fmt = get_format(act_fmt) if isinstance(act_fmt, str) else act_fmt
        x = quantize_activation(x, act_fmt, max(float(np.abs(x).max()), 1e-30) / act_fmt.max)
    x = x.astype(np.float64)
    count = y.size
    errors, best = {}, None
    default_name = DEFAULT.get(bits, names[0])
    default_mse = None
    for name in names:
        fmt = get_format(name)
        errs = _per_channel_errors(w, x, y, fmt, clip_ratios)
        pick = errs.argmin(axis=0)
        mse = float(errs[pick, np.arange(errs.shape[1])].sum() / count)
        errors[fmt.name] = mse
        if fmt.name == get_format(default_name).name:
            default_mse = float(errs[clip_ratios.index(1.0)].sum() / count)
        if best is None or mse < best[1]:
            best = (fmt, mse, np.array([clip_ratios[i] for i in pick], np.float32))
    if default_mse is None:
        fmt = get_format(default_name)
        default_mse = float(_per_channel_errors(w, x, y, fmt, (1.0,))[0].sum() / count)
    return SearchResult(best[0], best[2], best[1], errors, default_mse)

"""AWQ-style activation-aware scaling (Lin et al. 2023): scale input channel j of W up by s_j and its
activation down
by s_j, so channels that carry large activations are quantized more finely; s = x_absmean^alpha, alpha
searched.

The layer becomes y = (x / s) @ Q(W * s)^T: the caller folds 1/s into the producer of x (LayerNorm gain and
bias,
or the previous MatMul's output columns) or emits an explicit Mul.
Optional clip search (AWQ's auto_clip): per output channel and scale group, shrink the quantization range by a
ratio
from a grid, keeping the ratio whose group output error on the sample is least.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qcompile.algorithms.layer import output_mse
from qcompile.errors import CalibrationError, RecipeError
from qcompile.quantizer import QuantizedWeight, WeightSpec, quantize_weight


@dataclasses.dataclass(frozen=True)
class AwqInfo:
    alpha: float
    mse_rtn: float  # output MSE on the sample, plain RTN of W
    mse_scaled: float  # after the scale search
    mse: float  # after the clip search too (== mse_scaled without it)
    clip_ratio_mean: float  # 1.0 without clip search
    alphas: tuple[float, ...]
    mse_per_alpha: tuple[float, ...]


def awq_channel_scales(x_absmean: np.ndarray, alpha: float) -> np.ndarray:
    """s = x_absmean^alpha normalised by sqrt(max(s) * min(s)) (AWQ); exactly ones at alpha = 0."""
    s = np.power(np.maximum(np.asarray(x_absmean, np.float64), 1e-4), alpha)
    return (s / np.sqrt(s.max() * s.min())).astype(np.float32)


def _grouped(a: np.ndarray, spec: WeightSpec) -> np.ndarray:
    """[N, K] -> [N, G, K/G]; the whole tensor is one group for per-tensor scales."""
    n, k = a.shape
    if spec.granularity == "tensor":
        return a.reshape(1, 1, n * k)
    return a.reshape(n, spec.groups(k), -1)


def _clip(w: np.ndarray, spec: WeightSpec, ratio: np.ndarray) -> np.ndarray:
    """Clamp each scale group of w to `ratio` [N, G] times its range (its [min, max] with zero points or
    offsets)."""
    g = _grouped(w, spec)
    r = ratio[..., None]
    if spec.offsets:
        lo, hi = g.min(axis=2, keepdims=True), g.max(axis=2, keepdims=True)
        mid = (lo + hi) / 2
        return np.clip(g, mid - (mid - lo) * r, mid + (hi - mid) * r).reshape(w.shape)
    if spec.symmetric:
        bound = np.abs(g).max(axis=2, keepdims=True) * r
        return np.clip(g, -bound, bound).reshape(w.shape)
    lo = np.minimum(g.min(axis=2, keepdims=True), 0) * r
    hi = np.maximum(g.max(axis=2, keepdims=True), 0) * r
    return np.clip(g, lo, hi).reshape(w.shape)


def _group_errors(x: np.ndarray, dw: np.ndarray, spec: WeightSpec, rows: int = 256) -> np.ndarray:
    """Output error of each scale group alone, sum_t (x_t,g . dw_n,g)^2, shape [N, G] (or [1, 1] per
    tensor)."""
    if spec.granularity == "tensor":
        return np.array([[np.sum((x @ dw.T) ** 2)]])
    n, k = dw.shape
    g = spec.groups(k)
    xg = x.reshape(len(x), g, -1)
    out = np.empty((n, g))
    for r0 in range(0, n, rows):
        part = np.einsum("tgk,ngk->tng", xg, dw[r0 : r0 + rows].reshape(-1, g, k // g))
        out[r0 : r0 + rows] = np.sum(part**2, axis=0)
    return out


def clip_search(
    w: np.ndarray, x: np.ndarray, spec: WeightSpec, *, grid: int = 20, max_shrink: float = 0.5
) -> tuple[QuantizedWeight, np.ndarray]:
    """RTN of w with each scale group's range shrunk by the best ratio in {1, 1 - 1/grid, ...} above 1 -
    max_shrink."""
    x = np.asarray(x, np.float64)
    ratios = 1.0 - np.arange(max(int(max_shrink * grid), 1)) / grid
    shape = _grouped(w, spec).shape[:2]
    best_err, best_ratio = np.full(shape, np.inf), np.ones(shape)
    for ratio in ratios:
        trial = np.full(shape, ratio)
        dq = quantize_weight(_clip(w, spec, trial), spec).dequantize()
        err = _group_errors(x, w.astype(np.float64) - dq, spec)
        better = err < best_err
        best_err, best_ratio = np.where(better, err, best_err), np.where(better, ratio, best_ratio)
    return quantize_weight(_clip(w, spec, best_ratio), spec), best_ratio


def awq_scales(
    w: np.ndarray,
    x_absmean: np.ndarray,
    x_sample: np.ndarray,
    spec: WeightSpec,
    grid: int = 20,
    search_clip: bool = False,
    *,
    clip_grid: int = 20,
    max_shrink: float = 0.5,
) -> tuple[np.ndarray, QuantizedWeight, AwqInfo]:
    """Search alpha in {0, 1/grid, ..., (grid-1)/grid}; returns s [K], Q(W * s) and what was searched."""
    w = np.asarray(w, np.float32)
    x = np.asarray(x_sample, np.float32)
    n, k = w.shape
    if np.shape(x_absmean) != (k,) or x.ndim != 2 or x.shape[1] != k:
        raise CalibrationError(
            f"AWQ needs x_absmean [{k}] and x_sample [T, {k}], got {np.shape(x_absmean)} and {x.shape}"
        )
    if grid < 1:
        raise RecipeError(f"AWQ grid must be >= 1, not {grid}")
    alphas = tuple(i / grid for i in range(grid))
    errors, best = [], None
    for alpha in alphas:
        s = awq_channel_scales(x_absmean, alpha)
        qw = quantize_weight(w * s, spec)
        err = output_mse(x, w, qw.dequantize() / s)
        errors.append(err)
        if best is None or err < best[0]:
            best = (err, alpha, s, qw)
    mse_scaled, alpha, s, qw = best
    mse, ratio_mean = mse_scaled, 1.0
    if search_clip:
        clipped, ratio = clip_search(w * s, x / s, spec, grid=clip_grid, max_shrink=max_shrink)
        clipped_mse = output_mse(x, w, clipped.dequantize() / s)
        if (
            clipped_mse < mse_scaled
        ):  # per-group choices ignore cross-group terms; keep the whole only if it wins
            qw, mse, ratio_mean = clipped, clipped_mse, float(ratio.mean())
    return s, qw, AwqInfo(alpha, errors[0], mse_scaled, mse, ratio_mean, alphas, tuple(errors))

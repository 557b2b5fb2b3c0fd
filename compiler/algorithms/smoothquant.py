"""SmoothQuant (Xiao et al. 2023): migrate activation outliers into the weights, per input channel,
s_j = max|X_j|^alpha / max|W_j|^(1 - alpha); the layer becomes y = (x / s) @ (W * s)^T, an exact rewrite
before
quantization. The caller folds 1/s into the producer of x (LayerNorm gain and bias, previous MatMul) or emits
a Mul.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qcompile.algorithms.layer import quantize_activation
from qcompile.errors import CalibrationError, RecipeError
from qcompile.formats import Format
from qcompile.quantizer import QuantizedWeight, WeightSpec, quantize_weight

# s is kept inside [1e-5, 1e5] (SmoothQuant clamps at 1e-5): a channel that is silent in calibration or has
# all-zero
# weights would otherwise get s = 0 or inf, which no producer can absorb.
S_MIN, S_MAX = 1e-5, 1e5
DEFAULT_ALPHAS = tuple(round(0.05 * i, 2) for i in range(21))


@dataclasses.dataclass(frozen=True)
class SmoothInfo:
    alpha: float
    mse_unsmoothed: float  # output MSE on the sample with the same quantization and s = 1
    mse: float
    alphas: tuple[float, ...]
    mse_per_alpha: tuple[float, ...]


def smooth_scales(x_absmax: np.ndarray, w: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """s[K] = max|X_j|^alpha / max_n |W_nj|^(1 - alpha); channels with a zero maximum on either side get s =
    1."""
    if not 0.0 <= alpha <= 1.0:
        raise RecipeError(f"SmoothQuant alpha must be in [0, 1], not {alpha}")
    x_max = np.asarray(x_absmax, np.float64)
    w_max = np.abs(np.asarray(w, np.float64)).max(axis=0)
    if x_max.shape != w_max.shape:
        raise CalibrationError(f"x_absmax has {x_max.shape} channels, the weight has {w_max.shape}")
    live = (x_max > 0) & (w_max > 0) & np.isfinite(x_max)
    s = np.ones_like(x_max)
    s[live] = x_max[live] ** alpha / w_max[live] ** (1.0 - alpha)
    return np.clip(s, S_MIN, S_MAX).astype(np.float32)


def smoothed_error(
    x: np.ndarray, w: np.ndarray, s: np.ndarray, act_fmt: Format | None, w_spec: WeightSpec | None
) -> tuple[float, QuantizedWeight | None]:
    """Output MSE of (Qa(x / s)) @ Qw(W * s)^T against x @ W^T; None for a side that stays float."""
    xs = x / s
    xq = xs if act_fmt is None else quantize_activation(xs, act_fmt)
    qw = None if w_spec is None else quantize_weight(w * s, w_spec)
    ws = w * s if qw is None else qw.dequantize()
    ref = x.astype(np.float64) @ w.astype(np.float64).T
    return float(np.mean((ref - xq.astype(np.float64) @ ws.astype(np.float64).T) ** 2)), qw


def search_alpha(
    x_sample: np.ndarray,
    w: np.ndarray,
    act_fmt: Format | None,
    w_spec: WeightSpec,
    alphas: tuple[float, ...] = DEFAULT_ALPHAS,
    *,
    x_absmax: np.ndarray | None = None,
) -> tuple[float, np.ndarray, QuantizedWeight, SmoothInfo]:
    """The alpha whose smoothing gives the least output error on x_sample with per-tensor activation
    quantization
    (scale = amax of x / s over the sample / act_fmt.max; None keeps activations float) and `w_spec` weights.

    s is computed from `x_absmax` (all calibration data) when given, else from the sample's maxima.
    Returns (alpha, s, Q(W * s), info).
    """
    x = np.asarray(x_sample, np.float32)
    w = np.asarray(w, np.float32)
    if x.ndim != 2 or x.shape[1] != w.shape[1]:
        raise CalibrationError(f"x_sample must be [T, {w.shape[1]}], got {x.shape}")
    if not alphas:
        raise RecipeError("SmoothQuant alpha search needs at least one alpha")
    x_absmax = np.abs(x).max(axis=0) if x_absmax is None else x_absmax
    base, _ = smoothed_error(x, w, np.ones(w.shape[1], np.float32), act_fmt, w_spec)
    errors, best = [], None
    for alpha in alphas:
        s = smooth_scales(x_absmax, w, alpha)
        err, qw = smoothed_error(x, w, s, act_fmt, w_spec)
        errors.append(err)
        if best is None or err < best[0]:
            best = (err, alpha, s, qw)
    err, alpha, s, qw = best
    return alpha, s, qw, SmoothInfo(alpha, base, err, tuple(alphas), tuple(errors))

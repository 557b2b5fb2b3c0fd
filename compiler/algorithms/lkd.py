"""LKD (ZeroQuant): layer-wise knowledge distillation for one linear layer. The quantized layer is trained to
match the float layer's output on the layer's own calibration inputs, min ||x W^T - x Q(W)^T||^2, by Adam over
  - the scales (each as scale0 * exp(t), so learning rates are relative), and/or
  - a continuous copy V of the weights, rounded onto the format's grid with a straight-through estimator,
    V = V0 + scale0 * u with u in quantization steps.
Starting point: the given QuantizedWeight exactly (V0 = W where W rounds to the given codes, else its decoded
value), so LKD refines GPTQ's or AWQ's result as well as RTN's. The result is the lowest-error iterate on the
sample
(measured with the format's own encode), so it never has a larger sample error than the given weight.
Scales stay fixed under pow2 / pow2_ratio constraints (a learned scale would break them); zero points stay
fixed.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qcompile.algorithms.layer import output_mse
from qcompile.errors import CalibrationError, MissingDependencyError, RecipeError
from qcompile.quantizer import QuantizedWeight

TUNABLE = ("scales", "weights", "both")


@dataclasses.dataclass(frozen=True)
class LkdInfo:
    steps: int  # optimizer steps taken (fewer than asked when the loss diverged)
    tuned: str
    mse_before: float  # output MSE on the sample, given weight
    mse_after: float
    best_step: int  # 0 = the given weight was kept


def _import_torch():
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("--lkd needs PyTorch: pip install torch") from None
    return torch


def _encode(v: np.ndarray, scales_full: np.ndarray, zeros_full: np.ndarray | None, qw: QuantizedWeight):
    shifted = v.astype(np.float32) / scales_full
    if zeros_full is not None:
        shifted = shifted + zeros_full
    return qw.spec.fmt.encode(shifted)


def lkd(
    w: np.ndarray,
    qw: QuantizedWeight,
    x_sample: np.ndarray,
    steps: int = 200,
    lr: float = 1e-2,
    *,
    tune: str = "both",
) -> tuple[QuantizedWeight, LkdInfo]:
    """Distil Q(W) towards W on x_sample [T, K]; returns the tuned QuantizedWeight (same spec) and
    its report."""
    if tune not in TUNABLE:
        raise RecipeError(f"unknown LKD target {tune!r}; valid: {', '.join(TUNABLE)}")
    if steps < 0 or lr <= 0:
        raise RecipeError(f"LKD needs steps >= 0 and lr > 0, got {steps} and {lr}")
    if qw.offsets is not None:
        raise RecipeError("LKD does not tune weights with float offsets; drop --lkd or --offsets")
    torch = _import_torch()
    spec = qw.spec
    w = np.asarray(w, np.float32)
    x_sample = np.asarray(x_sample, np.float32)
    if x_sample.ndim != 2 or x_sample.shape[1] != w.shape[1]:
        raise CalibrationError(f"LKD needs x_sample [T, {w.shape[1]}], got {x_sample.shape}")
    group = w.shape[1] // qw.scales.shape[1]
    zeros_full = (
        None if qw.zero_points is None else np.repeat(qw.zero_points.astype(np.float32), group, axis=1)
    )
    scales_full = np.repeat(qw.scales, group, axis=1)
    start = np.where(_encode(w, scales_full, zeros_full, qw) == qw.codes, w, qw.dequantize())

    tune_scales = tune in ("scales", "both") and spec.scale_constraint == "none"
    tune_weights = tune in ("weights", "both")
    x = torch.from_numpy(x_sample)
    target = x @ torch.from_numpy(w).T
    grid = torch.from_numpy(np.unique(spec.fmt.grid()).astype(np.float32))
    mids = (grid[1:] + grid[:-1]) / 2
    s0 = torch.from_numpy(qw.scales.copy())
    v0 = torch.from_numpy(start.astype(np.float32))
    z = None if zeros_full is None else torch.from_numpy(zeros_full)
    log_t = torch.zeros_like(s0, requires_grad=tune_scales)
    u = torch.zeros_like(v0, requires_grad=tune_weights)
    params = [p for p, on in ((log_t, tune_scales), (u, tune_weights)) if on]
    before = output_mse(x_sample, w, qw.dequantize())
    if not params:  # only scales asked for, and the scale constraint forbids moving them
        return qw, LkdInfo(0, tune, before, before, 0)
    opt = torch.optim.Adam(params, lr=lr)  # full batch: deterministic

    def current() -> tuple:
        scales = s0 * torch.exp(log_t)
        full = scales.repeat_interleave(group, dim=1)
        return scales, full, v0 + s0.repeat_interleave(group, dim=1) * u

    def fake_quant(full, v):
        t = v / full if z is None else v / full + z
        t = t.clamp(float(grid[0]), float(grid[-1]))
        rounded = grid[torch.bucketize(t, mids)]
        q = t + (rounded - t).detach()  # straight through the rounding
        return (q if z is None else q - z) * full

    def snapshot() -> tuple[QuantizedWeight | None, float]:
        scales, full, v = (a.detach().numpy() for a in current())
        if not (np.isfinite(scales).all() and np.isfinite(v).all() and scales.min() > 0):
            return None, np.inf
        scales = scales.astype(np.float32)
        if spec.scale_dtype == "float16":
            scales = np.clip(scales, 2.0**-24, 65504).astype(np.float16).astype(np.float32)
        codes = _encode(v, np.repeat(scales, group, axis=1), zeros_full, qw)
        cand = QuantizedWeight(spec, codes, scales, qw.zero_points, qw.channel_scale, qw.group_exp)
        return cand, output_mse(x_sample, w, cand.dequantize())

    best, best_err, best_step, taken = qw, before, 0, 0
    for step in range(1, steps + 1):
        _, full, v = current()
        loss = torch.mean((target - x @ fake_quant(full, v).T) ** 2)
        if not torch.isfinite(loss):  # diverged (learning rate far too large): keep the best so far
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
        taken = step
        cand, err = snapshot()
        if err < best_err:
            best, best_err, best_step = cand, err, step
    return best, LkdInfo(taken, tune, before, best_err, best_step)

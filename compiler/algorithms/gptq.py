"""GPTQ (Frantar et al. 2022): quantize W column by column, pushing each column's error onto the columns not
yet
quantized through the inverse Hessian, so that the layer output on the calibration data moves least.

Choices, where GPTQ's reference code leaves room:
- group scales are computed lazily, when the loop reaches the first column of a group to be processed, from
the
  current (already error-updated) weights of all the group's columns; groups are always the ORIGINAL
  contiguous
  column groups, also with act_order (then a group's first processed column may lie anywhere in it, and none
  of its
  columns is quantized yet at that point, so the scale sees all of them updated). The lazily deferred block
  updates
  are applied to those columns before the scale is taken, so the result does not depend on block_size.
- per-channel and per-tensor scales are RTN's, from the original weights (GPTQ does the same).
- pow2_ratio (M2): the per-channel real scale is RTN's, from the original weights; each group's power-of-two
  exponent is chosen lazily like a group scale (it saturates at 2^0 if updates push a group above the
  channel max).
- dead input channels (diag(H) == 0, never active in calibration) keep their weights and are rounded to
nearest
  without taking or giving error (GPTQ's reference zeroes them; keeping them is safer if the channel is live
  later).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qcompile.errors import CalibrationError, LayoutError, RecipeError
from qcompile.quantizer import MIN_GROUP_EXP, QuantizedWeight, WeightSpec, quantize_weight


@dataclasses.dataclass(frozen=True)
class GptqInfo:
    calib_mse_rtn: float  # output MSE on the calibration tokens, from H: tr(dW H dW^T) / (2 N)
    calib_mse: float
    dead_columns: int
    damp_value: float
    act_order: bool


def hessian_mse(w: np.ndarray, w_approx: np.ndarray, hessian: np.ndarray) -> float:
    """mean((x W^T - x W'^T)^2) over the tokens that formed H = 2/T X^T X, computed from H alone."""
    dw = np.asarray(w, np.float64) - np.asarray(w_approx, np.float64)
    return float(np.sum((dw @ hessian) * dw) / (2 * dw.shape[0]))


def _upper_cholesky_of_inverse(h: np.ndarray) -> np.ndarray:
    try:
        lower_inv = np.linalg.inv(np.linalg.cholesky(h))
        return np.linalg.cholesky(lower_inv.T @ lower_inv).T
    except np.linalg.LinAlgError:
        raise CalibrationError(
            "the layer's Hessian is not positive definite after dampening; "
            "raise gptq damp or use more calibration data"
        ) from None


class _ColumnQuantizer:
    """Quantizes one column at a time with its group's scale (and zero point or offset), recording codes and
    scales."""

    def __init__(self, w: np.ndarray, spec: WeightSpec):
        n, k = w.shape
        self.spec, self.groups = spec, spec.groups(k)
        self.group_size = k // self.groups
        rtn = quantize_weight(w, spec)
        self.lazy = spec.granularity == "group"
        self.codes = np.zeros((n, k), spec.fmt.code_dtype)
        self.scales = rtn.scales.copy()
        self.zeros = None if rtn.zero_points is None else rtn.zero_points.copy()
        self.offsets = None if rtn.offsets is None else rtn.offsets.copy()
        self.channel = rtn.channel_scale
        self.exp = None if rtn.group_exp is None else rtn.group_exp.copy()
        self.ready = np.full(self.groups, not self.lazy)

    def set_group(self, group: int, cols: np.ndarray) -> None:
        """Scale (and zero point / offset / M2 exponent) of `group` from its current columns [N,
        group_size]."""
        spec = self.spec
        as_channel = dataclasses.replace(
            spec,
            granularity="channel",
            scale_constraint=("none" if spec.scale_constraint == "pow2_ratio" else spec.scale_constraint),
        )
        q = quantize_weight(cols.astype(np.float32), as_channel)
        scale = q.scales[:, 0]
        if spec.scale_constraint == "pow2_ratio":
            exp = np.clip(np.ceil(np.log2(scale / self.channel)), MIN_GROUP_EXP, 0).astype(np.int8)
            self.exp[:, group] = exp
            scale = (self.channel * np.exp2(exp.astype(np.float32))).astype(np.float32)
        self.scales[:, group] = scale
        if self.zeros is not None:
            self.zeros[:, group] = q.zero_points[:, 0]
        if self.offsets is not None:
            self.offsets[:, group] = q.offsets[:, 0]
        self.ready[group] = True

    def quantize(self, col: np.ndarray, index: int) -> np.ndarray:
        """Codes for original column `index` are stored; returns the dequantized column (float64)."""
        group = index // self.group_size if self.lazy else 0
        scale = self.scales[:, group]
        offset = 0.0 if self.offsets is None else self.offsets[:, group]
        shifted = (col.astype(np.float32) - offset) / scale
        if self.zeros is not None:
            shifted = shifted + self.zeros[:, group].astype(np.float32)
        codes = self.spec.fmt.encode(shifted)
        self.codes[:, index] = codes
        vals = self.spec.fmt.decode(codes)
        if self.zeros is not None:
            vals = vals - self.zeros[:, group].astype(np.float32)
        return (vals * scale + offset).astype(np.float64)

    def result(self) -> QuantizedWeight:
        return QuantizedWeight(
            self.spec, self.codes, self.scales, self.zeros, self.channel, self.exp, self.offsets
        )


def gptq(
    w: np.ndarray,
    hessian: np.ndarray,
    spec: WeightSpec,
    *,
    block_size: int = 128,
    damp: float = 0.01,
    act_order: bool = False,
) -> tuple[QuantizedWeight, GptqInfo]:
    """GPTQ-quantize `w[N, K]` given `hessian[K, K]` = 2/T X^T X; any format and granularity of `spec`."""
    w = np.asarray(w, np.float32)
    if not np.isfinite(w).all():
        raise LayoutError("weight holds NaN or infinity")
    n, k = w.shape
    h = np.array(hessian, np.float64)
    if h.shape != (k, k) or not np.isfinite(h).all():
        raise CalibrationError(f"Hessian must be a finite [{k}, {k}] matrix, got shape {h.shape}")
    if block_size < 1 or damp < 0:
        raise RecipeError(f"gptq needs block_size >= 1 and damp >= 0, got {block_size} and {damp}")
    quantizer = _ColumnQuantizer(w, spec)
    diag = np.diag(h).copy()
    dead = diag <= 0
    h[dead, :] = 0.0
    h[:, dead] = 0.0
    h[dead, dead] = 1.0
    perm = np.argsort(-diag, kind="stable") if act_order else np.arange(k)
    position = np.argsort(perm)  # position[original column] = processing step
    h = h[perm][:, perm]
    damp_value = damp * float(np.mean(np.diag(h)))
    h[np.diag_indices(k)] += damp_value
    u = _upper_cholesky_of_inverse(h)
    work = w.astype(np.float64)[:, perm]
    for b0 in range(0, k, block_size):
        b1 = min(b0 + block_size, k)
        block, err = work[:, b0:b1].copy(), np.zeros((n, b1 - b0))
        for i in range(b1 - b0):
            col = perm[b0 + i]
            group = col // quantizer.group_size
            if quantizer.lazy and not quantizer.ready[group]:
                cols = position[group * quantizer.group_size : (group + 1) * quantizer.group_size]
                current = np.empty((n, len(cols)))
                inside = cols < b1
                current[:, inside] = block[:, cols[inside] - b0]
                later = cols[~inside]
                current[:, ~inside] = work[:, later] - err[:, :i] @ u[b0 : b0 + i, later]
                quantizer.set_group(group, current)
            q = quantizer.quantize(block[:, i], col)
            e = (block[:, i] - q) / u[b0 + i, b0 + i]
            block[:, i:] -= np.outer(e, u[b0 + i, b0 + i : b1])
            err[:, i] = e
        work[:, b1:] -= err @ u[b0:b1, b1:]
    qw = quantizer.result()
    undamped = np.array(hessian, np.float64)
    info = GptqInfo(
        hessian_mse(w, quantize_weight(w, spec).dequantize(), undamped),
        hessian_mse(w, qw.dequantize(), undamped),
        int(dead.sum()),
        damp_value,
        act_order,
    )
    return qw, info

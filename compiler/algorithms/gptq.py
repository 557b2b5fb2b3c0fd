"""GPTQ (Frantar et al. 2022): quantize W column by column, pushing each column's error onto the columns not
yet quantized through the inverse Hessian, so that the layer output on the calibration data moves least.

Choices, where GPTQ's reference code leaves room:
- group scales are computed lazily, when the loop reaches the first column of a group to be processed, from
  the current (already error-updated) weights of all the group's columns; groups are always the ORIGINAL
  contiguous column groups, also with act_order (then a group's first processed column may lie anywhere in
  it, and none of its columns is quantized yet at that point, so the scale sees all of them updated). The
  block's deferred updates are applied to those columns before the scale is taken, so the result does not
  depend on block_size (up to float32 round-off). `static_groups` instead takes every group's scale from
  the original weights before the loop (the reference code's static_groups): RTN's grid, which the
  error updates cannot stretch towards the calibration data.
- per-channel and per-tensor scales are RTN's, from the original weights (GPTQ does the same).
- pow2_ratio (M2): the per-channel real scale is RTN's, from the original weights; each group's power-of-two
  exponent is chosen lazily like a group scale (it saturates at 2^0 if updates push a group above the
  channel max).
- dead input channels (diag(H) == 0, never active in calibration) keep their weights and are rounded to
  nearest without taking or giving error (GPTQ's reference zeroes them; keeping them is safer if the channel
  is live later).

Precision: the Hessian's Cholesky factor is computed in float64; its inverse, the weights, the error updates
and the quantization run in float32 (GPTQ's reference runs in float32 throughout).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qcompile.errors import CalibrationError, LayoutError, RecipeError
from qcompile.quantizer import MIN_GROUP_EXP, QuantizedWeight, WeightSpec, quantize_weight

ROW_CHUNK = 1 << 22  # hessian_mse takes the error in row chunks of about this many elements


@dataclasses.dataclass(frozen=True)
class GptqInfo:
    calib_mse_rtn: float  # output MSE on the calibration tokens, from H: tr(dW H dW^T) / (2 N)
    calib_mse: float
    dead_columns: int
    damp_value: float
    act_order: bool


def hessian_mse(w: np.ndarray, w_approx: np.ndarray, hessian: np.ndarray) -> float:
    """mean((x W^T - x W'^T)^2) over the tokens that formed H = 2/T X^T X, computed from H alone (float32
    BLAS by row chunks, sums in float64)."""
    h, n = np.asarray(hessian, np.float32), len(w)
    rows = max(1, ROW_CHUNK // h.shape[0])
    errors = (_hessian_error(w[r : r + rows] - w_approx[r : r + rows], h) for r in range(0, n, rows))
    return sum(errors) / (2 * n)


def _hessian_error(dw: np.ndarray, h: np.ndarray) -> float:
    """tr(dW H dW^T) = sum(H * dW^T dW), in float32 BLAS (numpy takes syrk for dW^T dW): about 1e-6
    relative round-off."""
    dw = np.asarray(dw, np.float32)
    gram = dw.T @ dw
    return float(np.sum(np.multiply(gram, h, out=gram), dtype=np.float64))


def _lower_inverse(lower: np.ndarray) -> np.ndarray:
    """Inverse of a lower-triangular matrix, in place, by halves: [[A, 0], [B, C]]^-1 = [[A^-1, 0],
    [-C^-1 B A^-1, C^-1]] (matrix products throughout; numpy has no triangular inverse)."""
    k = len(lower)
    if k <= 128:  # LAPACK's general inverse: slow on larger blocks, its pivoting leaves round-off above
        lower[:] = np.tril(np.linalg.inv(lower))
        return lower
    m = k // 2
    a, c = _lower_inverse(lower[:m, :m]), _lower_inverse(lower[m:, m:])
    lower[m:, :m] = -(c @ lower[m:, :m]) @ a
    return lower


def _damped(hessian: np.ndarray, dead: np.ndarray, perm: np.ndarray, damp_value: float) -> np.ndarray:
    """GPTQ's H' in float64, in processing order: dead channels cut off with a one on the diagonal,
    damp_value added to the diagonal."""
    h = np.array(hessian, np.float64)
    h[dead, :] = 0.0
    h[:, dead] = 0.0
    h[dead, dead] = 1.0
    if not np.array_equal(perm, np.arange(len(perm))):
        h = h[np.ix_(perm, perm)]
    h[np.diag_indices(len(h))] += damp_value
    return h


def _upper_cholesky_of_inverse(h: np.ndarray) -> np.ndarray:
    """U upper-triangular with U^T U = h^-1, in float32: with J the order reversal, U = J L^-1 J where
    L L^T = J h J. L is factored in float64 and inverted in float32: GPTQ's dampening bounds cond(h) by
    100 K (K = 5632: cond(L) < 800), so the inverse keeps about 1e-4 relative accuracy at worst (1e-7 on
    a seeded outlier-heavy case). `h` is dropped once factored (the caller keeps no reference)."""
    try:
        lower = np.linalg.cholesky(h[::-1, ::-1]).astype(np.float32)
        del h
    except np.linalg.LinAlgError:
        raise CalibrationError(
            "the layer's Hessian is not positive definite after dampening; "
            "raise gptq damp or use more calibration data"
        ) from None
    return _lower_inverse(lower)[::-1, ::-1]


class _ColumnQuantizer:
    """Quantizes one column at a time with its group's scale (and zero point or offset), recording codes and
    scales."""

    def __init__(self, w: np.ndarray, spec: WeightSpec, static_groups: bool = False):
        n, k = w.shape
        self.spec, self.groups = spec, spec.groups(k)
        self.group_size = k // self.groups
        rtn = quantize_weight(w, spec)
        self.rtn = rtn
        self.grouped = spec.granularity == "group"
        self.lazy = self.grouped and not static_groups
        self.codes = np.zeros((k, n), spec.fmt.code_dtype)  # transposed: column `index` is codes[index]
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
        q = quantize_weight(cols, as_channel)
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
        """Codes for original column `index` (float32 [N]) are stored; returns the dequantized column."""
        group = index // self.group_size if self.grouped else 0
        scale = self.scales[:, group]
        offset = 0.0 if self.offsets is None else self.offsets[:, group]
        shifted = (col - offset) / scale
        if self.zeros is not None:
            shifted += self.zeros[:, group].astype(np.float32)
        codes = self.spec.fmt.encode(shifted, scratch=True)
        self.codes[index] = codes
        vals = self.spec.fmt.decode(codes)
        if self.zeros is not None:
            vals -= self.zeros[:, group].astype(np.float32)
        vals *= scale
        vals += offset
        return vals

    def result(self) -> QuantizedWeight:
        return QuantizedWeight(
            self.spec,
            np.ascontiguousarray(self.codes.T),
            self.scales,
            self.zeros,
            self.channel,
            self.exp,
            self.offsets,
        )


def gptq(
    w: np.ndarray,
    hessian: np.ndarray,
    spec: WeightSpec,
    *,
    block_size: int = 128,
    damp: float = 0.01,
    act_order: bool = False,
    static_groups: bool = False,
) -> tuple[QuantizedWeight, GptqInfo]:
    """GPTQ-quantize `w[N, K]` given `hessian[K, K]` = 2/T X^T X; any format and granularity of `spec`."""
    w = np.asarray(w, np.float32)
    if not np.isfinite(w).all():
        raise LayoutError("weight holds NaN or infinity")
    n, k = w.shape
    hessian = np.asarray(hessian)
    if hessian.shape != (k, k) or not np.isfinite(hessian).all():
        raise CalibrationError(f"Hessian must be a finite [{k}, {k}] matrix, got shape {hessian.shape}")
    if block_size < 1 or damp < 0:
        raise RecipeError(f"gptq needs block_size >= 1 and damp >= 0, got {block_size} and {damp}")
    quantizer = _ColumnQuantizer(w, spec, static_groups)
    diag = np.diag(hessian).astype(np.float64)
    dead = diag <= 0
    perm = np.argsort(-diag, kind="stable") if act_order else np.arange(k)
    position = np.argsort(perm)  # position[original column] = processing step
    damp_value = damp * float(np.mean(np.where(dead, 1.0, diag)))
    u = np.ascontiguousarray(_upper_cholesky_of_inverse(_damped(hessian, dead, perm, damp_value)))
    # Row p of `work` is the column W[:, perm[p]], updated for the errors of the blocks before the current
    # one; inside a block, a row gets the block's earlier errors when its turn comes (err rows).
    work = w.T[perm]  # a C-ordered copy
    err = np.empty((min(block_size, k), n), np.float32)
    err_squares = 0.0
    for b0 in range(0, k, block_size):
        b1 = min(b0 + block_size, k)
        for i in range(b1 - b0):
            p, col = b0 + i, perm[b0 + i]
            group = col // quantizer.group_size
            if quantizer.lazy and not quantizer.ready[group]:
                cols = position[group * quantizer.group_size : (group + 1) * quantizer.group_size]
                current = work[cols] - u[b0:p, cols].T @ err[:i]
                quantizer.set_group(group, current.T)
            current = work[p] - u[b0:p, p] @ err[:i]
            q = quantizer.quantize(current, col)
            e = np.subtract(current, q, out=err[i])
            e /= u[p, p]
            err_squares += float(np.dot(e, e))
        work[b1:] -= u[b0:b1, b1:].T @ err[: b1 - b0]
    del work, err
    qw = quantizer.result()
    # W - Q = E U (exactly, up to float32 round-off) and U H' U^T = I for GPTQ's H' (damped, dead channels set
    # to 1), so tr(dW H' dW^T) = sum(E^2); the undamped figure takes off damp and the dead channels' ones.
    # calib_mse_rtn has no such shortcut: dW^T dW in float32 syrk, by row chunks.
    h32, rows = np.asarray(hessian, np.float32), max(1, ROW_CHUNK // k)
    rtn_error, column_squares = 0.0, np.zeros(k)
    for r in range(0, n, rows):
        part = w[r : r + rows]
        rtn_error += _hessian_error(part - quantizer.rtn.rows(r, r + rows).dequantize(), h32)
        dw = part - qw.rows(r, r + rows).dequantize()
        column_squares += np.sum(np.square(dw, out=dw), axis=0, dtype=np.float64)
    calib_mse = max(err_squares - float(column_squares @ (damp_value + dead)), 0.0) / (2 * n)
    info = GptqInfo(
        rtn_error / (2 * n),
        calib_mse,
        int(dead.sum()),
        damp_value,
        act_order,
    )
    return qw, info

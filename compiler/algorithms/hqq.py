"""HQQ (Badri & Shaji, half-quadratic quantization): data-free fit of each group's offset.

With `q = clip(round(w / s + z))` on the unsigned code range and `w' = (q - z) s`, HQQ keeps the
range-derived scale and alternates, per group, a proximal step on the error `e` with a sparsity-
promoting l_p norm (p < 1: a few large weights may stay wrong, the bulk is fitted tightly),
    e = shrink_p(w - w', beta),      z = mean(q - (w - e) / s),
raising beta by kappa each step (the schedule of the HQQ paper and of onnxruntime's quantizer).
The best z by mean |w - w'| is kept. The result is qcompile's offsets form `w' = s q + m` with
signed codes, `m = -(qmin + z) s`, rounded to float16 like every offset, so TensorRT runs it as
a symmetric DequantizeLinear plus the offsets side branch.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qcompile.quantizer import QuantizedWeight, WeightSpec, offset_params, quantize_weight


@dataclasses.dataclass(frozen=True)
class HqqInfo:
    iterations: int
    mean_abs_error_before: float  # min/max range offsets (plain RTN with offsets)
    mean_abs_error_after: float


def _shrink(x: np.ndarray, beta: float, p: float) -> np.ndarray:
    a = np.abs(x)
    if p == 1:
        return np.sign(x) * np.maximum(a - np.float32(1.0 / beta), 0)
    return np.sign(x) * np.maximum(
        a - np.float32(1.0 / beta) * np.power(a + np.float32(1e-8), np.float32(p - 1)), 0
    )


def hqq(
    w: np.ndarray,
    spec: WeightSpec,
    *,
    iters: int = 20,
    lp_norm: float = 0.7,
    beta: float = 10.0,
    kappa: float = 1.01,
    select: str = "group",
) -> tuple[QuantizedWeight, HqqInfo]:
    """HQQ on `w[N, K]` for an offsets spec of a signed integer format (scales per group or channel)."""
    w = np.asarray(w, np.float32)
    n, k = w.shape
    g = spec.groups(k)
    grouped = w.reshape(n, g, -1)
    lo, hi = grouped.min(axis=2), grouped.max(axis=2)
    scales, _ = offset_params(lo.astype(np.float32), hi.astype(np.float32), spec)
    s = scales[..., None]
    qlo, qhi = float(spec.fmt.qmin), float(spec.fmt.qmax)
    z = np.round(-lo[..., None] / s + qlo)  # unsigned-range zero point, shifted onto signed codes: q - z

    def error(zero):
        q = np.clip(np.round(grouped / s + zero), qlo, qhi)
        return q, np.abs(grouped - (q - zero) * s).mean(axis=2, keepdims=True)

    _, best_err = error(z)
    start, best, steps = float(best_err.mean()), z.copy(), 0
    whole_err = np.inf  # "reference": the whole weight's mean |error| at the previous step
    for _ in range(iters):
        q, err = error(z)
        e = _shrink(grouped - (q - z) * s, beta, lp_norm)
        z_next = np.mean(q - (grouped - e) / s, axis=2, keepdims=True, dtype=np.float64).astype(np.float32)
        beta *= kappa
        steps += 1
        if select == "reference":  # the paper's loop: stop when the error stops falling, keep that step's z
            if float(err.mean()) >= whole_err:
                z = z_next
                break
            whole_err = float(err.mean())
        else:
            better = err < best_err
            best, best_err = np.where(better, z, best), np.where(better, err, best_err)
        z = z_next
    if select == "reference":
        best = z
    else:
        _, err = error(z)
        best = np.where(err < best_err, z, best)
    offsets = np.clip(-best[..., 0] * scales, -65504, 65504).astype(np.float16).astype(np.float32)
    qw = quantize_weight(w, spec, scales=(scales, offsets))
    after = float(np.abs(w - qw.dequantize()).mean())
    return qw, HqqInfo(steps, start, after)

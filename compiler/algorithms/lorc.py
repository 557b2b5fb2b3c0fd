"""LoRC (ZeroQuant-V2): low-rank compensation of the quantization error E = W - dequant(Q(W)).

E = U S V^T (SVD); keeping rank r and splitting sqrt(S) into both factors gives
    A = V_r sqrt(S_r)   [K, r]      B = sqrt(S_r) U_r^T   [r, N]      E ~ (A @ B)^T
and the layer computes y = x @ dequant(Q(W))^T + (x @ A) @ B: two skinny MatMuls and an Add next to the GEMM.
A and B are rounded to float16, or to int8 with one symmetric scale per rank component (A's columns, B's
rows).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qcompile.algorithms.layer import output_mse
from qcompile.errors import RecipeError
from qcompile.quantizer import QuantizedWeight

FACTOR_DTYPES = {"float16": 16, "int8": 8}


@dataclasses.dataclass(frozen=True)
class LorcInfo:
    rank: int
    factor_dtype: str
    added_bits_per_weight: float  # r (K + N) bits / (N K), plus the int8 scales' 2 r 32 bits / (N K)
    weight_mse_before: float  # mean (W - Q(W))^2
    weight_mse_after: float  # mean (W - Q(W) - (A B)^T)^2
    output_mse_before: float | None  # on x_sample, when given
    output_mse_after: float | None
    a_codes: np.ndarray | None = None  # int8 only: A = a_codes * a_scales[None, :]
    a_scales: np.ndarray | None = None  # [r] float32
    b_codes: np.ndarray | None = None  # int8 only: B = b_codes * b_scales[:, None]
    b_scales: np.ndarray | None = None  # [r] float32


def _int8_rows(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per row of m [r, X]: codes and scales [r] (a zero row gets scale 1)."""
    amax = np.abs(m).max(axis=1) if m.size else np.zeros(len(m))
    scales = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    codes = np.clip(np.rint(m / scales[:, None]), -127, 127).astype(np.int8)
    return codes, scales


def lorc(
    w: np.ndarray,
    qw: QuantizedWeight,
    rank: int = 8,
    factor_dtype: str = "float16",
    *,
    x_sample: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, LorcInfo]:
    """Rank-`rank` factors A [K, r], B [r, N] of W - dequant(qw), as float32 holding the rounded values."""
    w = np.asarray(w, np.float32)
    n, k = w.shape
    if factor_dtype not in FACTOR_DTYPES:
        raise RecipeError(f"unknown LoRC factor dtype {factor_dtype!r}; valid: {', '.join(FACTOR_DTYPES)}")
    if not 0 <= rank <= min(n, k):
        raise RecipeError(f"LoRC rank must be in [0, {min(n, k)}] for a [{n}, {k}] weight, not {rank}")
    w_hat = qw.dequantize()
    err = w.astype(np.float64) - w_hat
    u, sigma, vt = np.linalg.svd(err, full_matrices=False)
    root = np.sqrt(sigma[:rank])
    a = vt[:rank].T * root[None, :]  # [K, r]
    b = root[:, None] * u[:, :rank].T  # [r, N]
    extra = {}
    if factor_dtype == "float16":
        a, b = a.astype(np.float16).astype(np.float32), b.astype(np.float16).astype(np.float32)
    else:
        a_codes, a_scales = _int8_rows(a.T)
        b_codes, b_scales = _int8_rows(b)
        a_codes = np.ascontiguousarray(a_codes.T)
        a = a_codes.astype(np.float32) * a_scales[None, :]
        b = b_codes.astype(np.float32) * b_scales[:, None]
        extra = dict(a_codes=a_codes, a_scales=a_scales, b_codes=b_codes, b_scales=b_scales)
    correction = (a.astype(np.float64) @ b.astype(np.float64)).T  # [N, K]
    bits = rank * (k + n) * FACTOR_DTYPES[factor_dtype] / (n * k)
    if factor_dtype == "int8":
        bits += 2 * rank * 32 / (n * k)
    before = after = None
    if x_sample is not None:
        before = output_mse(x_sample, w, w_hat)
        after = output_mse(x_sample, w, w_hat + correction)
    info = LorcInfo(
        rank,
        factor_dtype,
        bits,
        float(np.mean(err**2)),
        float(np.mean((err - correction) ** 2)),
        before,
        after,
        **extra,
    )
    return a.astype(np.float32), b.astype(np.float32), info

"""What an algorithm receives for one linear layer `y = x @ W.T`, what it returns, and how both are
measured."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from qcompile.errors import CalibrationError, RecipeError
from qcompile.formats import Format, IntFormat
from qcompile.quantizer import QuantizedWeight


@dataclasses.dataclass(frozen=True)
class LayerCalibration:
    """Calibration statistics of the layer's input x[..., K]; each algorithm states which it needs."""

    hessian: np.ndarray | None = None  # [K, K], 2/T X^T X (HessianAccumulator)
    x_absmean: np.ndarray | None = None  # [K], mean |x| per input channel
    x_absmax: np.ndarray | None = None  # [K], max |x| per input channel
    x_sample: np.ndarray | None = None  # [T, K] tokens (TokenSample)
    act_fmt: Format | None = None  # activation format, when activations are quantized

    def require(self, algorithm: str, *names: str):
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise CalibrationError(
                f"{algorithm} needs calibration statistics {', '.join(missing)} for this layer"
            )
        return tuple(getattr(self, n) for n in names)


@dataclasses.dataclass
class LayerResult:
    """A quantized layer.

    The layer computes `(x / input_scale) @ qw.dequantize().T + ((x / input_scale) @ low_rank[0]) @
    low_rank[1]`:
    `input_scale` [K] (None = ones) is folded into the producer of x (or emitted as a Mul by 1/s), `qw` is the
    quantized `W * input_scale`, `low_rank` = (A [K, r], B [r, N]) is LoRC's correction (None = none).
    `info` maps each algorithm that ran to its report dataclass.
    """

    qw: QuantizedWeight
    input_scale: np.ndarray | None = None
    low_rank: tuple[np.ndarray, np.ndarray] | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def effective_weight(self) -> np.ndarray:
        """The float W'[N, K] with y = x @ W'.T that the quantized layer computes."""
        w = self.qw.dequantize().astype(np.float64)
        if self.low_rank is not None:
            w = w + (self.low_rank[0].astype(np.float64) @ self.low_rank[1].astype(np.float64)).T
        if self.input_scale is not None:
            w = w / self.input_scale.astype(np.float64)
        return w


def output_mse(x: np.ndarray, w: np.ndarray, w_approx: np.ndarray, chunk: int = 1 << 20) -> float:
    """mean((x W^T - x W'^T)^2) over tokens and output channels: x (W - W')^T in float32 BLAS by row chunks
    of W of about `chunk` elements (about 1e-6 relative round-off), squares summed in float64."""
    n, k = np.shape(w)
    x = np.asarray(x, np.float32).reshape(-1, k)
    rows, total = max(1, chunk // k), 0.0
    for r in range(0, n, rows):
        dw = np.asarray(w[r : r + rows], np.float32) - np.asarray(w_approx[r : r + rows], np.float32)
        diff = x @ dw.T
        total += float(np.sum(np.square(diff, out=diff), dtype=np.float64))
    return total / (len(x) * n)


def quantize_activation(x: np.ndarray, fmt: Format, amax: float | None = None) -> np.ndarray:
    """Static per-tensor symmetric fake quantization: scale = amax / fmt.max, then encode and decode."""
    if isinstance(fmt, IntFormat) and not fmt.signed:
        raise RecipeError(f"activations need a signed format for symmetric per-tensor scales, not {fmt.name}")
    x = np.asarray(x, np.float32)
    amax = float(np.abs(x).max()) if amax is None else float(amax)
    if amax == 0.0:
        return np.zeros_like(x)
    scale = np.float32(amax / fmt.max)
    return fmt.decode(fmt.encode(x / scale)) * scale

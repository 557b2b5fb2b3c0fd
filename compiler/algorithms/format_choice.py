"""Which minifloat layout a per-channel layer gets (W6A16 decodes both FP6 layouts): the one whose
round-to-nearest error is smaller, weighted by diag(H) when calibration gave a Hessian (the
activations' mean square per input channel, so errors on loud channels count more).

E2M3 has one more mantissa bit and less range than E3M2: it wins where a channel's weights are
spread evenly (measured on MiniLM: RTN 0.9974 against 0.9945 cosine), E3M2 where a few weights
stand far out. The choice costs one quantization per candidate; fpsearch adds a clip per channel
and measures on activations instead (slower).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qcompile.formats import get_format
from qcompile.quantizer import WeightSpec, quantize_weight

# Minifloat weight formats the emitters take, by bit width.
SEARCHABLE = {6: ("fp6_e3m2", "fp6_e2m3")}


def choosable(spec: WeightSpec) -> bool:
    return spec.fmt.kind == "float" and spec.granularity == "channel" and spec.fmt.bits in SEARCHABLE


def choose_minifloat(w: np.ndarray, spec: WeightSpec, hessian: np.ndarray | None = None) -> WeightSpec:
    """`spec` with the candidate format of its width that quantizes `w` [N, K] with the least error."""
    if not choosable(spec):
        return spec
    w = np.asarray(w, np.float32)
    weight = None if hessian is None else np.maximum(np.diag(np.asarray(hessian, np.float64)), 0.0)
    best = None
    for name in SEARCHABLE[spec.fmt.bits]:
        candidate = dataclasses.replace(spec, fmt=get_format(name))
        error = np.square(w - quantize_weight(w, candidate).dequantize(), dtype=np.float64)
        total = float(error.sum() if weight is None else (error @ weight).sum())
        if best is None or total < best[0]:
            best = (total, candidate)
    return best[1]

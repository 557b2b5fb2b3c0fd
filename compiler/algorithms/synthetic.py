"""A seeded synthetic linear layer whose inputs look like a transformer's: correlated channels and a few
outliers.

Used by the tests and the docs; small enough to run every algorithm in a second.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class SyntheticLayer:
    w: np.ndarray  # [N, K]
    x_calib: np.ndarray  # [T, K]
    x_test: np.ndarray  # [T, K], held out, same distribution
    outliers: np.ndarray  # indices of the outlier input channels


def synthetic_layer(
    n: int = 64,
    k: int = 256,
    tokens: int = 512,
    *,
    outliers: int = 4,
    outlier_gain: float = 20.0,
    seed: int = 0,
) -> SyntheticLayer:
    rng = np.random.default_rng(seed)
    rank = max(k // 8, 1)
    mix = rng.standard_normal((rank, k)) / np.sqrt(rank)  # shared low-rank factors make channels correlated
    gain = np.exp(rng.normal(0.0, 0.5, k))  # uneven channel magnitudes, like LayerNorm gains
    picked = rng.choice(k, outliers, replace=False)
    gain[picked] *= outlier_gain

    def draw(count: int) -> np.ndarray:
        shared = rng.standard_normal((count, rank)) @ mix
        return ((shared + 0.5 * rng.standard_normal((count, k))) * gain).astype(np.float32)

    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    w[:, rng.choice(k, 2, replace=False)] *= 6.0  # a few large weight columns too
    return SyntheticLayer(w, draw(tokens), draw(tokens), np.sort(picked))

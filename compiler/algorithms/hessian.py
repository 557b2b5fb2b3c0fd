"""Streaming per-layer calibration statistics: the GPTQ Hessian and a bounded sample of tokens."""

from __future__ import annotations

import numpy as np

from qcompile.errors import CalibrationError

BATCH_ROWS = 2048  # X^T X over fewer rows is several times slower per row in BLAS: rows are gathered first


class HessianAccumulator:
    """H = 2/T * X^T X over every token seen, without keeping X: X^T X of each batch of BATCH_ROWS tokens in
    float32 BLAS (numpy takes syrk; about 1e-6 relative round-off, far below GPTQ's dampening of 1e-2
    mean(diag H)), summed in float64.

    `add` takes any array whose last axis is the layer's input dimension K.
    """

    def __init__(self, k: int):
        self.k = k
        self.count = 0
        self._h = np.zeros((k, k), np.float64)  # H over the tokens summed so far
        self._summed = 0
        self._batch: np.ndarray | None = None
        self._filled = 0

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        if x.shape[-1] != self.k:
            raise CalibrationError(f"activation has {x.shape[-1]} channels, the layer expects {self.k}")
        flat = x.reshape(-1, self.k)
        self.count += flat.shape[0]
        while len(flat):
            if self._batch is None:
                self._batch = np.empty((BATCH_ROWS, self.k), np.float32)
            take = min(BATCH_ROWS - self._filled, len(flat))
            self._batch[self._filled : self._filled + take] = flat[:take]
            self._filled += take
            flat = flat[take:]
            if self._filled == BATCH_ROWS:
                self._flush()

    def _flush(self) -> None:
        if self._filled:
            rows = self._batch[: self._filled]
            total = self._summed + self._filled
            gram = rows.T @ rows
            gram *= np.float32(2.0 / total)
            self._h *= self._summed / total
            self._h += gram
            self._summed, self._filled = total, 0

    def hessian(self) -> np.ndarray:
        """H, as a read-only view of the accumulator's own array (a K x K float64 copy less held at once)."""
        if self.count == 0:
            raise CalibrationError("no calibration tokens reached this layer; cannot form its Hessian")
        self._flush()
        self._batch = None
        view = self._h.view()
        view.flags.writeable = False
        return view


class TokenSample:
    """A uniform random sample of at most `capacity` token rows [T, K] (reservoir sampling, seeded)."""

    def __init__(self, capacity: int = 512, seed: int = 0):
        self.capacity = capacity
        self.seen = 0
        self._rows: np.ndarray | None = None
        self._filled = 0
        self._rng = np.random.default_rng(seed)

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float32)
        flat = x.reshape(-1, x.shape[-1])
        if self._rows is None:
            self._rows = np.empty((self.capacity, flat.shape[1]), np.float32)
        take = min(self.capacity - self._filled, len(flat))
        self._rows[self._filled : self._filled + take] = flat[:take]
        self._filled += take
        # Algorithm R on the rest: row number i (0-based, over all rows seen) replaces a random slot
        # with probability capacity / (i + 1).
        rest = flat[take:]
        if len(rest):
            index = self.seen + take + np.arange(len(rest))
            slot = (self._rng.random(len(rest)) * (index + 1)).astype(np.int64)
            keep = slot < self.capacity
            for row, where in zip(rest[keep], slot[keep]):
                self._rows[where] = row
        self.seen += len(flat)

    def rows(self) -> np.ndarray:
        if self._rows is None or self._filled == 0:
            raise CalibrationError("no calibration tokens reached this layer; cannot sample its inputs")
        return self._rows[: self._filled].copy()

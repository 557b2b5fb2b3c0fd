"""Streaming calibration statistics: the Hessian accumulator and the token sample."""

import numpy as np
import pytest

from qcompile.algorithms.hessian import HessianAccumulator, TokenSample
from qcompile.errors import CalibrationError


def test_streaming_hessian_equals_one_shot():
    rng = np.random.default_rng(0)
    # 700 x 7 rows cross the accumulator's batches of BATCH_ROWS
    batches = [rng.standard_normal((b, 7, 48)).astype(np.float32) * 3 for b in (1, 5, 2, 9, 700, 3)]
    acc = HessianAccumulator(48)
    for batch in batches:
        acc.add(batch)
    x = np.concatenate([b.reshape(-1, 48) for b in batches]).astype(np.float64)
    one_shot = 2.0 / len(x) * x.T @ x
    # The accumulator takes each batch's X^T X in float32 (round-off of a sum of at most BATCH_ROWS products,
    # below 1e-5 of the largest entry); the reference is float64.
    np.testing.assert_allclose(acc.hessian(), one_shot, rtol=0, atol=1e-5 * np.abs(one_shot).max())
    assert acc.count == len(x)


def test_hessian_rejects_wrong_width_and_empty():
    acc = HessianAccumulator(8)
    with pytest.raises(CalibrationError, match="no calibration tokens"):
        acc.hessian()
    with pytest.raises(CalibrationError, match="expects 8"):
        acc.add(np.zeros((3, 9), np.float32))


def test_token_sample_keeps_capacity_rows_drawn_from_the_input():
    sample = TokenSample(capacity=64, seed=3)
    rows = np.arange(1000 * 4, dtype=np.float32).reshape(1000, 4)
    for chunk in np.array_split(rows, 13):
        sample.add(chunk[None])
    kept = sample.rows()
    assert kept.shape == (64, 4) and sample.seen == 1000
    assert set(kept[:, 0].astype(int) // 4) <= set(range(1000))
    assert len(np.unique(kept[:, 0])) == 64  # no row twice
    # Reservoir sampling is uniform: the kept rows' mean index is near the middle (std of the mean ~ 36).
    assert abs(kept[:, 0].mean() / 4 - 499.5) < 5 * 289 / np.sqrt(64), kept[:, 0].mean() / 4


def test_token_sample_small_input_keeps_everything():
    sample = TokenSample(capacity=100)
    x = np.random.default_rng(0).standard_normal((30, 5)).astype(np.float32)
    sample.add(x)
    np.testing.assert_array_equal(sample.rows(), x)
    with pytest.raises(CalibrationError):
        TokenSample().rows()

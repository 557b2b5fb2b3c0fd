"""Full-range RTN (a negative extreme maps onto the most negative code) and the MSE clip search,
against the symmetric amax -> qmax scales qcompile used before; seeded weights, exact comparisons."""

import dataclasses

import numpy as np
import pytest

from qcompile.formats import get_format
from qcompile.quantizer import WeightSpec, mse_clipped_scales, quantize_weight


def _weights(seed=0, shape=(96, 512)):
    return np.random.default_rng(seed).standard_t(5, shape).astype(np.float32) * 0.02


def _mse(w, qw):
    return float(np.mean((w - qw.dequantize()) ** 2))


@pytest.mark.parametrize("fmt,gran", [("int4", "group"), ("int8", "channel"), ("int4", "channel")])
def test_negative_extreme_lands_on_qmin_exactly(fmt, gran):
    w = _weights(1)
    spec = WeightSpec(get_format(fmt), gran, 128)
    qw = quantize_weight(w, spec)
    n, g = qw.scales.shape
    grouped = w.reshape(n, g, -1)
    codes = qw.codes.reshape(n, g, -1)
    lo, hi = grouped.min(axis=2), grouped.max(axis=2)
    negative = -lo > hi
    assert negative.any() and (~negative).any()
    assert (codes.min(axis=2)[negative] == spec.fmt.qmin).all()
    assert (codes.max(axis=2)[~negative] == spec.fmt.qmax).all()
    np.testing.assert_allclose(qw.scales[negative], -lo[negative] / -spec.fmt.qmin, rtol=1e-6)
    assert (qw.scales > 0).all()  # TensorRT requires strictly positive scales


def test_full_range_beats_symmetric_max_to_qmax():
    for seed in range(3):
        w = _weights(seed)
        for fmt, gran in (("int4", "group"), ("int8", "channel")):
            spec = WeightSpec(get_format(fmt), gran, 128)
            old = dataclasses.replace(spec, full_range=False)
            full, before = _mse(w, quantize_weight(w, spec)), _mse(w, quantize_weight(w, old))
            print(f"seed {seed} {fmt}: weight MSE full range {full:.4e} vs max->qmax {before:.4e}")
            assert full < before


def test_clip_search_beats_both_plain_forms():
    w = _weights(7)
    for fmt, gran in (("int4", "group"), ("fp4_e2m1", "group"), ("int8", "channel")):
        spec = WeightSpec(get_format(fmt), gran, 128)
        clipped = _mse(w, quantize_weight(w, spec, mse_clipped_scales(w, spec)))
        plain = _mse(w, quantize_weight(w, spec))
        old = _mse(w, quantize_weight(w, dataclasses.replace(spec, full_range=False)))
        print(f"{fmt}: clip search {clipped:.4e}, full range {plain:.4e}, max->qmax {old:.4e}")
        assert clipped <= plain and clipped < old

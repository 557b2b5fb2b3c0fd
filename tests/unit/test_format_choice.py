"""The FP6 layout chosen per layer (compiler/algorithms/format_choice.py): the candidate with the
least round-to-nearest error, unweighted or weighted by diag(H)."""

import dataclasses

import numpy as np
import pytest

from qcompile.algorithms.format_choice import choose_minifloat
from qcompile.formats import get_format
from qcompile.quantizer import WeightSpec, quantize_weight

E3M2 = WeightSpec(get_format("fp6_e3m2"), "channel", scale_dtype="float16")


def _error(w, spec, weight=None):
    e = np.square(w - quantize_weight(w, spec).dequantize(), dtype=np.float64)
    return float(e.sum() if weight is None else (e @ weight).sum())


def test_even_weights_take_e2m3_and_outlying_ones_e3m2():
    rng = np.random.default_rng(0)
    even = rng.uniform(-1, 1, (32, 256)).astype(np.float32)
    assert choose_minifloat(even, E3M2).fmt.name == "fp6_e2m3"
    spiky = (rng.standard_normal((32, 256)) * 0.01).astype(np.float32)
    spiky[:, :4] = 1.0  # a few weights 100 sigma out: E2M3's 3-bit range flushes the rest to zero
    assert choose_minifloat(spiky, E3M2).fmt.name == "fp6_e3m2"


@pytest.mark.parametrize("seed", range(4))
def test_the_choice_has_the_least_error_weighted_or_not(seed):
    rng = np.random.default_rng(seed)
    w = (rng.standard_t(df=3 + seed, size=(16, 128)) * 0.05).astype(np.float32)
    x = rng.standard_normal((64, 128)) * np.exp(rng.standard_normal(128))
    hessian = 2 / len(x) * x.T @ x
    for h, weight in ((None, None), (hessian, np.diag(hessian))):
        chosen = choose_minifloat(w, E3M2, h)
        other = dataclasses.replace(
            E3M2, fmt=get_format("fp6_e2m3" if chosen.fmt.name == "fp6_e3m2" else "fp6_e3m2")
        )
        assert _error(w, chosen, weight) <= _error(w, other, weight)
        assert dataclasses.replace(chosen, fmt=E3M2.fmt) == E3M2  # only the format changes


def test_other_specs_are_kept():
    w = np.ones((8, 64), np.float32)
    for spec in (
        WeightSpec(get_format("fp4_e2m1"), "group", 32),
        WeightSpec(get_format("fp8_e4m3fn"), "channel"),
        WeightSpec(get_format("int4"), "channel"),
    ):
        assert choose_minifloat(w, spec) is spec

"""The allocator: budget respected exactly, overrides honoured and counted, refusals, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from qcompile.errors import RecipeError
from qcompile.mixed.allocate import allocate, minimum_average_bits

# Tolerance: float64 round-off of sum(P * b) / sum(P), relative 1e-9 (allocate.REL_TOL).
TOL = 1e-9


class _Info:  # what allocate() reads of a LayerInfo
    def __init__(self, name, params, bits):
        self.name, self.params, self.bits = name, params, bits


BITS = {"fp4": 4.125, "int4": 4.25, "fp6": 6.125, "int8": 8.25, "fp16": 16.0}


def _problem(seed=0, layers=12):
    rng = np.random.default_rng(seed)
    infos = [_Info(f"l{i}", int(rng.integers(1, 50)) * 4096, dict(BITS)) for i in range(layers)]
    # error falls with bits; each layer has its own sensitivity
    error = {
        i.name: {f: float(s) * 2.0 ** (-b) for f, b in BITS.items()}
        for i, s in zip(infos, rng.random(layers) * 10)
    }
    return infos, error


def _avg(infos, choice, fixed=None):
    bits = dict(fixed or {})
    for i in infos:
        if i.name in choice:
            bits[i.name] = i.bits[choice[i.name]]
    return sum(i.params * bits[i.name] for i in infos) / sum(i.params for i in infos)


@pytest.mark.parametrize("budget", [4.125, 4.3, 4.5, 5.0, 6.0, 7.7, 8.25, 16.0])
def test_budget_respected_and_nearly_spent(budget):
    infos, error = _problem()
    result = allocate(infos, error, budget)
    got = _avg(infos, result.choice)
    assert got <= budget * (1 + TOL), got
    assert abs(got - result.average_bits) < 1e-12
    # nothing left unspent that a single upgrade could use to lower the error
    for i in infos:
        for f, b in i.bits.items():
            extra = i.params * (b - i.bits[result.choice[i.name]]) / sum(x.params for x in infos)
            if error[i.name][f] < error[i.name][result.choice[i.name]]:
                assert got + extra > budget * (1 + TOL), (i.name, f)


def test_matches_brute_force_on_a_small_problem():
    import itertools

    infos, error = _problem(seed=3, layers=5)
    budget = 5.5
    best = min(
        (sum(error[i.name][f] for i, f in zip(infos, combo)), combo)
        for combo in itertools.product(BITS, repeat=len(infos))
        if _avg(infos, dict(zip([i.name for i in infos], combo))) <= budget
    )
    result = allocate(infos, error, budget)
    # the knapsack rounds costs up to 1e-5 of the budget; on 5 layers that may cost at most a hair of
    # optimality
    assert result.predicted_error <= best[0] * (1 + 1e-6) + 1e-15, (result.predicted_error, best)


def test_overrides_are_honoured_and_counted():
    infos, error = _problem()
    fixed = {"l0": 16.0, "l3": 8.25}
    result = allocate(infos, error, 8.0, fixed)
    assert "l0" not in result.choice and "l3" not in result.choice
    assert _avg(infos, result.choice, fixed) <= 8.0 * (1 + TOL)
    assert abs(result.average_bits - _avg(infos, result.choice, fixed)) < 1e-12
    free_only = allocate(infos, error, 8.0)
    # fixing two layers high leaves less for the others
    assert sum(i.params * i.bits[result.choice[i.name]] for i in infos if i.name in result.choice) < sum(
        i.params * i.bits[free_only.choice[i.name]] for i in infos if i.name in result.choice
    )


def test_budget_below_cheapest_plan_is_refused_with_the_minimum():
    infos, error = _problem()
    fixed = {"l1": 16.0}
    lowest = minimum_average_bits(infos, fixed)
    with pytest.raises(
        RecipeError, match=f"minimum achievable average is {np.ceil(lowest * 1000) / 1000:.3f}"
    ):
        allocate(infos, error, 4.2, fixed)
    with pytest.raises(RecipeError, match="minimum achievable average is 4.125"):
        allocate(infos, error, 4.0)


def test_deterministic():
    infos, error = _problem(seed=7)
    a, b = allocate(infos, error, 5.0), allocate(infos, error, 5.0)
    assert a.choice == b.choice and a.predicted_error == b.predicted_error

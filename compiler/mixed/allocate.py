"""Choose a format per layer: least summed predicted error with sum(P_l b_l) / sum(P_l) <= budget.

A multiple-choice knapsack solved by dynamic programming over the bits above the cheapest plan,
discretized into RESOLUTION units with every option's cost rounded up (so the discrete solution
is feasible in real bits), then topped up greedily with the real costs (largest error drop per
extra bit first) and checked exactly. Fixed layers (user overrides) count against the budget.
Deterministic: ties go to the first format in the candidate order.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from qcompile.errors import CheckFailed, RecipeError
from qcompile.mixed.candidates import LayerInfo

RESOLUTION = 100_000
REL_TOL = 1e-9  # float64 round-off allowed when checking sum(P b) against the budget


@dataclasses.dataclass
class Allocation:
    choice: dict[str, str]  # layer -> format (free layers only)
    average_bits: float  # over all layers, fixed ones included
    predicted_error: float


def _average(infos: list[LayerInfo], bits: dict[str, float]) -> float:
    total = sum(i.params for i in infos)
    return sum(i.params * bits[i.name] for i in infos) / total


def minimum_average_bits(infos: list[LayerInfo], fixed_bits: dict[str, float]) -> float:
    return _average(infos, {i.name: fixed_bits.get(i.name, min(i.bits.values())) for i in infos})


def allocate(
    infos: list[LayerInfo],
    error: dict[str, dict[str, float]],
    avg_bits: float,
    fixed_bits: dict[str, float] | None = None,
) -> Allocation:
    fixed_bits = fixed_bits or {}
    lowest = minimum_average_bits(infos, fixed_bits)
    if avg_bits < lowest * (1 - REL_TOL):
        what = " with the overrides" if fixed_bits else ""
        raise RecipeError(
            f"average bits {avg_bits:g} is below the cheapest plan{what}: the minimum achievable "
            f"average is {math.ceil(lowest * 1000) / 1000:.3f} bits per weight"
        )
    free = [i for i in infos if i.name not in fixed_bits]
    total = sum(i.params for i in infos)
    slack_bits = max(avg_bits - lowest, 0.0) * total  # bit budget above every free layer at its cheapest
    options = [list(i.bits) for i in free]
    extra = [[i.params * (i.bits[f] - min(i.bits.values())) for f in opts] for i, opts in zip(free, options)]
    errs = [[error[i.name][f] for f in opts] for i, opts in zip(free, options)]
    pick = _knapsack(extra, errs, slack_bits)
    pick = _top_up(pick, extra, errs, slack_bits)
    choice = {i.name: options[n][pick[n]] for n, i in enumerate(free)}
    bits = {**fixed_bits, **{i.name: i.bits[choice[i.name]] for i in free}}
    average = _average(infos, bits)
    if average > avg_bits * (1 + REL_TOL):
        raise CheckFailed(f"stage 'mixed precision': allocation exceeded the budget: {average} > {avg_bits}")
    predicted = float(sum(errs[n][pick[n]] for n in range(len(free))))
    return Allocation(choice, average, predicted)


def _knapsack(extra: list[list[float]], errs: list[list[float]], budget: float) -> list[int]:
    if not extra:
        return []
    if budget <= 0:
        return [min(range(len(e)), key=lambda j: (x[j] > 0, e[j])) for x, e in zip(extra, errs)]
    unit = budget / RESOLUTION
    best = np.zeros(RESOLUTION + 1)
    args = np.zeros((len(extra), RESOLUTION + 1), np.int8)
    for n, (costs, values) in enumerate(zip(extra, errs)):
        new = np.full(RESOLUTION + 1, np.inf)
        for j, (cost, value) in enumerate(zip(costs, values)):
            c = int(math.ceil(cost / unit - 1e-9)) if cost > 0 else 0
            if c > RESOLUTION:
                continue
            cand = np.full(RESOLUTION + 1, np.inf)
            cand[c:] = best[: RESOLUTION + 1 - c] + value
            better = cand < new
            new[better] = cand[better]
            args[n][better] = j
        best = new
    pick, c = [0] * len(extra), RESOLUTION
    for n in range(len(extra) - 1, -1, -1):
        j = int(args[n][c])
        pick[n] = j
        cost = extra[n][j]
        c -= int(math.ceil(cost / unit - 1e-9)) if cost > 0 else 0
    return pick


def _top_up(pick: list[int], extra: list[list[float]], errs: list[list[float]], budget: float) -> list[int]:
    """Spend what rounding left over: upgrades with the largest error drop per extra bit that still fit."""
    pick = list(pick)
    while True:
        spent = sum(extra[n][j] for n, j in enumerate(pick))
        best, move = 0.0, None
        for n, j in enumerate(pick):
            for k, (cost, value) in enumerate(zip(extra[n], errs[n])):
                gain, more = errs[n][j] - value, cost - extra[n][j]
                if gain > 0 and spent + more <= budget:
                    ratio = gain / more if more > 0 else math.inf
                    if ratio > best:
                        best, move = ratio, (n, k)
        if move is None:
            return pick
        pick[move[0]] = move[1]

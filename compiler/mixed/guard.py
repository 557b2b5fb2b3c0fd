"""The guard: a proxy plan is only kept when it measures better than the simpler plans that fit.

For a budget, the knapsack plan, every uniform single-format plan among the candidate formats
(format f on every free layer that can take it, fp16 on those that cannot, as the uniform preset
compiles; overrides fixed as given) and the knapsack plan restricted to each pair of candidate
formats (same proxy errors; e.g. fp6 on most layers and fp4 on the least sensitive ones when
uniform fp6 is just over the budget) whose average bits fit the budget are run with onnxruntime
on the calibration samples the sensitivities use (held-out ones excluded), each weight replaced
by its round-to-nearest dequantized value (runner.py: a feed, nothing rebuilt), and compared by
the `measured` metric against the float model (runner.output_error; by default KL divergence
of the next-token distributions on outputs named like logits, 1 - mean cosine on the others).
The least error wins; ties keep the proxy plan, then the first format in candidate order.

Why pairs: the proxies rank layers well enough but misjudge how errors of different formats add
up across layers, so their all-format plans can lose to a two-format plan at the same budget
(measured on all-MiniLM-L6-v2 at 6 bits: docs/MIXED_PRECISION.md).

Cost: `samples` reference runs once per analysis, then `samples` runs per distinct plan (memoized;
uniform plans do not depend on the budget), so a budget costs at most (1 + F + F(F-1)/2) x samples
runs for F candidate formats, samples = min(calibration samples, guard_samples).
What it does not see: activation quantization (overrides to w8a8/fp8/w4a8 are evaluated as
weight-only; the same in every compared plan), and the recipe's weight algorithm (GPTQ, AWQ...):
every plan is compared with RTN weights.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from pathlib import Path

from qcompile.errors import RecipeError
from qcompile.mixed.allocate import REL_TOL, allocate
from qcompile.mixed.candidates import HIGH_PRECISION_BITS, LayerInfo, layer_choice, preset_of

logger = logging.getLogger(__name__)

UNIFORM_FALLBACK = "fp16"  # what a uniform preset leaves a layer that cannot take its format


class PlanEvaluator:
    """Model-output error of a weight assignment {layer: format or preset}, RTN weights fed to one
    onnxruntime session over the float model; results memoized per assignment."""

    def __init__(self, path: Path, infos: list[LayerInfo], samples: list[dict], group_size: int, metric: str):
        from qcompile.mixed.runner import WeightSwapRunner, metric_label

        self.infos = {info.name: info for info in infos}
        self.samples, self.group_size, self.metric = samples, group_size, metric
        self.runner = WeightSwapRunner(path, swappable=[info.layer for info in infos])
        self.metric_label = metric_label(metric, self.runner.output_names)
        self.reference = [self.runner.run(s) for s in samples]
        self.runs = len(samples)
        self._memo: dict[tuple, float] = {}

    def error(self, assignment: dict[str, str]) -> float:
        from qcompile.mixed.runner import output_error, source_layout
        from qcompile.quantizer import quantize_weight

        key = tuple(sorted(assignment.items()))
        if key not in self._memo:
            feeds = {}
            for name, value in key:
                layer = self.infos[name].layer
                spec = layer_choice(layer, preset_of(value), self.group_size).weights
                if spec is not None:
                    dequantized = quantize_weight(layer.weight_nk(), spec).dequantize()
                    feeds[layer.source.name] = source_layout(layer, dequantized)
            outputs = [self.runner.run(s, weights=feeds) for s in self.samples]
            self.runs += len(self.samples)
            self._memo[key] = max(
                output_error(self.reference, outputs, self.metric, self.runner.output_names), 0.0
            )
        return self._memo[key]


@dataclasses.dataclass
class Candidate:
    label: str  # "lim plan", "uniform fp6" or "fp4+fp6"
    choice: dict[str, str]  # free layer -> format
    average_bits: float
    error: float | None = None  # None: not measured
    note: str = ""

    def to_dict(self) -> dict:
        return {
            "plan": self.label,
            "average_bits": round(self.average_bits, 6),
            "error": self.error,
            "note": self.note,
        }


def uniform_choice(infos: list[LayerInfo], fixed: dict, fmt: str) -> dict[str, str]:
    return {i.name: fmt if fmt in i.bits else UNIFORM_FALLBACK for i in infos if i.name not in fixed}


def _bits(info: LayerInfo, fmt: str) -> float:
    return info.bits.get(fmt, HIGH_PRECISION_BITS)


def average_bits(
    infos: list[LayerInfo], fixed: dict[str, tuple[str, float]], choice: dict[str, str]
) -> float:
    total = sum(i.params for i in infos)
    return (
        sum(i.params * (fixed[i.name][1] if i.name in fixed else _bits(i, choice[i.name])) for i in infos)
        / total
    )


def pair_choice(
    infos: list[LayerInfo],
    fixed: dict[str, tuple[str, float]],
    error: dict[str, dict[str, float]],
    pair: tuple[str, str],
    budget: float,
) -> dict[str, str] | None:
    """The knapsack plan with only the formats of `pair` (fp16 where a layer takes neither); None
    when even the cheaper of the two does not fit."""
    restricted = [
        dataclasses.replace(
            i, bits={f: i.bits[f] for f in pair if f in i.bits} or {UNIFORM_FALLBACK: HIGH_PRECISION_BITS}
        )
        for i in infos
    ]
    table = {i.name: {f: error.get(i.name, {}).get(f, 0.0) for f in i.bits} for i in restricted}
    try:
        return allocate(restricted, table, budget, {name: bits for name, (_, bits) in fixed.items()}).choice
    except RecipeError:
        return None


def compare(
    evaluator: PlanEvaluator,
    infos: list[LayerInfo],
    fixed: dict[str, tuple[str, float]],
    formats: tuple[str, ...],
    proxy: Candidate,
    budget: float,
    error: dict[str, dict[str, float]],
) -> tuple[Candidate, list[Candidate]]:
    """(the winner, every candidate with its measured error or why it was not measured)."""
    fixed_formats = {name: value for name, (value, _) in fixed.items()}
    candidates = [proxy]
    for fmt in formats:
        choice = uniform_choice(infos, fixed, fmt)
        candidates.append(Candidate(f"uniform {fmt}", choice, average_bits(infos, fixed, choice)))
    for pair in itertools.combinations(formats, 2):
        choice = pair_choice(infos, fixed, error, pair, budget)
        if choice is not None:  # None: its cheaper format alone is over the budget (listed as uniform)
            candidates.append(Candidate("+".join(pair), choice, average_bits(infos, fixed, choice)))
    seen: dict[tuple, str] = {}
    for c in candidates:
        key = tuple(sorted(c.choice.items()))
        if c.average_bits > budget * (1 + REL_TOL):
            c.note = "over the budget"
        elif key in seen:
            c.note = f"same as {seen[key]}"
        else:
            seen[key] = c.label
            c.error = evaluator.error({**fixed_formats, **c.choice})
            logger.info("guard: %-22s %.3f bits  error %.4g", c.label, c.average_bits, c.error)
    measured = [c for c in candidates if c.error is not None]
    best = min(
        measured, key=lambda c: c.error
    )  # min keeps the first of equals: the proxy plan, then format order
    return best, candidates


def summary(best: Candidate, candidates: list[Candidate], metric: str) -> str:
    parts = [f"{c.label} {c.error:.4g}" for c in candidates if c.error is not None]
    skipped = [c.label for c in candidates if c.error is None and c.note == "over the budget"]
    verdict = (
        "kept the proxy plan"
        if best is candidates[0]
        else f"chose {best.label} over the {candidates[0].label}"
    )
    return (
        f"guard: {verdict}; measured {metric} error on the calibration samples: "
        + ", ".join(parts)
        + (f"; over the budget: {', '.join(skipped)}" if skipped else "")
    )

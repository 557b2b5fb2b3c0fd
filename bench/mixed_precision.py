"""Mixed precision: accuracy versus average bits of `--precision auto` for each sensitivity method,
raw ("auto, METHOD, no guard": the knapsack plan of the proxy) and guarded ("auto, METHOD": the
plan or a uniform plan that fits, whichever measured better on the calibration samples), next to
the uniform weight-only presets and a seeded random allocation under the same budgets.

    python -m bench.mixed_precision [--model minilm|smollm2] [--methods lim,zd,hessian,measured]
                                    [--budgets 4.25,4.5,5,6,8] [--markdown]

MiniLM: mean sentence-embedding cosine against fp32 on minilm.SENTENCES_EVAL (calibrated on
SENTENCES_CALIB). SmolLM2-135M: perplexity on bench/texts/eval.txt (calibrated on calib.txt);
its weights were stored as Q4_1, so its 4-bit results are optimistic. All runs: onnxruntime CPU.
The figure goes to docs/images/mixed_<model>.png.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from bench.tasks import MiniLM, SmolLM2, lowered
from qcompile.mixed.allocate import minimum_average_bits
from qcompile.mixed.auto import AutoOptions, analyze, plan_for_budget, plan_guarded
from qcompile.mixed.candidates import FORMAT_PRESETS
from qcompile.mixed.guard import average_bits, uniform_choice
from qcompile.mixed.sensitivity import SensitivityOptions
from qcompile.pipeline import compile
from qcompile.recipe import Recipe

FIGURES = Path("docs/images")


def _compile_and_eval(bench, recipe: Recipe) -> tuple[float, float]:
    """(average bits over the planned layers with 16 for kept ones, metric)."""
    out = bench.out / "mixed.q.onnx"
    report = compile(bench.model, recipe, bench.calib, output=out, force=True, verify=False).report
    has_plugins = any((lr.emitted_as or "").startswith("plugin") for lr in report.layers)
    sizes = [
        (lr.shape[0] * lr.shape[1], lr.bits_per_weight or 16.0) for lr in report.layers if lr.shape != (0, 0)
    ]
    bits = sum(p * b for p, b in sizes) / sum(p for p, _ in sizes)
    return bits, bench.score(lowered(out) if has_plugins else out)


def random_error(analysis, seed: int) -> dict[str, dict[str, float]]:
    """Random layer priorities: u_l * 4^-bits, u_l ~ U(0, 1) seeded (more bits always help, where is
    random)."""
    rng = np.random.default_rng(seed)
    return {
        i.name: {f: u * 4.0**-b for f, b in i.bits.items()}
        for i, u in zip(analysis.infos, rng.random(len(analysis.infos)))
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("minilm", "smollm2"), default="minilm")
    parser.add_argument("--methods", default="lim,zd,hessian,measured")
    parser.add_argument(
        "--budgets", default="4.25,4.5,5,6,8", help="the cheapest format, fp4 g128, is 4.125 bits"
    )
    parser.add_argument("--uniform", default="int4,fp4,fp6,int8,fp8", help="uniform presets to compare")
    parser.add_argument("--random-seed", type=int, default=0)
    parser.add_argument("--sensitivity-samples", type=int, default=4)
    parser.add_argument(
        "--calib-samples", type=int, default=8, help="smollm2: calibration windows of 128 tokens"
    )
    parser.add_argument(
        "--eval-windows", type=int, default=16, help="smollm2: evaluation windows of 128 tokens"
    )
    parser.add_argument(
        "--group-size",
        type=int,
        default=None,
        help="default 128; 64 for smollm2 (K=576 is not a multiple of 128)",
    )
    parser.add_argument(
        "--no-uniform-budgets",
        action="store_true",
        help="do not add each uniform preset's own average bits to the budgets",
    )
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    bench = (
        MiniLM()
        if args.model == "minilm"
        else SmolLM2(args.calib_samples, args.eval_windows, "calib_mixed.npz")
    )
    methods = args.methods.split(",")
    budgets = [float(b) for b in args.budgets.split(",")]
    group = args.group_size or (64 if args.model == "smollm2" else 128)
    options = AutoOptions(
        method=methods[0],
        report_methods=tuple(methods),
        holdout=0.0,
        group_size=group,
        sensitivity=SensitivityOptions(samples=args.sensitivity_samples),
    )
    t0 = time.perf_counter()
    analysis = analyze(bench.model, bench.calib, options)
    print(f"sensitivities ({', '.join(methods)}) in {time.perf_counter() - t0:.1f} s")
    if not args.no_uniform_budgets:  # auto at exactly each uniform preset's bits: where the curves must meet
        widths = [
            average_bits(analysis.infos, {}, uniform_choice(analysis.infos, {}, f))
            for f in args.uniform.split(",")
        ]
        budgets = sorted(set(budgets) | {math.ceil(w * 1e4 - 1e-6) / 1e4 for w in widths})
    base = Recipe(holdout=0.0, group_size=group)
    rows, series, done = [], {}, {}
    runs = [
        (f"auto, {m}, no guard", lambda b, m=m: plan_for_budget(analysis, b, options, method=m))
        for m in methods
    ]
    runs += [(f"auto, {m}", lambda b, m=m: plan_guarded(analysis, b, options, method=m)) for m in methods]
    runs.append(
        (
            f"random (seed {args.random_seed})",
            lambda b, e=random_error(analysis, args.random_seed): plan_for_budget(
                analysis, b, options, error=e
            ),
        )
    )
    for label, make in runs:
        for budget in budgets:
            t0 = time.perf_counter()
            plan = make(budget)
            key = tuple((n, lp.format) for n, lp in plan.layers.items())
            if key not in done:  # a guarded plan that kept the proxy plan: compiled already
                done[key] = _compile_and_eval(bench, plan.to_recipe(base))
            bits, metric = done[key]
            chose = plan.details.get("guard", {}).get("chosen", "")
            rows.append((label, budget, bits, metric, time.perf_counter() - t0, chose))
            series.setdefault(label, []).append((bits, metric))
            print(
                f"  {label:<26} budget {budget:<4g} -> {bits:.3f} bits  {bench.metric} {metric:.5f}"
                + (f"  (guard: {chose})" if chose else ""),
                flush=True,
            )
    uniform = {}
    rows.append(("fp32 reference", None, 32.0, bench.score(bench.model), 0.0, ""))
    for fmt in args.uniform.split(","):
        t0 = time.perf_counter()
        bits, metric = _compile_and_eval(bench, Recipe(FORMAT_PRESETS[fmt], holdout=0.0, group_size=group))
        rows.append(
            (f"uniform {fmt} ({FORMAT_PRESETS[fmt]})", None, bits, metric, time.perf_counter() - t0, "")
        )
        uniform[fmt] = [(bits, metric)]
        print(f"  {rows[-1][0]:<22} -> {bits:.3f} bits  {bench.metric} {metric:.5f}", flush=True)
    print(
        f"group size {group}; cheapest plan {minimum_average_bits(analysis.infos, {}):.3f} bits; guard: "
        f"{analysis.evaluator.runs} onnxruntime runs in all on {len(analysis.evaluator.samples)} "
        f"calibration samples"
    )
    _print(rows, bench, args.markdown)
    if args.markdown:
        _pivot(rows, budgets, bench)
    from qcompile.mixed.figures import accuracy_curve

    FIGURES.mkdir(parents=True, exist_ok=True)
    path = accuracy_curve(
        series,
        FIGURES / f"mixed_{bench.key}.png",
        ylabel=bench.metric,
        points=uniform,
        title=f"{bench.name}: {bench.metric} vs average bits (auto per method, random, uniform)",
    )
    print(f"wrote {path}")
    return 0


def _print(rows, bench, markdown: bool) -> None:
    print(
        f"\n{bench.name}: {bench.metric} vs fp32 ({'higher' if bench.higher_is_better else 'lower'} "
        f"is better), "
        "onnxruntime CPU"
    )
    if markdown:
        print(
            f"| allocation | budget | average bits | {bench.metric} | guard chose | time (s) "
            f"|\n|---|---|---|---|---|---|"
        )
    for name, budget, bits, metric, secs, chose in rows:
        b = "-" if budget is None else f"{budget:g}"
        if markdown:
            print(f"| {name} | {b} | {bits:.3f} | {metric:.5f} | {chose or '-'} | {secs:.1f} |")
        else:
            print(f"  {name:<30} {b:>5}  {bits:6.3f}  {metric:.5f}  {chose:<14} ({secs:.1f} s)")


def _pivot(rows, budgets, bench) -> None:
    """One row per allocation, one column per budget: metric (achieved bits)."""
    print(
        "\n| allocation | "
        + " | ".join(f"budget {b:g}" for b in budgets)
        + " |\n|---|"
        + "---|" * len(budgets)
    )
    table: dict[str, dict[float, str]] = {}
    for name, budget, bits, metric, _, chose in rows:
        if budget is not None:
            mark = f", {chose}" if chose and not chose.endswith(" plan") else ""
            table.setdefault(name, {})[budget] = f"{metric:.5f} ({bits:.2f}{mark})"
    for name, cells in table.items():
        print(f"| {name} | " + " | ".join(cells.get(b, "-") for b in budgets) + " |")


if __name__ == "__main__":
    raise SystemExit(main())

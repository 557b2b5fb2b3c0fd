"""Mixed precision: accuracy versus average bits of `--precision auto` for each sensitivity method,
next to the uniform weight-only presets and a seeded random allocation under the same budgets.

    python -m bench.mixed_precision [--model minilm|smollm2] [--methods lim,zd,hessian,measured]
                                    [--budgets 4.25,4.5,5,6,8] [--markdown]

MiniLM: mean sentence-embedding cosine against fp32 on minilm.SENTENCES_EVAL (calibrated on
SENTENCES_CALIB). SmolLM2-135M: perplexity on bench/texts/eval.txt (calibrated on calib.txt);
its weights were stored as Q4_1, so its 4-bit results are optimistic. All runs: onnxruntime CPU.
The figure goes to docs/images/mixed_<model>.png.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.tasks import MiniLM, SmolLM2, lowered
from qcompile.mixed.auto import AutoOptions, analyze, plan_for_budget
from qcompile.mixed.allocate import minimum_average_bits
from qcompile.mixed.candidates import FORMAT_PRESETS
from qcompile.mixed.sensitivity import SensitivityOptions
from qcompile.pipeline import compile
from qcompile.recipe import Recipe

FIGURES = Path("docs/images")


def _compile_and_eval(bench, recipe: Recipe) -> tuple[float, float]:
    """(average bits over the planned layers with 16 for kept ones, metric)."""
    out = bench.out / "mixed.q.onnx"
    report = compile(bench.model, recipe, bench.calib, output=out, force=True, verify=False).report
    has_plugins = any((lr.emitted_as or "").startswith("plugin") for lr in report.layers)
    sizes = [(lr.shape[0] * lr.shape[1], lr.bits_per_weight or 16.0) for lr in report.layers if lr.shape != (0, 0)]
    bits = sum(p * b for p, b in sizes) / sum(p for p, _ in sizes)
    return bits, bench.score(lowered(out) if has_plugins else out)


def random_error(analysis, seed: int) -> dict[str, dict[str, float]]:
    """Random layer priorities: u_l * 4^-bits, u_l ~ U(0, 1) seeded (more bits always help, where is random)."""
    rng = np.random.default_rng(seed)
    return {i.name: {f: u * 4.0 ** -b for f, b in i.bits.items()} for i, u in zip(analysis.infos, rng.random(len(analysis.infos)))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("minilm", "smollm2"), default="minilm")
    parser.add_argument("--methods", default="lim,zd,hessian,measured")
    parser.add_argument("--budgets", default="4.25,4.5,5,6,8", help="the cheapest format, fp4 g128, is 4.125 bits")
    parser.add_argument("--uniform", default="int4,fp4,fp6,int8,fp8", help="uniform presets to compare")
    parser.add_argument("--random-seed", type=int, default=0)
    parser.add_argument("--sensitivity-samples", type=int, default=4)
    parser.add_argument("--calib-samples", type=int, default=8, help="smollm2: calibration windows of 128 tokens")
    parser.add_argument("--eval-windows", type=int, default=16, help="smollm2: evaluation windows of 128 tokens")
    parser.add_argument("--group-size", type=int, default=None,
                        help="default 128; 64 for smollm2 (K=576 is not a multiple of 128)")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    bench = MiniLM() if args.model == "minilm" else SmolLM2(args.calib_samples, args.eval_windows, "calib_mixed.npz")
    methods = args.methods.split(",")
    budgets = [float(b) for b in args.budgets.split(",")]
    group = args.group_size or (64 if args.model == "smollm2" else 128)
    options = AutoOptions(method=methods[0], report_methods=tuple(methods), holdout=0.0, group_size=group,
                          sensitivity=SensitivityOptions(samples=args.sensitivity_samples))
    t0 = time.perf_counter()
    analysis = analyze(bench.model, bench.calib, options)
    print(f"sensitivities ({', '.join(methods)}) in {time.perf_counter() - t0:.1f} s")
    base = Recipe(holdout=0.0, group_size=group)
    rows, series = [], {}
    for label, method, error in [(m, m, None) for m in methods] + [
            (f"random (seed {args.random_seed})", methods[0], random_error(analysis, args.random_seed))]:
        for budget in budgets:
            t0 = time.perf_counter()
            plan = plan_for_budget(analysis, budget, options, method=method, error=error)
            bits, metric = _compile_and_eval(bench, plan.to_recipe(base))
            rows.append((f"auto {label}", budget, bits, metric, time.perf_counter() - t0))
            series.setdefault(label, []).append((bits, metric))
            print(f"  {rows[-1][0]:<22} budget {budget:<4g} -> {bits:.3f} bits  {bench.metric} {metric:.5f}", flush=True)
    uniform = {}
    rows.append(("fp32 reference", None, 32.0, bench.score(bench.model), 0.0))
    for fmt in args.uniform.split(","):
        t0 = time.perf_counter()
        bits, metric = _compile_and_eval(bench, Recipe(FORMAT_PRESETS[fmt], holdout=0.0, group_size=group))
        rows.append((f"uniform {fmt} ({FORMAT_PRESETS[fmt]})", None, bits, metric, time.perf_counter() - t0))
        uniform[fmt] = [(bits, metric)]
        print(f"  {rows[-1][0]:<22} -> {bits:.3f} bits  {bench.metric} {metric:.5f}", flush=True)
    print(f"group size {group}; cheapest plan {minimum_average_bits(analysis.infos, {}):.3f} bits")
    _print(rows, bench, args.markdown)
    from qcompile.mixed.figures import accuracy_curve

    FIGURES.mkdir(parents=True, exist_ok=True)
    path = accuracy_curve(series, FIGURES / f"mixed_{bench.key}.png", ylabel=bench.metric, points=uniform,
                          title=f"{bench.name}: {bench.metric} vs average bits (auto per method, random, uniform)")
    print(f"wrote {path}")
    return 0


def _print(rows, bench, markdown: bool) -> None:
    print(f"\n{bench.name}: {bench.metric} vs fp32 ({'higher' if bench.higher_is_better else 'lower'} is better), "
          "onnxruntime CPU")
    if markdown:
        print(f"| allocation | budget | average bits | {bench.metric} | time (s) |\n|---|---|---|---|---|")
    for name, budget, bits, metric, secs in rows:
        b = "-" if budget is None else f"{budget:g}"
        if markdown:
            print(f"| {name} | {b} | {bits:.3f} | {metric:.5f} | {secs:.1f} |")
        else:
            print(f"  {name:<30} {b:>5}  {bits:6.3f}  {metric:.5f}  ({secs:.1f} s)")


if __name__ == "__main__":
    raise SystemExit(main())

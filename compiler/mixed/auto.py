"""`plan_auto`: per-layer sensitivity -> knapsack under an average-bits budget -> guard (the plan
against the uniform plans that fit, measured; guard.py) -> Plan; `sweep`: the accuracy-versus-
average-bits curve; `run_auto`: what `qcompile --precision auto` calls."""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Callable

from qcompile.errors import RecipeError
from qcompile.mixed.allocate import allocate
from qcompile.mixed.candidates import (
    DEFAULT_FORMATS,
    HIGH_PRECISION_BITS,
    LayerInfo,
    layer_infos,
    parse_formats,
    preset_bits,
    preset_of,
)
from qcompile.mixed.guard import Candidate, PlanEvaluator, compare, summary
from qcompile.mixed.plan import LayerPlan, Plan
from qcompile.mixed.sensitivity import Context, Sensitivity, SensitivityOptions, check_method, compute
from qcompile.recipe import SKIP, Recipe, matcher, override_pairs

logger = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]
CHEAP_METHODS = ("lim", "zd", "hessian")  # always computed and written into the plan for comparison


@dataclasses.dataclass(frozen=True)
class AutoOptions:
    avg_bits: float = 4.5
    formats: tuple[str, ...] = DEFAULT_FORMATS
    method: str = "lim"
    overrides: tuple[tuple[str, str], ...] = ()  # (exact name or "re:pattern", format or preset)
    group_size: int = 128
    holdout: float = 0.25  # calibration samples kept out of the search (compile() reports on them)
    report_methods: tuple[str, ...] = CHEAP_METHODS
    sensitivity: SensitivityOptions = SensitivityOptions()
    guard: bool = True  # measure the plan against the uniform plans that fit and keep the best
    guard_samples: int = 32  # calibration samples the guard runs (at most)

    def __post_init__(self):
        object.__setattr__(self, "formats", parse_formats(self.formats))
        object.__setattr__(self, "overrides", override_pairs(self.overrides))
        check_method(self.method)
        for m in self.report_methods:
            check_method(m)
        if self.guard_samples < 1:
            raise RecipeError(f"guard samples must be at least 1, not {self.guard_samples}")
        if not self.avg_bits > 0:
            raise RecipeError(f"average bits must be positive, not {self.avg_bits}")
        for pattern, value in self.overrides:
            matcher(pattern)
            preset_of(value)


@dataclasses.dataclass
class Analysis:
    """The expensive part, done once per model: layers, options, sensitivities, fixed layers."""

    infos: list[LayerInfo]
    sensitivities: dict[str, Sensitivity]
    fixed: dict[str, tuple[str, float]]  # layer -> (format or preset as given, bits)
    notes: list[str]
    evaluator: PlanEvaluator | None = None  # the guard's onnxruntime session (None: guard off)


@dataclasses.dataclass
class SweepPoint:
    budget: float
    average_bits: float | None
    cosine: float | None  # mean over outputs of compile()'s measured mean cosine
    predicted_error: float | None
    note: str = ""


def _fixed(infos: list[LayerInfo], options: AutoOptions, notes: list[str]) -> dict[str, tuple[str, float]]:
    fixed, used = {}, set()
    for info in infos:
        for pattern, value in options.overrides:
            if matcher(pattern)(info.name):
                used.add(pattern)
                bits, reason = preset_bits(info.layer, preset_of(value), options.group_size)
                if bits is None:
                    notes.append(
                        f"override {info.name}={value}: {reason}; it stays in high precision (16 bits)"
                    )
                    value, bits = SKIP, 16.0
                fixed[info.name] = (value, bits)
    notes += [f"override {p!r} matches no layer" for p, _ in options.overrides if p not in used]
    return fixed


def analyze(model, calibration, options: AutoOptions, progress: Progress | None = None) -> Analysis:
    from qcompile import calibration as calib
    from qcompile.mixed.candidates import weight_errors
    from qcompile.model_io import load_model
    from qcompile.passes.canonicalize import find_layers
    from qcompile.pipeline import input_specs

    ir_model, source = load_model(model)
    layers, _ = find_layers(ir_model.graph)
    infos = layer_infos(layers, options.formats, options.group_size)
    if not infos:
        raise RecipeError("model has no quantizable layer to plan")
    notes: list[str] = []
    fixed = _fixed(infos, options, notes)
    methods = list(dict.fromkeys([options.method, *options.report_methods]))
    if calibration is None:
        notes.append("no calibration data: sensitivities were measured on random inputs")
    samples = calib.load_calibration(
        calib.RANDOM if calibration is None else calibration, input_specs(ir_model)
    )
    samples, _ = calib.split_holdout(samples, options.holdout)
    with tempfile.TemporaryDirectory(prefix="qcompile-mixed-") as work:
        path = source
        if path is None:
            import onnx_ir as ir

            path = Path(work) / "model.onnx"
            ir.save(ir_model, path)
        ctx = Context(
            ir_model,
            path,
            infos,
            samples,
            options.group_size,
            options.sensitivity,
            weight_errors(infos, options.group_size),
            progress,
            notes,
        )
        sensitivities = {}
        for m in methods:
            logger.info("sensitivity: %s on %d layers", m, len(infos))
            sensitivities[m] = compute(m, ctx)
        evaluator = None
        if options.guard:
            evaluator = PlanEvaluator(
                path,
                infos,
                samples[: options.guard_samples],
                options.group_size,
                options.sensitivity.measured_metric,
            )
    return Analysis(infos, sensitivities, fixed, notes, evaluator)


def plan_for_budget(
    analysis: Analysis,
    avg_bits: float,
    options: AutoOptions,
    *,
    method: str | None = None,
    error: dict[str, dict[str, float]] | None = None,
) -> Plan:
    """The raw knapsack plan with `method`'s predicted errors (or an explicit error table, e.g. a
    random baseline); no guard."""
    method = method or options.method
    error = error if error is not None else analysis.sensitivities[method].error
    fixed_bits = {name: bits for name, (_, bits) in analysis.fixed.items()}
    result = allocate(analysis.infos, error, avg_bits, fixed_bits)
    return _make_plan(
        analysis, result.choice, avg_bits, options, method, error, result.predicted_error, "search"
    )


def _make_plan(
    analysis: Analysis,
    choice: dict[str, str],
    avg_bits: float,
    options: AutoOptions,
    method: str,
    error: dict[str, dict[str, float]],
    predicted: float | None,
    source: str,
) -> Plan:
    layers = {}
    for info in analysis.infos:
        sens = {m: s.score[info.name] for m, s in analysis.sensitivities.items()}
        if info.name in analysis.fixed:
            label, bits = analysis.fixed[info.name]
            layers[info.name] = LayerPlan(
                label, bits, info.params, "override", sens, error.get(info.name, {})
            )
        else:
            fmt = choice[info.name]
            bits = info.bits.get(fmt, HIGH_PRECISION_BITS)  # missing: a uniform plan's fp16 fallback
            layers[info.name] = LayerPlan(fmt, bits, info.params, source, sens, error[info.name])
    details = {m: s.details for m, s in analysis.sensitivities.items()}
    details["refused"] = {i.name: i.refused for i in analysis.infos if i.refused}
    return Plan(
        avg_bits,
        method,
        layers,
        options.group_size,
        options.formats,
        predicted,
        list(analysis.notes),
        details,
    )


def plan_guarded(
    analysis: Analysis, avg_bits: float, options: AutoOptions, *, method: str | None = None
) -> Plan:
    """The knapsack plan, replaced by a uniform or two-format plan that fits the budget when that one
    measures better (guard.py); the comparison is recorded in plan.details["guard"] and the notes."""
    plan = plan_for_budget(analysis, avg_bits, options, method=method)
    if not options.guard or analysis.evaluator is None:
        return plan
    ev = analysis.evaluator
    free = {name: lp.format for name, lp in plan.layers.items() if lp.source != "override"}
    proxy = Candidate(f"{plan.method} plan", free, plan.average_bits)
    runs = ev.runs
    error = analysis.sensitivities[plan.method].error
    best, candidates = compare(ev, analysis.infos, analysis.fixed, options.formats, proxy, avg_bits, error)
    if best is not proxy:
        predicted = sum(error[n].get(f, 0.0) for n, f in best.choice.items())
        plan = _make_plan(analysis, best.choice, avg_bits, options, plan.method, error, predicted, "guard")
    plan.details["guard"] = {
        "metric": ev.metric_label,
        "samples": len(ev.samples),
        "chosen": best.label,
        "new_runs": ev.runs - runs,
        "candidates": [c.to_dict() for c in candidates],
    }
    plan.notes.append(summary(best, candidates, ev.metric_label))
    return plan


def plan_auto(model, calibration, options: AutoOptions, progress: Progress | None = None) -> Plan:
    return plan_guarded(analyze(model, calibration, options, progress), options.avg_bits, options)


def sweep(
    model,
    calibration,
    options: AutoOptions,
    budgets,
    *,
    analysis: Analysis | None = None,
    recipe: Recipe | None = None,
    progress: Progress | None = None,
) -> list[SweepPoint]:
    """Plan and compile (measured with onnxruntime, nothing written) at every budget."""
    from qcompile.pipeline import compile

    analysis = analysis or analyze(model, calibration, options, progress)
    base = recipe or Recipe(group_size=options.group_size, holdout=options.holdout)
    points = []
    for budget in budgets:
        try:
            plan = plan_guarded(analysis, float(budget), options)
        except RecipeError as exc:
            points.append(SweepPoint(float(budget), None, None, None, str(exc)))
            continue
        report = compile(model, plan.to_recipe(base), calibration).report
        cos = sum(a.cosine_mean for a in report.accuracy) / max(len(report.accuracy), 1)
        points.append(SweepPoint(float(budget), plan.average_bits, cos, plan.predicted_error))
        logger.info("sweep: budget %g -> %.3f bits, cosine %.5f", budget, plan.average_bits, cos)
    return points


@dataclasses.dataclass
class AutoRun:
    """`--precision auto` as compile()'s "mixed precision" stage: search the plan (or take `loaded`),
    sweep the budgets when asked, and hand compile() the plan as a recipe; then annotate the report.
    compile() stages the plan JSON and the HTML (format map, curve) with its other outputs."""

    options: AutoOptions
    loaded: Plan | None = None
    budgets: tuple = ()
    plan: Plan | None = None
    curve: list = dataclasses.field(default_factory=list)

    def decide(self, model, ir_model, calibration, base: Recipe, progress: Progress | None = None) -> Recipe:
        """The recipe that compiles the plan; `model` as the user gave it, `ir_model` loaded from it."""
        analysis = None
        if self.loaded is not None:
            from qcompile.passes.canonicalize import find_layers

            plan = self.loaded
            layers, _ = find_layers(ir_model.graph)
            for warning in plan.refresh(layer_infos(layers, self.options.formats, plan.group_size)):
                logger.warning("plan: %s", warning)
                plan.notes.append(warning)
            base = dataclasses.replace(base, group_size=plan.group_size)
        else:
            analysis = analyze(model, calibration, self.options, progress)
            plan = plan_guarded(analysis, self.options.avg_bits, self.options)
        for note in plan.notes:
            logger.info("plan: %s", note)
        if self.budgets:
            analysis = analysis or analyze(model, calibration, self.options, progress)
            self.curve = sweep(model, calibration, self.options, self.budgets, analysis=analysis, recipe=base)
        self.plan = plan
        return plan.to_recipe(base)

    def annotate(self, report) -> None:
        """The plan's notes (each layer's entry has its format and sensitivity: layer_reports.py)."""
        plan = self.plan
        report.notes.append(
            f"mixed precision ({plan.method}): {plan.average_bits:.4f} average bits per "
            f"weight for a budget of {plan.avg_bits:g}"
        )
        report.notes += [n for n in plan.notes if n.startswith("guard:")]


def run_auto(
    model,
    calibration,
    *,
    avg_bits: float | None,
    formats=DEFAULT_FORMATS,
    method: str = "lim",
    sensitivity_samples: int = 4,
    sweep=(),
    plan_path=None,
    overrides=(),
    output=None,
    report_dir=None,
    force: bool = False,
    progress: Progress | None = None,
    recipe: Recipe | None = None,
    report_path=None,
    guard: bool = True,
    error_metric: str = "auto",
):
    """`qcompile MODEL --precision auto`: compile() with the plan searched (or loaded from `plan_path`)
    in its "mixed precision" stage; the plan JSON (OUT.plan.json) and the report HTML (with the format
    map and the accuracy-versus-bits curve) are written with the other outputs; `report_dir`, when
    given, also receives them as PNG files with an index.html. Returns (Artifacts, Plan, [figure and
    HTML paths in report_dir]).

    `recipe` supplies group size, holdout and algorithm; its exclude/overrides join `overrides`.
    `guard=False` keeps the raw knapsack plan (no comparison with the uniform plans); `error_metric`
    is the model-output error of the measured sensitivity and the guard (runner.output_error)."""
    from qcompile.mixed import figures
    from qcompile.pipeline import compile

    base = recipe or Recipe()
    loaded = Plan.load(plan_path) if plan_path is not None else None
    if avg_bits is None:
        if loaded is None:
            raise RecipeError("--precision auto needs --avg-bits (or --plan FILE)")
        avg_bits = loaded.avg_bits
    if report_dir is not None:
        figures.require_matplotlib()
    merged = (
        [(p, SKIP) for p in base.exclude]
        + list(base.overrides)
        + list(overrides.items() if isinstance(overrides, dict) else overrides)
    )
    options = AutoOptions(
        avg_bits,
        parse_formats(formats),
        method,
        tuple(merged),
        base.group_size,
        base.holdout,
        sensitivity=SensitivityOptions(samples=sensitivity_samples, measured_metric=error_metric),
        guard=guard,
    )
    auto = AutoRun(options, loaded, tuple(sweep))
    artifacts = compile(
        model,
        base,
        calibration,
        output=output,
        report_path=report_path,
        force=force,
        progress=progress,
        auto=auto,
    )
    written = (
        figures.write_report(auto.plan, auto.curve, artifacts.report, Path(report_dir))
        if report_dir is not None
        else []
    )
    return artifacts, auto.plan, written

"""The guard: a proxy plan that measures worse than a uniform plan fitting the budget is replaced by
it, a better one is kept; budget and overrides hold exactly; deterministic; --no-guard turns it off."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from test_mixed_models import calibration, residual_mlp

from qcompile.mixed.auto import AutoOptions, analyze, plan_auto, plan_for_budget, plan_guarded, run_auto

FORMATS = ("fp4", "fp6", "int8")  # K = N = 128: 4.125, 6.125 and 8.25 bits
TOL = 1e-9  # allocate.REL_TOL: float64 round-off of the average bits


def _options(**kw):
    return AutoOptions(method="hessian", report_methods=(), formats=FORMATS, **kw)


def _bad(analysis):
    """An error table that calls fp6 useless and the amplified block (1) and head cheap to quantize:
    the knapsack mixes fp4 on them with int8 elsewhere instead of fp6 everywhere."""
    bits = {"fp4": 4.125, "fp6": 6.125, "int8": 8.25}
    return {
        i.name: {
            f: (1.0 if f == "fp6" else (1e-6 if i.name in ("up1", "down1", "head") else 1.0) * 4.0**-b)
            for f, b in bits.items()
        }
        for i in analysis.infos
    }


@pytest.fixture(scope="module")
def analysis():
    return analyze(residual_mlp(3, gains={1: 3.0}), calibration(), _options())


def _with_table(analysis, table):
    sens = dataclasses.replace(analysis.sensitivities["hessian"], error=table)
    return dataclasses.replace(analysis, sensitivities={"hessian": sens})


def test_a_worse_proxy_plan_loses_to_the_uniform_plan(analysis):
    bad = _with_table(analysis, _bad(analysis))
    raw = plan_for_budget(bad, 6.2, _options())
    assert raw.layers["up1"].format == "fp4" and {lp.format for lp in raw.layers.values()} == {"fp4", "int8"}
    plan = plan_guarded(bad, 6.2, _options())
    guard = plan.details["guard"]
    assert guard["chosen"] == "uniform fp6", guard
    assert {lp.format for lp in plan.layers.values()} == {"fp6"}
    assert {lp.source for lp in plan.layers.values()} == {"guard"}
    errors = {c["plan"]: c["error"] for c in guard["candidates"]}
    assert errors["uniform fp6"] < errors["hessian plan"], errors
    assert errors["uniform fp4"] is not None and errors["uniform int8"] is None  # 8.25 bits: over the budget
    assert any(n.startswith("guard: chose uniform fp6 over the hessian plan") for n in plan.notes), plan.notes
    assert plan.average_bits <= 6.2 * (1 + TOL)


def test_a_better_proxy_plan_is_kept(analysis):
    raw = plan_for_budget(analysis, 6.2, _options())
    plan = plan_guarded(analysis, 6.2, _options())
    assert plan.details["guard"]["chosen"] == "hessian plan", plan.details["guard"]
    assert {n: lp.format for n, lp in plan.layers.items()} == {n: lp.format for n, lp in raw.layers.items()}
    errors = {c["plan"]: c["error"] for c in plan.details["guard"]["candidates"]}
    assert errors["hessian plan"] <= min(e for e in errors.values() if e is not None)


def test_two_format_plans_are_measured_when_the_uniform_plan_is_just_over_the_budget(analysis):
    plan = plan_guarded(analysis, 6.1, _options())  # uniform fp6: 6.125 bits
    candidates = {c["plan"]: c for c in plan.details["guard"]["candidates"]}
    assert candidates["uniform fp6"]["note"] == "over the budget"
    pair = candidates["fp4+fp6"]
    assert pair["average_bits"] <= 6.1 * (1 + TOL) and (
        pair["error"] is not None or pair["note"].startswith("same as")
    )
    measured = [c["error"] for c in candidates.values() if c["error"] is not None]
    assert candidates[plan.details["guard"]["chosen"]]["error"] == min(measured)
    assert plan.average_bits <= 6.1 * (1 + TOL)


def test_budget_and_overrides_hold_and_uniform_plans_count_them():
    options = _options(overrides={"head": "int8", "re:up0": "fp16"})
    fixed = analyze(residual_mlp(3, gains={1: 3.0}), calibration(), options)
    bad = _with_table(fixed, _bad(fixed))
    # uniform fp6 with the overrides: (5 x 6.125 + 8.25 + 16) / 7 = 7.839 bits
    for budget, chosen in ((7.9, "uniform fp6"), (7.8, None)):
        plan = plan_guarded(bad, budget, options)
        assert plan.layers["head"].format == "int8" and plan.layers["head"].source == "override"
        assert plan.layers["up0"].format == "fp16" and plan.layers["up0"].source == "override"
        assert plan.average_bits <= budget * (1 + TOL)
        fp6 = next(c for c in plan.details["guard"]["candidates"] if c["plan"] == "uniform fp6")
        assert fp6["average_bits"] == pytest.approx(
            (5 * 6.125 + 8.25 + 16) / 7, abs=1e-6
        )  # recorded to 6 decimals
        if chosen:
            assert plan.details["guard"]["chosen"] == chosen
        else:
            assert fp6["note"] == "over the budget" and fp6["error"] is None


def test_guard_is_deterministic_and_its_cost_is_bounded():
    model, cal = residual_mlp(3, gains={1: 3.0}), calibration()
    options = _options(avg_bits=6.2, guard_samples=3)
    first, second = plan_auto(model, cal, options), plan_auto(model, cal, options)
    assert first.to_dict() == second.to_dict()
    guard = first.details["guard"]
    assert guard["samples"] == 3
    f = len(FORMATS)
    assert (
        guard["new_runs"] <= (1 + f + f * (f - 1) // 2) * 3
    )  # the plan, each uniform and pair plan, once per sample


def test_no_guard_keeps_the_raw_plan(analysis):
    plan = plan_guarded(analysis, 6.2, _options(guard=False))
    assert "guard" not in plan.details and not any(n.startswith("guard:") for n in plan.notes)
    assert analyze(residual_mlp(2), calibration(), _options(guard=False)).evaluator is None


def test_cli_no_guard_and_plan_reload(tmp_path):
    from qcompile.cli import main

    model, calib = tmp_path / "toy.onnx", tmp_path / "calib.npz"
    onnx.save(residual_mlp(2), model)
    np.savez(calib, **calibration(8))
    args = [
        str(model),
        "-p",
        "auto",
        "--avg-bits",
        "6.2",
        "--formats",
        ",".join(FORMATS),
        "--sensitivity",
        "hessian",
        "--calib",
        str(calib),
        "-q",
        "--force",
    ]
    plans = {}
    for flag in ((), ("--no-guard",)):
        result = CliRunner().invoke(main, [*args, *flag])
        assert result.exit_code == 0, result.output
        plans[flag] = json.loads((tmp_path / "toy.q.plan.json").read_text())
    assert "guard" in plans[()]["details"] and "guard" not in plans[("--no-guard",)]["details"]
    report = json.loads((tmp_path / "toy.q.report.json").read_text())
    assert not any("guard:" in n for n in report.get("notes", []))
    # a saved guarded plan compiles again as is (no search, no guard)
    plan_file = tmp_path / "guarded.plan.json"
    plan_file.write_text(json.dumps(plans[()]))
    artifacts, plan, _ = run_auto(
        model, calib, avg_bits=None, plan_path=plan_file, output=None, report_dir=None
    )
    assert {n: lp.format for n, lp in plan.layers.items()} == {
        n: e["format"] for n, e in plans[()]["layers"].items()
    }
    assert plan.details["guard"] == plans[()]["details"]["guard"]

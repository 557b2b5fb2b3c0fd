"""Plan JSON round trip, Plan -> Recipe, and run_auto end to end on a toy model (compile measured)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from test_mixed_models import calibration, residual_mlp

from qcompile.errors import RecipeError
from qcompile.mixed.auto import AutoOptions, analyze, plan_auto, plan_for_budget, run_auto
from qcompile.mixed.plan import Plan


@pytest.fixture(scope="module")
def analysis():
    return analyze(residual_mlp(3, gains={1: 3.0}), calibration(), AutoOptions(method="hessian"))


def test_plan_json_round_trip_and_recipe(analysis, tmp_path):
    plan = plan_for_budget(analysis, 5.0, AutoOptions(method="hessian"))
    path = plan.save(tmp_path / "plan.json")
    again = Plan.load(path)
    assert again.to_dict() == plan.to_dict()
    recipe = again.to_recipe()
    for name, lp in plan.layers.items():
        assert recipe.choice_for(name).preset == lp.preset
    assert recipe.choice_for("not_in_plan").weights is None  # unplanned layers stay in high precision
    data = json.loads(path.read_text())
    assert set(data["layers"]["up0"]) >= {"format", "bits", "params", "sensitivity"}
    assert set(data["layers"]["up0"]["sensitivity"]) == {"hessian", "lim", "zd"}


def test_malformed_plan_is_a_recipe_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"avg_bits": 4, "layers": {"up0": {"format": "int3"}}}))
    with pytest.raises(RecipeError, match="int3"):
        Plan.load(bad)
    bad.write_text("{")
    with pytest.raises(RecipeError, match="not valid JSON"):
        Plan.load(bad)


def test_plan_is_deterministic():
    model, cal = residual_mlp(3, gains={1: 3.0}), calibration()
    for method in ("lim", "measured"):
        options = AutoOptions(avg_bits=5.0, method=method, report_methods=())
        assert plan_auto(model, cal, options).to_dict() == plan_auto(model, cal, options).to_dict()


def test_overrides_win_and_count_against_the_budget(analysis):
    options = AutoOptions(method="hessian", overrides={"re:head": "fp16", "up0": "int8"})
    fixed = analyze(residual_mlp(3, gains={1: 3.0}), calibration(), options)
    plan = plan_for_budget(fixed, 7.0, options)
    assert plan.layers["head"].format == "fp16" and plan.layers["head"].source == "override"
    assert plan.layers["up0"].format == "int8" and plan.layers["up0"].bits == 8.25
    assert plan.average_bits <= 7.0 * (1 + 1e-9)
    with pytest.raises(
        RecipeError, match=r"minimum achievable average is 6\.411"
    ):  # (5 x 4.125 + 8.25 + 16) / 7
        plan_for_budget(fixed, 5.0, options)


def test_run_auto_compiles_the_plan_and_reuses_it(tmp_path):
    model = tmp_path / "toy.onnx"
    onnx.save(residual_mlp(3, gains={1: 3.0}), model)
    calib = tmp_path / "calib.npz"
    np.savez(calib, **calibration(8))
    out = tmp_path / "toy.q.onnx"
    artifacts, plan, files = run_auto(
        model,
        calib,
        avg_bits=5.0,
        formats="int4,int8,fp16",
        method="hessian",
        sensitivity_samples=2,
        sweep=[4.25, 8.25],
        plan_path=None,
        overrides=[("re:head", "int8")],
        output=out,
        report_dir=tmp_path / "fig",
        force=False,
        progress=None,
    )
    layers = {lr.name: lr for lr in artifacts.report.layers}
    assert layers["head"].weight_format == "int8"
    for name, lp in plan.layers.items():
        assert layers[name].bits_per_weight == pytest.approx(lp.bits, abs=0)
    assert plan.average_bits <= 5.0 * (1 + 1e-9)
    assert (
        artifacts.report.accuracy[0].cosine_mean > 0.9
    )  # 4/8-bit weights on a 7-layer toy: a loose sanity floor
    assert {p.name for p in files} == {
        "bits_per_layer.png",
        "sensitivity.png",
        "accuracy_vs_bits.png",
        "index.html",
    }
    assert "data:image/png;base64," in (tmp_path / "fig" / "index.html").read_text()
    plan_file = out.with_name("toy.q.plan.json")
    assert plan_file in artifacts.files
    # hand edit: every layer int8, then compile from the file without searching
    data = json.loads(plan_file.read_text())
    for entry in data["layers"].values():
        entry["format"] = "int8"
    plan_file.write_text(json.dumps(data))
    artifacts, plan, _ = run_auto(
        model,
        calib,
        avg_bits=5.0,
        formats="int4",
        method="measured",
        sensitivity_samples=1,
        sweep=(),
        plan_path=plan_file,
        overrides=(),
        output=out,
        report_dir=None,
        force=True,
        progress=None,
    )
    assert {lr.weight_format for lr in artifacts.report.layers} == {"int8"}
    assert plan.average_bits == pytest.approx(8.25, abs=0)


def test_run_auto_needs_a_budget_or_a_plan():
    with pytest.raises(RecipeError, match="--avg-bits"):
        run_auto(
            residual_mlp(2),
            None,
            avg_bits=None,
            sweep=(),
            plan_path=None,
            overrides=(),
            output=None,
            report_dir=None,
            force=False,
            progress=None,
        )


def test_candidate_bits_use_the_group_size_compile_fits_to_k():
    import tiny_models
    from qcompile.mixed.candidates import layer_infos, weight_spec
    from qcompile.model_io import load_model
    from qcompile.passes.canonicalize import find_layers

    ir_model, _ = load_model(tiny_models.mlp(k=96))  # fc1: K=96, compiled at group 32 when 64 is asked
    infos = {i.name: i for i in layer_infos(find_layers(ir_model.graph)[0], ("int4",), 64)}
    assert infos["fc1"].bits["int4"] == 4 + 32 / 32 and infos["fc2"].bits["int4"] == 4 + 32 / 64
    assert weight_spec("int4", 64, infos["fc1"].layer).group_size == 32


def test_auto_is_a_stage_of_compile_and_its_outputs_are_all_or_nothing(tmp_path, monkeypatch):
    from qcompile import pipeline
    from qcompile.errors import ModelError

    model = tmp_path / "toy.onnx"
    onnx.save(residual_mlp(3, gains={1: 3.0}), model)
    calib = tmp_path / "calib.npz"
    np.savez(calib, **calibration(8))
    kwargs = dict(avg_bits=5.0, formats="int4,int8,fp16", method="hessian", sensitivity_samples=2)
    artifacts, plan, _ = run_auto(
        model, calib, output=tmp_path / "toy.q.onnx", report_path=tmp_path / "toy.q.report.json", **kwargs
    )
    assert list(artifacts.report.timings)[:3] == ["load", "mixed precision", "plan"]
    assert sorted(p.name for p in artifacts.files) == [
        "toy.q.onnx",
        "toy.q.plan.json",
        "toy.q.recipe.json",
        "toy.q.report.html",
        "toy.q.report.json",
    ]

    def fail(*args):
        raise ModelError("verification failed on purpose")

    monkeypatch.setattr(pipeline, "_verify", fail)
    with pytest.raises(ModelError):
        run_auto(
            model, calib, output=tmp_path / "other.q.onnx", report_path=tmp_path / "other.json", **kwargs
        )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("other")]

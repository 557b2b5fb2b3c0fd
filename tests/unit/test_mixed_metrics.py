"""The model-output errors the measured sensitivity and the guard compare plans by: KL divergence of
the next-token distributions on logits, 1 - cosine elsewhere ("auto"), and the metric recorded."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from test_mixed_models import calibration, residual_mlp

from qcompile.errors import RecipeError
from qcompile.mixed.auto import AutoOptions, analyze, plan_guarded
from qcompile.mixed.runner import kl_divergence, output_error, output_metrics
from qcompile.mixed.sensitivity import SensitivityOptions


def _direct_kl(a, b):
    """KL(softmax(a) || softmax(b)) per row, written out from the definition."""
    p = np.exp(a) / np.exp(a).sum(-1, keepdims=True)
    q = np.exp(b) / np.exp(b).sum(-1, keepdims=True)
    return (p * np.log(p / q)).sum(-1)


def test_kl_divergence_matches_its_definition():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 5, 7)), rng.standard_normal((2, 5, 7))
    # float64 throughout; 1e-12 covers the max-shift and log-sum-exp round-off
    assert kl_divergence(a, b) == pytest.approx(float(_direct_kl(a, b).mean()), rel=1e-12)
    assert kl_divergence(a, a) == 0.0
    assert kl_divergence(a, b) > 0


def test_kl_divergence_is_stable_on_large_logits():
    a = np.array([[1000.0, 990.0, 0.0]])
    b = np.array([[990.0, 1000.0, 0.0]])
    e10 = np.exp(-10.0)
    expected = (1 - e10) / (1 + e10) * 10.0  # p log(p/q) over the two live classes, closed form
    assert kl_divergence(a, b) == pytest.approx(expected, rel=1e-9)


def test_auto_uses_kl_on_logits_and_cosine_elsewhere():
    assert output_metrics("auto", ["logits", "hidden", "LM_Logits"]) == ["kl", "cosine", "kl"]
    assert output_metrics("mse", ["logits", "y"]) == ["mse", "mse"]
    rng = np.random.default_rng(1)
    ref = [[rng.standard_normal((4, 16)).astype(np.float32)] for _ in range(3)]
    shifted = [[r[0] + 3.0] for r in ref]  # same next-token distributions, different vectors
    assert output_error(ref, shifted, "auto", ["logits"]) == pytest.approx(0.0, abs=1e-12)
    assert output_error(ref, shifted, "auto", ["y"]) > 0.1
    assert output_error(ref, shifted, "cosine", ["logits"]) > 0.1


def test_errors_average_over_outputs():
    rng = np.random.default_rng(2)
    ref = [[rng.standard_normal((3, 8)), rng.standard_normal((3, 8))] for _ in range(2)]
    out = [[r[0] * 1.5, r[1] + rng.standard_normal((3, 8))] for r in ref]
    kl = np.mean([kl_divergence(r[0], o[0]) for r, o in zip(ref, out)])
    cos = 1 - np.mean(
        [
            np.dot(r[1].ravel(), o[1].ravel()) / np.linalg.norm(r[1]) / np.linalg.norm(o[1])
            for r, o in zip(ref, out)
        ]
    )
    # float64 inputs: only summation order differs
    assert output_error(ref, out, "auto", ["logits", "h"]) == pytest.approx((kl + cos) / 2, rel=1e-10)


def test_unknown_metric_is_refused():
    with pytest.raises(RecipeError, match="auto, cosine, mse, kl"):
        SensitivityOptions(measured_metric="l1")


def _logits_model():
    model = residual_mlp(2, gains={1: 3.0})
    model.graph.node[-1].output[0] = "logits"
    model.graph.output[0].name = "logits"
    return model


@pytest.mark.parametrize("metric, label", [("auto", "auto (kl on logits)"), ("cosine", "cosine")])
def test_guard_and_measured_record_the_metric(metric, label):
    options = AutoOptions(
        method="measured",
        report_methods=(),
        formats=("fp4", "fp6", "int8"),
        sensitivity=SensitivityOptions(samples=2, measured_metric=metric),
    )
    analysis = analyze(_logits_model(), calibration(), options)
    assert analysis.sensitivities["measured"].details["metric"] == label
    plan = plan_guarded(analysis, 6.2, options)
    assert plan.details["guard"]["metric"] == label
    assert any(n.startswith("guard:") and label in n for n in plan.notes), plan.notes


def test_cli_error_metric(tmp_path):
    import onnx

    from qcompile.cli import main

    path = tmp_path / "m.onnx"
    onnx.save(_logits_model(), path)
    np.savez(tmp_path / "calib.npz", **calibration())
    args = [
        str(path),
        "--precision",
        "auto",
        "--avg-bits",
        "6.2",
        "--formats",
        "fp4,fp6,int8",
        "--no-verify",
        "--calib",
        str(tmp_path / "calib.npz"),
        "--report-dir",
        str(tmp_path / "r"),
        "-q",
    ]
    result = CliRunner().invoke(main, [*args, "--error-metric", "kl"])
    assert result.exit_code == 0, result.output
    import json

    plan = json.loads((tmp_path / "m.q.plan.json").read_text())
    assert plan["details"]["guard"]["metric"] == "kl"
    bad = CliRunner().invoke(main, [*args, "--error-metric", "l1", "--force"])
    assert bad.exit_code != 0 and "l1" in bad.output

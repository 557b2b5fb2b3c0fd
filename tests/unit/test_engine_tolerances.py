"""The per-output tolerances a TensorRT engine is compared with (`qcompile compare`): written into
the report by compile() from the quantized model's own outputs, read back by trt_compare."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import qcompile
import tiny_models
from qcompile.errors import QCompileError
from qcompile.report import ENGINE_ATOL_PER_RMS, ENGINE_RTOL
from qcompile.trt_compare import report_tolerances


def test_report_tolerances_follow_the_quantized_outputs_rms(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(tiny_models.mlp(), path)
    calib = tiny_models.calibration()
    out = tmp_path / "mlp.q.onnx"
    qcompile.compile(path, "w8a8", calib, output=out, report_path=tmp_path / "mlp.q.report.json")
    report = json.loads((tmp_path / "mlp.q.report.json").read_text())
    held = report["eval_samples"]  # the last samples are held back for the report
    assert 0 < held < len(calib["x"])
    (entry,) = report["accuracy"]
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (name,) = [o.name for o in session.get_outputs()]
    ys = [session.run(None, {"x": x})[0] for x in calib["x"][-held:]]
    rms = np.sqrt(np.mean(np.concatenate([y.ravel() for y in ys]).astype(np.float64) ** 2))
    # the report evaluates on the same samples as this run: float32 outputs, summed in float64
    assert entry["name"] == name and entry["rms"] == pytest.approx(rms, rel=1e-6)
    assert entry["engine_atol"] == pytest.approx(ENGINE_ATOL_PER_RMS * rms, rel=1e-6)
    assert entry["engine_rtol"] == ENGINE_RTOL
    assert report_tolerances(out) == ({name: ENGINE_RTOL}, {name: entry["engine_atol"]})


def test_report_tolerances_without_or_with_a_bad_report(tmp_path):
    model = tmp_path / "m.q.onnx"
    assert report_tolerances(model) is None  # no report beside it: compare falls back to defaults
    with pytest.raises(QCompileError, match="does not exist"):
        report_tolerances(model, tmp_path / "missing.json")
    old = tmp_path / "m.q.report.json"
    old.write_text(json.dumps({"accuracy": [{"name": "y", "cosine_mean": 1.0}]}))
    assert report_tolerances(model) is None  # a report written before the tolerances existed
    old.write_text("[1, 2]")
    with pytest.raises(QCompileError, match="is not a qcompile report"):
        report_tolerances(model)


def test_report_verifies_on_at_most_32_held_back_samples(tmp_path):
    from qcompile.calibration import HELD_BACK_AT_MOST

    path = tmp_path / "mlp.onnx"
    onnx.save(tiny_models.mlp(), path)
    calib = tiny_models.calibration(samples=200)  # a quarter would be 50
    qcompile.compile(path, "w8a8", calib, output=tmp_path / "q.onnx", report_path=tmp_path / "q.report.json")
    report = json.loads((tmp_path / "q.report.json").read_text())
    assert report["eval_samples"] == HELD_BACK_AT_MOST == 32

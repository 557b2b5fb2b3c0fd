"""`qcompile lower`: plugin nodes -> standard ONNX that onnxruntime runs, written with compile's rules."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
from click.testing import CliRunner

import tiny_models
from qcompile.cli import main
from qcompile.passes.lower_plugins import LowerPluginNodes


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lower")
    onnx.save(tiny_models.mlp(), folder / "mlp.onnx")
    result = run(folder / "mlp.onnx", "-p", "w6a16", "--no-verify", "-q")
    assert result.exit_code == 0, result.output
    return folder / "mlp.q.onnx"


def _outputs(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_lower_writes_standard_onnx_that_matches_the_in_memory_lowering(quantized, tmp_path):
    out = tmp_path / "mlp.ref.onnx"
    result = run("lower", quantized, "-o", out)
    assert result.exit_code == 0, result.output
    lowered = onnx.load(str(out))
    assert {n.domain for n in lowered.graph.node} <= {"", "ai.onnx"}
    assert any(n.domain == "qcompile" for n in onnx.load(str(quantized)).graph.node)
    expected = ir.load(quantized)
    LowerPluginNodes()(expected)
    ir.save(expected, tmp_path / "expected.onnx")
    x = tiny_models.calibration()["x"][0]
    # the same graph built by the same pass: zero tolerance
    np.testing.assert_array_equal(_outputs(out, x), _outputs(tmp_path / "expected.onnx", x))


def test_lower_refuses_to_overwrite_and_to_replace_the_input(quantized, tmp_path):
    out = tmp_path / "m.ref.onnx"
    out.write_text("keep me")
    refused = run("lower", quantized, "-o", out)
    assert refused.exit_code == 2 and "--force" in refused.stderr and out.read_text() == "keep me"
    assert run("lower", quantized, "-o", out, "--force").exit_code == 0
    onnx.load(str(out))
    same = run("lower", quantized, "-o", quantized)
    assert same.exit_code == 2 and "input" in same.stderr
    assert run("lower", tmp_path / "missing.onnx").exit_code == 2


def test_lower_default_name_and_external_data(quantized, tmp_path):
    model = onnx.load(str(quantized))
    onnx.save(
        model,
        tmp_path / "ext.q.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="ext.q.onnx.data",
        size_threshold=0,
    )
    data = (tmp_path / "ext.q.onnx.data").read_bytes()
    result = run("lower", tmp_path / "ext.q.onnx", "-q")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ext.q.ref.onnx").is_file()
    assert (tmp_path / "ext.q.onnx.data").read_bytes() == data
    assert run("lower", quantized, "-o", tmp_path / "inline.ref.onnx", "-q").exit_code == 0
    x = tiny_models.calibration()["x"][0]
    expected = _outputs(tmp_path / "inline.ref.onnx", x)
    np.testing.assert_array_equal(_outputs(tmp_path / "ext.q.ref.onnx", x), expected)


def test_lower_streams_large_models_into_external_data(quantized, tmp_path, monkeypatch):
    import qcompile.pipeline

    monkeypatch.setattr(qcompile.pipeline, "STREAM_BYTES", 0)  # every model counts as large
    out = tmp_path / "big.ref.onnx"
    assert run("lower", quantized, "-o", out, "-q").exit_code == 0
    assert (tmp_path / "big.ref.onnx.data").is_file()
    monkeypatch.undo()
    assert run("lower", quantized, "-o", tmp_path / "small.ref.onnx", "-q").exit_code == 0
    assert not (tmp_path / "small.ref.onnx.data").exists()
    x = tiny_models.calibration()["x"][0]
    np.testing.assert_array_equal(_outputs(out, x), _outputs(tmp_path / "small.ref.onnx", x))

"""`qcompile inspect`: layers, per-preset decisions and sizes from the structure alone; no weight
data is read (the proof: the external .data file is absent and reading a tensor raises)."""

from __future__ import annotations

import onnx
import onnx_ir as ir
import pytest
from click.testing import CliRunner

import tiny_models
from qcompile.cli import main
from qcompile.inspection import inspect_model


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """mlp with K=200 for fc1 (no group size 128, 64 or 32 divides it), every initializer saved in
    external data, then the data file removed."""
    model = tiny_models.mlp(k=200)
    onnx.save(
        model,
        tmp_path / "m.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="m.onnx.data",
        size_threshold=0,
    )
    (tmp_path / "m.onnx.data").unlink()

    def refuse(*args, **kwargs):
        raise AssertionError("inspect read weight data")

    monkeypatch.setattr(ir.ExternalTensor, "numpy", refuse)
    monkeypatch.setattr(ir.ExternalTensor, "tobytes", refuse)
    return tmp_path / "m.onnx"


def test_inspect_reads_no_weight_data(no_data):
    found = inspect_model(no_data)
    assert [(layer.name, layer.n, layer.k) for layer in found.layers] == [("fc1", 256, 200), ("fc2", 64, 256)]
    assert found.size_before == 4 * (200 * 256 + 256 + 64 * 256) + 8 * 2  # float32 w1, b1, w2; int64 shape
    by_preset = {p.preset: p for p in found.presets}
    w8 = by_preset["w8a8"]
    assert w8.decisions["fc1"].bits == pytest.approx(8 + 32 / 200) and w8.activations == ["x", "r2"]
    w4 = by_preset["w4a16"]  # K=200 has no group size (128, 64, 32) dividing it
    assert w4.decisions["fc1"].bits is None
    assert "not a multiple of the group size" in w4.decisions["fc1"].reason
    assert w4.decisions["fc2"].bits == pytest.approx(4 + 32 * 2 / 256) and w4.activations == []
    expected = found.size_before - 64 * 256 * 4 + 64 * 256 * w4.decisions["fc2"].bits / 8
    assert w4.size_after == round(expected)
    kept_bits, fc2_bits = 256 * 200 * 16, 64 * 256 * w4.decisions["fc2"].bits
    assert w4.bits_per_weight == pytest.approx((kept_bits + fc2_bits) / (256 * 200 + 64 * 256))


def test_inspect_command(no_data):
    result = run("inspect", no_data)
    assert result.exit_code == 0, result.output
    assert "fc1" in result.output and "w6a16" in result.output
    assert "75.8%" in result.output  # fc1's share: 200*256 of 200*256 + 64*256
    assert "w4a16: kept fc1: K=200 is not a multiple of the group size" in result.output
    one = run("inspect", no_data, "--precision", "w4a8")
    assert one.exit_code == 0, one.output
    # fc1 is kept under w4a8 (K=200), so only fc2's input needs a range
    assert "needs calibration: r2" in one.output and "needs calibration: x" not in one.output
    assert "w8a8" not in one.output
    bad = run("inspect", no_data, "--precision", "w3a3")
    assert bad.exit_code == 2 and "valid:" in bad.stderr
    missing = run("inspect", no_data.with_name("nope.onnx"))
    assert missing.exit_code == 2 and "model not found" in missing.stderr
    assert sorted(p.name for p in no_data.parent.iterdir()) == ["m.onnx"]  # nothing written


def test_inspect_auto_lists_the_formats_each_layer_can_take(no_data):
    result = run("inspect", no_data, "--precision", "auto")
    assert result.exit_code == 0, result.output
    fc1 = next(line for line in result.output.splitlines() if line.startswith("fc1 "))
    assert fc1.split()[4:] == ["-", "-", "-", f"{8 + 32 / 200:.3f}", f"{8 + 32 / 200:.3f}", "16.000"]
    assert "fc1: no int4: K=200 is not a multiple of the group size" in result.output
    # cheapest plan: fc1 at int8 (8.16), fc2 at fp4 (4 + 16 * 2 / 256: FP16 scales, group 128)
    lowest = (200 * 256 * (8 + 32 / 200) + 64 * 256 * (4 + 16 * 2 / 256)) / (200 * 256 + 64 * 256)
    assert f"--avg-bits can range from {lowest:.3f} to 16.000" in result.output

"""Invalid models are refused before anything runs, with one line naming the problem (exit 2)."""

from __future__ import annotations

import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

import tiny_models
from qcompile.cli import main


def _mutated(change) -> onnx.ModelProto:
    model = tiny_models.mlp(k=32, hidden=32, n=16)
    change(model)
    return model


def _swap_first_nodes(m):
    a, b = onnx.NodeProto(), onnx.NodeProto()
    a.CopyFrom(m.graph.node[0])
    b.CopyFrom(m.graph.node[1])
    m.graph.node[0].CopyFrom(b)
    m.graph.node[1].CopyFrom(a)


def _dim(m):
    return m.graph.input[0].type.tensor_type.shape.dim[1]


CASES = {
    "unsorted nodes": (_swap_first_nodes, "topologically sorted"),
    "dangling input": (lambda m: m.graph.node[1].input.__setitem__(0, "nowhere"), "nowhere"),
    "cycle": (lambda m: m.graph.node[0].input.__setitem__(0, "y"), "invalid model"),
    "empty op type": (lambda m: setattr(m.graph.node[2], "op_type", ""), "empty op type"),
    "no outputs": (lambda m: m.graph.ClearField("output"), "no graph outputs"),
    "empty input name": (lambda m: setattr(m.graph.input[0], "name", ""), "empty name"),
    "IR version 99": (lambda m: setattr(m, "ir_version", 99), "ir_version"),
    "opset 99": (lambda m: setattr(m.opset_import[0], "version", 99), "newer than"),
    "raw data of the wrong size": (
        lambda m: setattr(m.graph.initializer[0], "raw_data", b"\0" * 12),
        "needs",
    ),
    "wrong weight dtype": (
        lambda m: setattr(m.graph.initializer[0], "data_type", TensorProto.INT64),
        "needs",
    ),
    "negative input dim": (lambda m: setattr(_dim(m), "dim_value", -3), "negative dimension"),
    "input dim 0": (lambda m: setattr(_dim(m), "dim_value", 0), "dimension 0"),
    "unknown op": (lambda m: setattr(m.graph.node[2], "op_type", "Frobnicate"), "Frobnicate"),
    "type mismatch": (
        lambda m: m.graph.initializer[1].CopyFrom(
            helper.make_tensor("b1", TensorProto.INT64, [32], [0] * 32)
        ),
        "invalid model",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", ["compile", "check"])
def test_invalid_model_is_one_line_exit_2(tmp_path, case, command):
    change, message = CASES[case]
    path = tmp_path / "m.onnx"
    data = _mutated(change).SerializeToString()
    path.write_bytes(data)
    args = [str(path), "-p", "w4a16", "-q"] if command == "compile" else ["check", str(path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"] and path.read_bytes() == data


def test_external_data_shorter_than_declared_is_refused(tmp_path):
    onnx.save(
        tiny_models.mlp(), tmp_path / "m.onnx", save_as_external_data=True, location="w.bin", size_threshold=0
    )
    with open(tmp_path / "w.bin", "r+b") as f:
        f.truncate(100)
    result = CliRunner().invoke(main, ["check", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2 and "which has 100" in result.stderr, result.stderr


def test_valid_model_passes_check(tmp_path, mlp):
    result = CliRunner().invoke(main, ["check", str(mlp)])
    assert result.exit_code == 0, result.output

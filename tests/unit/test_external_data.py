"""External data is read from the model's own folder only, in every code path (opset conversion
included), whatever the working directory holds; the opset upgrade never reads the weights."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper

import qcompile
import tiny_models
from qcompile.errors import ModelError
from qcompile.model_io import MIN_OPSET, load_model, onnx_opset, upgrade_opset


def _external(model: onnx.ModelProto, folder, name="model.onnx", location="weights.bin"):
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / name, save_as_external_data=True, location=location, size_threshold=0)
    return folder / name


def _weights(path) -> dict[str, np.ndarray]:
    model = ir.load(path)
    return {n: v.const_value.numpy().copy() for n, v in model.graph.initializers.items()}


@pytest.mark.parametrize("opset", [13, 17])
def test_external_model_compiled_from_another_folder_reads_its_own_data(tmp_path, monkeypatch, opset):
    """Model in A, working directory B holding a decoy data file of the same name and size, output in C:
    the result equals the one from the same model with embedded weights."""
    model = _external(tiny_models.mlp(opset=opset), tmp_path / "a")
    size = (tmp_path / "a" / "weights.bin").stat().st_size
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "weights.bin").write_bytes(np.full(size // 4, 7.0, np.float32).tobytes())
    (tmp_path / "c").mkdir()
    (tmp_path / "d").mkdir()
    embedded = tmp_path / "d" / "embedded.onnx"
    onnx.save(tiny_models.mlp(opset=opset), embedded)
    monkeypatch.chdir(tmp_path / "b")

    out = tmp_path / "c" / "q.onnx"
    artifacts = qcompile.compile(model.resolve(), "w4a16", None, output=out)
    expected = qcompile.compile(embedded, "w4a16", None, output=tmp_path / "d" / "q.onnx")

    assert onnx.load(str(out)).opset_import[0].version == MIN_OPSET
    got, want = _weights(out), _weights(tmp_path / "d" / "q.onnx")
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    got_cos, want_cos = artifacts.report.accuracy[0].cosine_mean, expected.report.accuracy[0].cosine_mean
    assert got_cos == pytest.approx(want_cos, abs=0)


def test_decoy_in_working_folder_with_model_data_missing_is_refused(tmp_path, monkeypatch):
    model = _external(tiny_models.mlp(opset=13), tmp_path / "a")
    os.replace(tmp_path / "a" / "weights.bin", tmp_path / "weights.bin")  # now only the cwd has it
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="missing"):
        qcompile.compile(model, "w4a16", None, output=tmp_path / "q.onnx")
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/hostname", "file://weights.bin", ""])
def test_locations_outside_the_folder_are_refused(tmp_path, location):
    model = _external(tiny_models.mlp(), tmp_path / "a")
    (tmp_path / "outside.bin").write_bytes((tmp_path / "a" / "weights.bin").read_bytes())
    proto = onnx.load(str(model), load_external_data=False)
    for entry in proto.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save(proto, model)
    with pytest.raises(ModelError, match="outside the model's folder"):
        load_model(model)


def test_symlink_out_of_the_folder_is_refused(tmp_path):
    model = _external(tiny_models.mlp(), tmp_path / "a")
    os.replace(tmp_path / "a" / "weights.bin", tmp_path / "real.bin")
    os.symlink(tmp_path / "real.bin", tmp_path / "a" / "weights.bin")
    with pytest.raises(ModelError, match="outside the model's folder"):
        load_model(model)


def test_external_tensor_in_a_function_is_checked(tmp_path):
    """A Constant inside a model-local function whose tensor points outside the folder."""
    tensor = helper.make_tensor("c", TensorProto.FLOAT, [2], [1.0, 2.0])
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("float_data")
    for key, value in (("location", "../secret.bin"), ("offset", "0"), ("length", "8")):
        tensor.external_data.add(key=key, value=value)
    func = helper.make_function(
        "local",
        "f",
        ["x"],
        ["y"],
        [helper.make_node("Constant", [], ["c"], value=tensor), helper.make_node("Add", ["x", "c"], ["y"])],
        [helper.make_opsetid("", 21)],
    )
    graph = helper.make_graph(
        [helper.make_node("f", ["x"], ["y"], domain="local")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(
        graph, functions=[func], opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("local", 1)]
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 8)
    onnx.save(model, tmp_path / "a" / "f.onnx")
    with pytest.raises(ModelError, match="outside the model's folder"):
        load_model(tmp_path / "a" / "f.onnx")


def test_upgrade_converts_changed_ops_without_reading_weights(tmp_path):
    """ReduceMean's axes moved from attribute to input in opset 18; the weights' file is empty, so
    any read of it would fail: the upgrade must succeed without one."""
    weight = ir.ExternalTensor(
        "w.bin", 0, 64 * 4, ir.DataType.FLOAT, shape=ir.Shape([8, 8]), name="w", base_dir=str(tmp_path)
    )
    (tmp_path / "w.bin").write_bytes(b"")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
            helper.make_node("ReduceMean", ["h"], ["y"], axes=[-1], keepdims=1, name="mean"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1])],
    )
    model = ir.serde.deserialize_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    value = ir.Value(name="w", shape=weight.shape, type=ir.TensorType(ir.DataType.FLOAT), const_value=weight)
    model.graph.register_initializer(value)
    model.graph.node(0).replace_input_with(1, value)

    upgraded = upgrade_opset(model, tmp_path)

    assert onnx_opset(upgraded) == MIN_OPSET
    assert upgraded.graph.initializers["w"].const_value is weight  # the same lazy tensor, never read
    mean = next(n for n in upgraded.graph if n.op_type == "ReduceMean")
    assert "axes" not in mean.attributes and len(mean.inputs) == 2
    assert [v.name for v in upgraded.graph.inputs] == ["x"]

"""A seeded structural and byte fuzzer of a tiny model through the command line.

Every mutation must end in exit 0 with a valid quantized model, or exit 2 with one line on stderr;
never a traceback, never a file left behind on failure, and the input never changed.
"""

from __future__ import annotations

import random

import numpy as np
import onnx
from click.testing import CliRunner
from onnx import TensorProto, helper

import tiny_models
from qcompile.cli import main

STRUCTURAL = 300
BYTES = 100


def _mutate(model: onnx.ModelProto, rng: random.Random) -> tuple[str, onnx.ModelProto]:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    node = g.node[rng.randrange(len(g.node))]
    init = g.initializer[rng.randrange(len(g.initializer))]
    kind = rng.choice(MUTATIONS)
    if kind == "drop_node":
        g.node.remove(node)
    elif kind == "swap_nodes":
        i, j = rng.sample(range(len(g.node)), 2)
        a, b = onnx.NodeProto(), onnx.NodeProto()
        a.CopyFrom(g.node[i])
        b.CopyFrom(g.node[j])
        g.node[i].CopyFrom(b)
        g.node[j].CopyFrom(a)
    elif kind == "op_type":
        node.op_type = rng.choice(["", "Foo", "MatMul", "Conv", "Identity", "Loop"])
    elif kind == "dangling_input":
        node.input[rng.randrange(len(node.input))] = rng.choice(["", "nowhere", "y"])
    elif kind == "duplicate_output":
        node.output[0] = rng.choice([n.output[0] for n in g.node] + ["x", init.name])
    elif kind == "cycle":
        node.input[0] = g.node[-1].output[0]
    elif kind == "dtype":
        init.data_type = rng.choice(
            [
                TensorProto.FLOAT16,
                TensorProto.INT64,
                TensorProto.BOOL,
                TensorProto.STRING,
                TensorProto.INT4,
                0,
                99,
            ]
        )
    elif kind == "raw_size":
        init.raw_data = init.raw_data[: rng.randrange(len(init.raw_data) + 1)] + b"\0" * rng.choice([0, 3, 8])
    elif kind == "dims":
        init.dims[rng.randrange(len(init.dims))] = rng.choice([0, -1, 1, 3, 1 << 40])
    elif kind == "ir_version":
        m.ir_version = rng.choice([0, 1, 3, 99])
    elif kind == "opset":
        m.opset_import[0].version = rng.choice([1, 7, 11, 13, 17, 22, 99])
    elif kind == "no_outputs":
        del g.output[:]
    elif kind == "empty_names":
        rng.choice([g.input, g.output, g.initializer])[0].name = ""
    elif kind == "input_dims":
        dim = g.input[0].type.tensor_type.shape.dim[rng.randrange(2)]
        dim.dim_value = rng.choice([0, -1, -5, 1, 3])
    elif kind == "input_type":
        g.input[0].type.tensor_type.elem_type = rng.choice(
            [TensorProto.INT32, TensorProto.STRING, TensorProto.FLOAT16, TensorProto.BOOL, 0]
        )
    elif kind == "no_input_shape":
        g.input[0].type.tensor_type.ClearField("shape")
    elif kind == "symbolic_dims":
        for dim in g.input[0].type.tensor_type.shape.dim:
            dim.dim_param = rng.choice(["n", "k", "m"])
    elif kind == "drop_initializer":
        g.initializer.remove(init)
    elif kind == "attribute":
        node.attribute.append(
            helper.make_attribute(
                rng.choice(["transB", "alpha", "beta", "axis", "bogus"]), rng.choice([0, 1, 2, 5, -3, 0.5])
            )
        )
    elif kind == "domain":
        node.domain = rng.choice(["com.unknown", "ai.onnx.ml", "qcompile"])
    elif kind == "shape_constant":
        shape = next(t for t in g.initializer if t.name == "shape2d")
        values = rng.choice([[-1, 7], [0, 0], [-1, -1], [3], [1, 2, 3]])
        shape.CopyFrom(helper.make_tensor("shape2d", TensorProto.INT64, [len(values)], values))
    elif kind == "output_type":
        g.output[0].type.tensor_type.elem_type = rng.choice([TensorProto.INT64, TensorProto.FLOAT16])
    elif kind == "nan_weight":
        array = onnx.numpy_helper.to_array(init).copy()
        if array.dtype == np.float32 and array.size:
            array.flat[rng.randrange(array.size)] = rng.choice([np.nan, np.inf])
        init.CopyFrom(onnx.numpy_helper.from_array(array, init.name))
    return kind, m


MUTATIONS = [
    "drop_node",
    "swap_nodes",
    "op_type",
    "dangling_input",
    "duplicate_output",
    "cycle",
    "dtype",
    "raw_size",
    "dims",
    "ir_version",
    "opset",
    "no_outputs",
    "empty_names",
    "input_dims",
    "input_type",
    "no_input_shape",
    "symbolic_dims",
    "drop_initializer",
    "attribute",
    "domain",
    "shape_constant",
    "output_type",
    "nan_weight",
]


def _byte_mutation(data: bytes, rng: random.Random) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data[: rng.randrange(len(data) // 2, len(data) + 1)]) if rng.random() < 0.2 else bytes(data)


def _check_case(folder, label: str, data: bytes, problems: list[str]) -> None:
    for old in folder.iterdir():
        old.unlink()
    model = folder / "m.onnx"
    model.write_bytes(data)
    result = CliRunner().invoke(main, [str(model), "-p", "w4a16", "-q"])
    names = sorted(p.name for p in folder.iterdir())
    if model.read_bytes() != data:
        problems.append(f"{label}: input changed")
    if result.exit_code == 0:
        try:
            onnx.checker.check_model(str(folder / "m.q.onnx"), full_check=True)
        except Exception as exc:  # noqa: BLE001  (any failure is the finding)
            problems.append(f"{label}: exit 0 with an invalid output ({str(exc)[:100]})")
    elif result.exit_code == 2:
        lines = result.stderr.strip().splitlines()
        if len(lines) != 1 or not lines[0].startswith("qcompile: error:"):
            problems.append(f"{label}: exit 2 with {len(lines)} lines: {result.stderr[:200]!r}")
        if names != ["m.onnx"]:
            problems.append(f"{label}: exit 2 left {names}")
    else:
        exc = result.exception
        problems.append(f"{label}: exit {result.exit_code} {type(exc).__name__}: {str(exc)[:150]}")


def test_structural_mutations(tmp_path):
    base = tiny_models.mlp(k=32, hidden=32, n=16)
    rng = random.Random(17)
    problems: list[str] = []
    for i in range(STRUCTURAL):
        kind, mutated = _mutate(base, rng)
        _check_case(tmp_path, f"{i}:{kind}", mutated.SerializeToString(), problems)
    assert not problems, f"{len(problems)} of {STRUCTURAL} mutations misbehaved:\n" + "\n".join(problems)


def test_byte_mutations(tmp_path):
    data = tiny_models.mlp(k=32, hidden=32, n=16).SerializeToString()
    rng = random.Random(18)
    problems: list[str] = []
    for i in range(BYTES):
        _check_case(tmp_path, f"bytes {i}", _byte_mutation(data, rng), problems)
    assert not problems, f"{len(problems)} of {BYTES} mutations misbehaved:\n" + "\n".join(problems)

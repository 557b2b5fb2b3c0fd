"""Toy residual networks for the mixed-precision tests (built here, seeded), and a check that they run."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

D = 128  # every K and N: a multiple of every group size and plugin tile


def residual_mlp(
    blocks: int = 3,
    seed: int = 0,
    outlier: tuple[str, float] | None = None,
    gains: dict[int, float] | None = None,
    head: bool = True,
) -> onnx.ModelProto:
    """x[b, s, D] -> blocks x (x + relu(x @ up_i) @ down_i * gain_i) -> x @ head -> y.

    `outlier` = (weight name, value) puts one huge weight in that matrix; `gains` scales a block's
    branch (a block that changes its input more)."""
    rng = np.random.default_rng(seed)
    inits, nodes, x = [], [], "x"
    for i in range(blocks):
        up = (rng.standard_normal((D, D)) / np.sqrt(D)).astype(np.float32)
        down = (rng.standard_normal((D, D)) / np.sqrt(D) * (gains or {}).get(i, 0.3)).astype(np.float32)
        inits += [numpy_helper.from_array(up, f"up{i}.w"), numpy_helper.from_array(down, f"down{i}.w")]
        nodes += [
            helper.make_node("MatMul", [x, f"up{i}.w"], [f"u{i}"], name=f"up{i}"),
            helper.make_node("Relu", [f"u{i}"], [f"r{i}"], name=f"relu{i}"),
            helper.make_node("MatMul", [f"r{i}", f"down{i}.w"], [f"d{i}"], name=f"down{i}"),
            helper.make_node("Add", [x, f"d{i}"], [f"h{i}"], name=f"residual{i}"),
        ]
        x = f"h{i}"
    if head:
        inits.append(
            numpy_helper.from_array((rng.standard_normal((D, D)) / np.sqrt(D)).astype(np.float32), "head.w")
        )
        nodes.append(helper.make_node("MatMul", [x, "head.w"], ["y"], name="head"))
    else:
        nodes.append(helper.make_node("Identity", [x], ["y"], name="out"))
    if outlier is not None:
        for t in inits:
            if t.name == outlier[0]:
                arr = numpy_helper.to_array(t).copy()
                arr[3, 5] = outlier[1]
                t.CopyFrom(numpy_helper.from_array(arr, t.name))
    graph = helper.make_graph(
        nodes,
        "residual_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", D])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", D])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def calibration(samples: int = 6, seed: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((samples, 2, 8, D)).astype(np.float32)}


def test_toy_model_is_valid_and_runs():
    import onnxruntime as ort

    model = residual_mlp()
    onnx.checker.check_model(model, full_check=True)
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": calibration()["x"][0]}
    )[0]
    assert y.shape == (2, 8, D) and np.isfinite(y).all()

"""Tiny ONNX models built in the tests (seeded), and their calibration data."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def mlp(seed: int = 0, k: int = 256, hidden: int = 256, n: int = 64, opset: int = 21) -> onnx.ModelProto:
    """x[b, s, k] -> MatMul -> Add -> Relu -> Gemm(transB=1) on a flattened view -> y."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((k, hidden)).astype(np.float32) * 0.05
    b1 = rng.standard_normal(hidden).astype(np.float32) * 0.01
    w2 = rng.standard_normal((n, hidden)).astype(np.float32) * 0.05
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="fc1_bias"),
        helper.make_node("Relu", ["hb"], ["r"], name="act"),
        helper.make_node("Reshape", ["r", "shape2d"], ["r2"], name="flatten"),
        helper.make_node("Gemm", ["r2", "w2"], ["y"], name="fc2", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n])],
        [
            _init("w1", w1),
            _init("b1", b1),
            _init("w2", w2),
            _init("shape2d", np.array([-1, hidden], np.int64)),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def token_encoder(seed: int = 0, vocab: int = 100, hidden: int = 64) -> onnx.ModelProto:
    """input_ids, attention_mask, token_type_ids [batch, seq] -> embeddings -> MatMul -> Relu -> MatMul,
    masked -> hidden [batch, seq, hidden]: an encoder, no output over its vocabulary."""
    rng = np.random.default_rng(seed)
    n = helper.make_node
    nodes = [
        n("Gather", ["embed", "input_ids"], ["tok"]),
        n("Gather", ["type_embed", "token_type_ids"], ["typ"]),
        n("Add", ["tok", "typ"], ["e"]),
        n("MatMul", ["e", "w1"], ["h"], name="fc1"),
        n("Relu", ["h"], ["r"]),
        n("MatMul", ["r", "w2"], ["o"], name="fc2"),
        n("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        n("Unsqueeze", ["m", "last"], ["m3"]),
        n("Mul", ["o", "m3"], ["hidden"]),
    ]
    ids = ["batch", "sequence"]
    graph = helper.make_graph(
        nodes,
        "token_encoder",
        [
            helper.make_tensor_value_info(name, TensorProto.INT64, ids)
            for name in ("input_ids", "attention_mask", "token_type_ids")
        ],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [*ids, hidden])],
        [
            _init("embed", rng.standard_normal((vocab, hidden)).astype(np.float32)),
            _init("type_embed", rng.standard_normal((2, hidden)).astype(np.float32) * 0.1),
            _init("w1", rng.standard_normal((hidden, 2 * hidden)).astype(np.float32) * 0.1),
            _init("w2", rng.standard_normal((2 * hidden, hidden)).astype(np.float32) * 0.1),
            _init("last", np.array([2], np.int64)),
        ],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def conv(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.2
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
        [_init("w", w)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def no_weights() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")],
        "noweights",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 4]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, 3]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def calibration(seed: int = 1, samples: int = 8, k: int = 256, batch: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, batch, k)).astype(np.float32)
    x[..., :4] *= 8.0  # a few outlier channels
    return {"x": x}


def sample_transformer(seed: int = 0):
    """(model, calibration) of samples/make_sample.py: real correlated activations, a few MB."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "samples" / "make_sample.py"
    spec = importlib.util.spec_from_file_location("make_sample", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_sample_model(seed), module.make_calibration(seed)

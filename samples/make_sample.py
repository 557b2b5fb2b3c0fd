"""Build the sample model: a small pre-LayerNorm transformer in ONNX (opset 21), random weights
from a fixed seed, and its calibration data.

    python samples/make_sample.py OUT_DIR [--seed 0]

writes OUT_DIR/sample.onnx and OUT_DIR/sample_calib.npz (input_ids [32, 1, 16]).

Graph: input_ids int64 [batch, seq] -> token + positional embedding -> 2 blocks of
(LayerNorm -> 4-head attention with Q/K/V/O MatMuls [K, N] + bias -> residual,
LayerNorm -> erf-GELU MLP 256 -> 1024 -> 256 -> residual) -> LayerNorm -> MatMul -> logits
float32 [batch, seq, 512]. Block 0's first MLP projection is a Gemm with transB=1 (weight
[N, K]) on the flattened tokens. A few LayerNorm gains are 10x larger than the rest
(OUTLIER_CHANNELS), the activation outliers real transformers have, so that per-tensor
activation quantization has something to get wrong.

Standalone on purpose (numpy + onnx only): copy it to start your own model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

OPSET, IR_VERSION = 21, 10
VOCAB, MAX_SEQ, HIDDEN, HEADS, FFN, OUT, BLOCKS = 512, 128, 256, 4, 1024, 512, 2
WEIGHT_STD = 0.04
OUTLIER_GAIN = 10.0
OUTLIER_CHANNELS = {"blocks.0.ln_attn": [7, 131], "blocks.1.ln_mlp": [42, 200]}
CALIB_SAMPLES, CALIB_SEQ = 32, 16


class _Graph:
    """Nodes and initializers, every name derived from a scope."""

    def __init__(self):
        self.nodes, self.initializers = [], []

    def init(self, name: str, array) -> str:
        import onnx

        self.initializers.append(onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attrs) -> str:
        import onnx

        self.nodes.append(onnx.helper.make_node(op_type, inputs, [f"{name}_out"], name, **attrs))
        return f"{name}_out"


def build_sample_model(seed: int = 0):
    """The sample transformer as an onnx.ModelProto; same seed, same bytes."""
    import onnx

    rng = np.random.default_rng(seed)

    def randn(*shape, std=WEIGHT_STD):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    g = _Graph()
    tok = g.init("embed.tokens", randn(VOCAB, HIDDEN, std=1.0))
    pos = g.init("embed.positions", randn(MAX_SEQ, HIDDEN, std=0.5))
    x = g.op("Gather", [tok, "input_ids"], "embed/Gather")
    seq = g.op("Shape", ["input_ids"], "embed/Shape", start=1, end=2)
    zero = g.init("embed/zero", np.array([0], np.int64))
    pos = g.op("Slice", [pos, zero, seq, zero], "embed/Slice")
    x = g.op("Add", [x, pos], "embed/Add")
    for b in range(BLOCKS):
        x = _block(g, x, b, randn, rng)
    x = _layer_norm(g, x, "final_ln", rng)
    x = g.op("MatMul", [x, g.init("head.weight", randn(HIDDEN, OUT))], "head/MatMul")
    g.nodes[-1].output[0] = "logits"

    graph = onnx.helper.make_graph(
        g.nodes,
        "sample_transformer",
        [onnx.helper.make_tensor_value_info("input_ids", onnx.TensorProto.INT64, ["batch", "seq"])],
        [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", "seq", OUT])],
        g.initializers,
    )
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)], producer_name="qcompile-samples"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def _layer_norm(g: _Graph, x: str, name: str, rng: np.random.Generator) -> str:
    gain = (1.0 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)
    gain[OUTLIER_CHANNELS.get(name, [])] *= OUTLIER_GAIN
    bias = (0.02 * rng.standard_normal(HIDDEN)).astype(np.float32)
    return g.op(
        "LayerNormalization",
        [x, g.init(f"{name}.weight", gain), g.init(f"{name}.bias", bias)],
        f"{name}/LayerNormalization",
        axis=-1,
        epsilon=1e-5,
    )


def _linear(g: _Graph, x: str, k: int, n: int, name: str, randn) -> str:
    y = g.op("MatMul", [x, g.init(f"{name}.weight", randn(k, n))], f"{name}/MatMul")
    return g.op("Add", [y, g.init(f"{name}.bias", randn(n, std=0.02))], f"{name}/Add")


def _gemm_linear(g: _Graph, x: str, k: int, n: int, name: str, randn) -> str:
    """Gemm(transB=1) on [batch*seq, K] rows, reshaped back to [batch, seq, N]."""
    lead = g.op("Shape", [x], f"{name}/Shape", start=0, end=2)
    rows = g.op("Reshape", [x, g.init(f"{name}/rows", np.array([-1, k], np.int64))], f"{name}/Reshape")
    y = g.op(
        "Gemm",
        [rows, g.init(f"{name}.weight", randn(n, k)), g.init(f"{name}.bias", randn(n, std=0.02))],
        f"{name}/Gemm",
        transB=1,
    )
    shape = g.op("Concat", [lead, g.init(f"{name}/n", np.array([n], np.int64))], f"{name}/Concat", axis=0)
    return g.op("Reshape", [y, shape], f"{name}/Reshape_back")


def _gelu(g: _Graph, x: str, name: str) -> str:
    t = g.op("Div", [x, g.init(f"{name}/sqrt2", np.float32(np.sqrt(2.0)))], f"{name}/Div")
    t = g.op("Add", [g.op("Erf", [t], f"{name}/Erf"), g.init(f"{name}/one", np.float32(1.0))], f"{name}/Add")
    t = g.op("Mul", [x, t], f"{name}/Mul")
    return g.op("Mul", [t, g.init(f"{name}/half", np.float32(0.5))], f"{name}/Mul_half")


def _block(g: _Graph, x: str, b: int, randn, rng: np.random.Generator) -> str:
    p, head_dim = f"blocks.{b}", HIDDEN // HEADS
    h = _layer_norm(g, x, f"{p}.ln_attn", rng)
    heads = g.init(f"{p}/heads_shape", np.array([0, 0, HEADS, head_dim], np.int64))
    q, k, v = (
        g.op(
            "Transpose",
            [
                g.op(
                    "Reshape",
                    [_linear(g, h, HIDDEN, HIDDEN, f"{p}.attn.{n}", randn), heads],
                    f"{p}.attn.{n}/Reshape",
                )
            ],
            f"{p}.attn.{n}/Transpose",
            perm=perm,
        )
        for n, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3]))
    )
    scores = g.op("MatMul", [q, k], f"{p}.attn/MatMul_qk")
    scores = g.op("Mul", [scores, g.init(f"{p}/scale", np.float32(head_dim**-0.5))], f"{p}.attn/Mul_scale")
    probs = g.op("Softmax", [scores], f"{p}.attn/Softmax", axis=-1)
    a = g.op("MatMul", [probs, v], f"{p}.attn/MatMul_pv")
    a = g.op("Transpose", [a], f"{p}.attn/Transpose_merge", perm=[0, 2, 1, 3])
    a = g.op(
        "Reshape",
        [a, g.init(f"{p}/merge_shape", np.array([0, 0, HIDDEN], np.int64))],
        f"{p}.attn/Reshape_merge",
    )
    x = g.op("Add", [x, _linear(g, a, HIDDEN, HIDDEN, f"{p}.attn.o", randn)], f"{p}/Add_attn_residual")
    h = _layer_norm(g, x, f"{p}.ln_mlp", rng)
    fc1 = _gemm_linear if b == 0 else _linear
    h = _gelu(g, fc1(g, h, HIDDEN, FFN, f"{p}.mlp.fc1", randn), f"{p}.mlp.gelu")
    h = _linear(g, h, FFN, HIDDEN, f"{p}.mlp.fc2", randn)
    return g.op("Add", [x, h], f"{p}/Add_mlp_residual")


def make_calibration(seed: int = 0, n: int = CALIB_SAMPLES) -> dict[str, np.ndarray]:
    """input_ids [n, 1, CALIB_SEQ]: each sample along axis 0 is one model input [1, CALIB_SEQ]."""
    rng = np.random.default_rng(seed + 1000)
    return {"input_ids": rng.integers(0, VOCAB, size=(n, 1, CALIB_SEQ), dtype=np.int64)}


def main(argv: list[str] | None = None) -> int:
    import onnx

    parser = argparse.ArgumentParser(description="Write the qcompile sample model and calibration data.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    model_path, calib_path = args.out_dir / "sample.onnx", args.out_dir / "sample_calib.npz"
    onnx.save_model(build_sample_model(args.seed), model_path)
    calib = make_calibration(args.seed)
    np.savez(calib_path, **calib)
    print(f"wrote {model_path} ({model_path.stat().st_size / 2**20:.1f} MiB, opset {OPSET})")
    print(f"wrote {calib_path} (input_ids {list(calib['input_ids'].shape)} int64)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

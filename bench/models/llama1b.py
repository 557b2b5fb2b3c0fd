"""A LLaMA-shaped ONNX model with random weights (about 1B parameters by default), for
benchmarks that need realistic layer shapes rather than a trained model.

Graph: input `input_ids` int64 [batch, seq], output `logits` float32 [batch, seq, vocab]; no
KV cache. Per block: RMSNorm (written with basic ops), Q/K/V/O MatMuls with [K, N] weights,
rotate-half RoPE from precomputed cos/sin tables, grouped-query attention when kv_heads <
heads, an additive causal mask (MASK_VALUE above the diagonal, a separate tensor: never
quantize the Add that takes it), RMSNorm, SiLU-gated MLP. Weights are generated one tensor at
a time and streamed into `<name>.onnx.data`, so memory stays at about one weight matrix.

    python bench/models/llama1b.py OUT_DIR [--size 1b|7b] [--layers 16] [--seed 0] [--opset 21]

--size 7b is LLaMA-2-7B's shape (6.7B parameters, 27 GB of fp32 weights). --opset 17 writes
ReduceMean's axes as an attribute (the form exporters emit below opset 18).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.models.onnx_build import (
    ExternalDataWriter,
    GraphBuilder,
    attention_core,
    merge_heads,
    positions,
    save_model,
    split_heads,
)

SIZES = {"1b": {}, "7b": {"layers": 32, "hidden": 4096, "intermediate": 11008, "heads": 32, "kv_heads": 32}}
MASK_VALUE = float(np.finfo(np.float32).min)  # what transformers uses for masked positions
WEIGHT_STD = 0.02  # LLaMA's initializer_range
CHUNK_ELEMENTS = 1 << 22  # 16 MiB of float32 in memory while generating weights


@dataclasses.dataclass(frozen=True)
class LlamaShape:
    layers: int = 16
    hidden: int = 2048
    intermediate: int = 5632
    heads: int = 16
    kv_heads: int = 16
    vocab: int = 32000
    max_positions: int = 2048
    rms_eps: float = 1e-5
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


def build_llama_onnx(
    out_dir, shape: LlamaShape = LlamaShape(), seed: int = 0, name: str = "llama1b", opset: int = 21
) -> tuple[Path, int]:
    """Write OUT_DIR/<name>.onnx and <name>.onnx.data; return (model path, parameter count)."""
    import onnx

    if shape.hidden % shape.heads or shape.heads % shape.kv_heads or shape.head_dim % 2:
        raise ValueError(f"inconsistent head layout: {shape}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = out_dir / f"{name}.onnx"
    rng = np.random.default_rng(seed)
    with ExternalDataWriter(out_dir / f"{name}.onnx.data") as external:
        g = GraphBuilder(external)
        _build_graph(g, shape, rng, opset)
        model = g.model(name, opset)
    save_model(model, model_path)
    onnx.checker.check_model(str(model_path), full_check=True)
    return model_path, g.n_params


def _random_weight(g: GraphBuilder, rng: np.random.Generator, name: str, rows: int, cols: int) -> str:
    """N(0, WEIGHT_STD) [rows, cols], streamed in blocks of about CHUNK_ELEMENTS."""
    step = max(1, CHUNK_ELEMENTS // cols)

    def blocks():
        for start in range(0, rows, step):
            block = rng.standard_normal((min(step, rows - start), cols), dtype=np.float32)
            block *= np.float32(WEIGHT_STD)
            yield block

    return g.streamed_weight(name, (rows, cols), blocks())


def _proj(g: GraphBuilder, rng: np.random.Generator, x: str, k: int, n: int, scope: str, name: str) -> str:
    """x @ W with a random W [k, n] (no bias, as in LLaMA)."""
    return g.op("MatMul", [x, _random_weight(g, rng, name, k, n)], f"{scope}/MatMul")


def _build_graph(g: GraphBuilder, s: LlamaShape, rng: np.random.Generator, opset: int) -> None:
    import onnx

    ids = g.input("input_ids", onnx.TensorProto.INT64, ["batch", "seq"])
    x = g.op(
        "Gather",
        [_random_weight(g, rng, "model.embed_tokens.weight", s.vocab, s.hidden), ids],
        "/model/embed_tokens/Gather",
    )
    cos, sin = _rope_tables(s)
    cos = positions(g, g.const(cos, "model.rope.cos"), ids, "/model/rope/cos")
    sin = positions(g, g.const(sin, "model.rope.sin"), ids, "/model/rope/sin")
    mask = _causal_mask(g, ids)
    for i in range(s.layers):
        x = _block(g, x, s, rng, i, cos, sin, mask, opset)
    x = _rms_norm(g, x, s, "model.norm", "/model/norm", opset)
    logits = _proj(g, rng, x, s.hidden, s.vocab, "/lm_head", "lm_head.weight")
    g.output(logits, "logits", onnx.TensorProto.FLOAT, ["batch", "seq", s.vocab])


def _rope_tables(s: LlamaShape) -> tuple[np.ndarray, np.ndarray]:
    inv_freq = 1.0 / s.rope_theta ** (np.arange(0, s.head_dim, 2, dtype=np.float64) / s.head_dim)
    angles = np.outer(np.arange(s.max_positions, dtype=np.float64), inv_freq)
    angles = np.concatenate([angles, angles], axis=1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def _causal_mask(g: GraphBuilder, ids: str) -> str:
    """[seq, seq] additive mask: 0 on and below the diagonal, MASK_VALUE above."""
    seq = g.op("Shape", [ids], "/model/mask/Shape", start=1, end=2)
    ones = g.op("Concat", [seq, seq], "/model/mask/Concat", axis=0)
    full = g.op("ConstantOfShape", [ones], "/model/mask/ConstantOfShape", value=_scalar_tensor(MASK_VALUE))
    return g.op(
        "Trilu", [full, g.const(np.array(1, np.int64), "/model/mask/k")], "/model/mask/Trilu", upper=1
    )


def _scalar_tensor(value: float):
    import onnx

    return onnx.helper.make_tensor("value", onnx.TensorProto.FLOAT, [1], [value])


def _rms_norm(g: GraphBuilder, x: str, s: LlamaShape, prefix: str, scope: str, opset: int) -> str:
    """x / sqrt(mean(x^2) + eps) * weight, as exported from LlamaRMSNorm."""
    sq = g.op("Mul", [x, x], f"{scope}/Mul_square")
    if opset >= 18:
        axes = g.const(np.array([-1], np.int64), f"{scope}/axes")
        mean = g.op("ReduceMean", [sq, axes], f"{scope}/ReduceMean", keepdims=1)
    else:
        mean = g.op("ReduceMean", [sq], f"{scope}/ReduceMean", keepdims=1, axes=[-1])
    mean = g.op("Add", [mean, g.const(np.float32(s.rms_eps), f"{scope}/eps")], f"{scope}/Add_eps")
    inv = g.op("Reciprocal", [g.op("Sqrt", [mean], f"{scope}/Sqrt")], f"{scope}/Reciprocal")
    x = g.op("Mul", [x, inv], f"{scope}/Mul_normalize")
    gain = g.weight(f"{prefix}.weight", np.ones(s.hidden, np.float32))
    return g.op("Mul", [x, gain], f"{scope}/Mul_weight")


def _rope(g: GraphBuilder, x: str, cos: str, sin: str, half: int, scope: str) -> str:
    """x * cos + rotate_half(x) * sin on [b, n, s, d]."""
    split = g.const(np.array([half, half], np.int64), f"{scope}/split")
    x1, x2 = g.op("Split", [x, split], f"{scope}/Split", n_out=2, axis=-1)
    rotated = g.op("Concat", [g.op("Neg", [x2], f"{scope}/Neg"), x1], f"{scope}/Concat", axis=-1)
    a = g.op("Mul", [x, cos], f"{scope}/Mul_cos")
    b = g.op("Mul", [rotated, sin], f"{scope}/Mul_sin")
    return g.op("Add", [a, b], f"{scope}/Add")


def _repeat_kv(g: GraphBuilder, x: str, s: LlamaShape, scope: str) -> str:
    """[b, kv, s, d] -> [b, heads, s, d] by repeating each kv head heads/kv times."""
    rep = s.heads // s.kv_heads
    if rep == 1:
        return x
    x = g.op("Unsqueeze", [x, g.const(np.array([2], np.int64), f"{scope}/axes")], f"{scope}/Unsqueeze")
    expand = g.const(np.array([1, 1, rep, 1, 1], np.int64), f"{scope}/expand")
    x = g.op("Expand", [x, expand], f"{scope}/Expand")
    shape = g.const(np.array([0, s.heads, -1, s.head_dim], np.int64), f"{scope}/shape")
    return g.op("Reshape", [x, shape], f"{scope}/Reshape")


def _block(
    g: GraphBuilder,
    x: str,
    s: LlamaShape,
    rng: np.random.Generator,
    i: int,
    cos: str,
    sin: str,
    mask: str,
    opset: int,
) -> str:
    p, sc = f"model.layers.{i}", f"/model/layers.{i}"
    kv_dim = s.kv_heads * s.head_dim
    h = _rms_norm(g, x, s, f"{p}.input_layernorm", f"{sc}/input_layernorm", opset)
    q = _proj(g, rng, h, s.hidden, s.hidden, f"{sc}/self_attn/q_proj", f"{p}.self_attn.q_proj.weight")
    k = _proj(g, rng, h, s.hidden, kv_dim, f"{sc}/self_attn/k_proj", f"{p}.self_attn.k_proj.weight")
    v = _proj(g, rng, h, s.hidden, kv_dim, f"{sc}/self_attn/v_proj", f"{p}.self_attn.v_proj.weight")
    q = split_heads(g, q, s.heads, s.head_dim, f"{sc}/self_attn/q_heads")
    k = split_heads(g, k, s.kv_heads, s.head_dim, f"{sc}/self_attn/k_heads")
    v = split_heads(g, v, s.kv_heads, s.head_dim, f"{sc}/self_attn/v_heads")
    q = _rope(g, q, cos, sin, s.head_dim // 2, f"{sc}/self_attn/q_rope")
    k = _rope(g, k, cos, sin, s.head_dim // 2, f"{sc}/self_attn/k_rope")
    k = _repeat_kv(g, k, s, f"{sc}/self_attn/k_repeat")
    v = _repeat_kv(g, v, s, f"{sc}/self_attn/v_repeat")
    a = attention_core(g, q, k, v, mask, s.head_dim, f"{sc}/self_attn")
    a = merge_heads(g, a, s.hidden, f"{sc}/self_attn/merge_heads")
    a = _proj(g, rng, a, s.hidden, s.hidden, f"{sc}/self_attn/o_proj", f"{p}.self_attn.o_proj.weight")
    x = g.op("Add", [x, a], f"{sc}/Add_attn_residual")
    h = _rms_norm(g, x, s, f"{p}.post_attention_layernorm", f"{sc}/post_attention_layernorm", opset)
    gate = _proj(g, rng, h, s.hidden, s.intermediate, f"{sc}/mlp/gate_proj", f"{p}.mlp.gate_proj.weight")
    up = _proj(g, rng, h, s.hidden, s.intermediate, f"{sc}/mlp/up_proj", f"{p}.mlp.up_proj.weight")
    act = g.op("Mul", [gate, g.op("Sigmoid", [gate], f"{sc}/mlp/act/Sigmoid")], f"{sc}/mlp/act/Mul")
    h = g.op("Mul", [act, up], f"{sc}/mlp/Mul_gate_up")
    h = _proj(g, rng, h, s.intermediate, s.hidden, f"{sc}/mlp/down_proj", f"{p}.mlp.down_proj.weight")
    return g.op("Add", [x, h], f"{sc}/Add_mlp_residual")


def make_calibration(vocab: int, samples: int = 8, seq: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """Random token ids, input_ids [samples, 1, seq] (leading sample axis)."""
    rng = np.random.default_rng(seed + 1)
    return {"input_ids": rng.integers(0, vocab, size=(samples, 1, seq), dtype=np.int64)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument(
        "--size", choices=sorted(SIZES), default="1b", help="shape preset (options below override it)"
    )
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--hidden", type=int, default=None)
    parser.add_argument("--intermediate", type=int, default=None)
    parser.add_argument("--heads", type=int, default=None)
    parser.add_argument("--kv-heads", type=int, default=None, help="default: same as --heads")
    parser.add_argument("--vocab", type=int, default=LlamaShape.vocab)
    parser.add_argument("--max-positions", type=int, default=LlamaShape.max_positions)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--opset", type=int, default=21)
    parser.add_argument("--name", default="llama1b", help="file stem of the model")
    args = parser.parse_args(argv)
    preset = dataclasses.asdict(LlamaShape(**SIZES[args.size]))
    chosen = {
        k: getattr(args, k)
        for k in ("layers", "hidden", "intermediate", "heads", "kv_heads", "vocab", "max_positions")
        if getattr(args, k) is not None
    }
    shape = LlamaShape(**{**preset, "kv_heads": chosen.get("heads", preset["kv_heads"]), **chosen})
    start = time.perf_counter()
    model_path, n_params = build_llama_onnx(args.out_dir, shape, args.seed, args.name, args.opset)
    calib_path = args.out_dir / "llama_calib.npz"
    np.savez(calib_path, **make_calibration(shape.vocab, seed=args.seed))
    data_path = model_path.with_name(model_path.name + ".data")
    print(f"parameters: {n_params:,} ({shape})")
    for path in (model_path, data_path, calib_path):
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    print(f"took {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

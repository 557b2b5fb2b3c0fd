"""A one-layer decoder exported the way Hugging Face Optimum exports LLMs with a KV cache: inputs
input_ids [batch, seq], attention_mask [batch, past + seq], position_ids [batch, seq],
past_key_values.0.key/value [batch, 2, past, 16]; outputs logits and present.0.key/value."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VOCAB, HIDDEN, HEADS, HEAD_DIM = 50, 64, 2, 32


def decoder(seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)

    def init(name, *shape, scale=0.2):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    def const(name, values):
        return numpy_helper.from_array(np.asarray(values, np.int64), name)

    inits = [
        init("embed", VOCAB, HIDDEN, scale=1.0),
        init("pos_embed", 256, HIDDEN, scale=0.3),
        init("wq", HIDDEN, HIDDEN),
        init("wk", HIDDEN, HIDDEN),
        init("wv", HIDDEN, HIDDEN),
        init("wo", HIDDEN, HIDDEN),
        init("lm_head", HIDDEN, VOCAB),
        const("heads_shape", [0, 0, HEADS, HEAD_DIM]),
        const("merge_shape", [0, 0, HIDDEN]),
        const("axes12", [1, 2]),
        numpy_helper.from_array(np.array(-1e4, np.float32), "neg"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(HEAD_DIM**-0.5, np.float32), "inv_sqrt"),
    ]
    n = helper.make_node
    nodes = [
        n("Gather", ["embed", "input_ids"], ["tok"]),
        n("Gather", ["pos_embed", "position_ids"], ["pos"]),
        n("Add", ["tok", "pos"], ["h"]),
    ]
    for name in ("q", "k", "v"):
        nodes += [
            n("MatMul", ["h", f"w{name}"], [f"{name}_flat"], name=f"{name}_proj"),
            n("Reshape", [f"{name}_flat", "heads_shape"], [f"{name}_4d"]),
            n("Transpose", [f"{name}_4d"], [f"{name}_heads"], perm=[0, 2, 1, 3]),
        ]
    nodes += [
        n("Concat", ["past_key_values.0.key", "k_heads"], ["present.0.key"], axis=2),
        n("Concat", ["past_key_values.0.value", "v_heads"], ["present.0.value"], axis=2),
        n("Transpose", ["present.0.key"], ["k_t"], perm=[0, 1, 3, 2]),
        n("MatMul", ["q_heads", "k_t"], ["scores_raw"]),
        n("Mul", ["scores_raw", "inv_sqrt"], ["scores"]),
        n("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        n("Sub", ["one", "mask_f"], ["mask_inv"]),
        n("Mul", ["mask_inv", "neg"], ["mask_add2"]),
        n("Unsqueeze", ["mask_add2", "axes12"], ["mask_add"]),
        n("Add", ["scores", "mask_add"], ["masked"]),
        n("Softmax", ["masked"], ["probs"], axis=-1),
        n("MatMul", ["probs", "present.0.value"], ["ctx_heads"]),
        n("Transpose", ["ctx_heads"], ["ctx_4d"], perm=[0, 2, 1, 3]),
        n("Reshape", ["ctx_4d", "merge_shape"], ["ctx"]),
        n("MatMul", ["ctx", "wo"], ["attn"], name="o_proj"),
        n("Add", ["h", "attn"], ["h2"]),
        n("MatMul", ["h2", "lm_head"], ["logits"], name="lm_head_proj"),
    ]
    past = ["batch", HEADS, "past_sequence_length", HEAD_DIM]
    total = ["batch", HEADS, "total_sequence_length", HEAD_DIM]
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence_length"]),
        helper.make_tensor_value_info(
            "attention_mask", TensorProto.INT64, ["batch", "total_sequence_length"]
        ),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "sequence_length"]),
        helper.make_tensor_value_info("past_key_values.0.key", TensorProto.FLOAT, past),
        helper.make_tensor_value_info("past_key_values.0.value", TensorProto.FLOAT, past),
    ]
    outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence_length", VOCAB]),
        helper.make_tensor_value_info("present.0.key", TensorProto.FLOAT, total),
        helper.make_tensor_value_info("present.0.value", TensorProto.FLOAT, total),
    ]
    graph = helper.make_graph(nodes, "kv_decoder", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)

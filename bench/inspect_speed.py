"""How long `qcompile inspect` takes on a LLaMA-7B-shaped graph (32 blocks of q/k/v/o/gate/up/down
MatMuls, 4096 hidden, 11008 intermediate, lm_head 32000) whose 6.5 billion weights are external data
that does not exist: the graph alone is written, so the figure is inspect's own cost.

    python bench/inspect_speed.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import onnx
from onnx import TensorProto, helper

HIDDEN, INTER, LAYERS, VOCAB = 4096, 11008, 32, 32000


def _external(name: str, dims: tuple[int, ...], offset: int) -> TensorProto:
    t = TensorProto(name=name, data_type=TensorProto.FLOAT16, dims=dims, data_location=TensorProto.EXTERNAL)
    length = 2 * dims[0] * dims[1]
    for key, value in (("location", "absent.data"), ("offset", str(offset)), ("length", str(length))):
        t.external_data.add(key=key, value=value)
    return t


def build() -> onnx.ModelProto:
    nodes, inits, x, offset = [], [], "x", 0
    for i in range(LAYERS):
        for proj, (k, n) in (
            ("q", (HIDDEN, HIDDEN)),
            ("k", (HIDDEN, HIDDEN)),
            ("v", (HIDDEN, HIDDEN)),
            ("o", (HIDDEN, HIDDEN)),
            ("gate", (HIDDEN, INTER)),
            ("up", (HIDDEN, INTER)),
            ("down", (INTER, HIDDEN)),
        ):
            inits.append(_external(f"l{i}.{proj}.w", (k, n), offset))
            offset += 2 * k * n
        p = f"l{i}."
        nodes += [helper.make_node("MatMul", [x, p + w + ".w"], [p + w], name=p + w) for w in ("q", "k", "v")]
        nodes += [
            helper.make_node("Add", [p + "q", p + "k"], [p + "qk"]),
            helper.make_node("Add", [p + "qk", p + "v"], [p + "att"]),
            helper.make_node("MatMul", [p + "att", p + "o.w"], [p + "o"], name=p + "o"),
            helper.make_node("Add", [x, p + "o"], [p + "h"]),
            helper.make_node("MatMul", [p + "h", p + "gate.w"], [p + "gate"], name=p + "gate"),
            helper.make_node("MatMul", [p + "h", p + "up.w"], [p + "up"], name=p + "up"),
            helper.make_node("Mul", [p + "gate", p + "up"], [p + "gu"]),
            helper.make_node("MatMul", [p + "gu", p + "down.w"], [p + "down"], name=p + "down"),
            helper.make_node("Add", [p + "h", p + "down"], [p + "out"]),
        ]
        x = p + "out"
    inits.append(_external("lm_head.w", (HIDDEN, VOCAB), offset))
    nodes.append(helper.make_node("MatMul", [x, "lm_head.w"], ["logits"], name="lm_head"))
    x_in = helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["b", "s", HIDDEN])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT16, ["b", "s", VOCAB])
    graph = helper.make_graph(nodes, "llama7b_shape", [x_in], [logits], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def main() -> None:
    from qcompile.inspection import inspect_model, render

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "llama7b_shape.onnx"
        onnx.save(build(), path)
        t0 = time.perf_counter()
        found = inspect_model(path)
        text = render(found)
        elapsed = time.perf_counter() - t0
    summary = text.index("preset ")
    print(text[summary:])
    print(
        f"inspect: {len(found.layers)} layers, {found.layer_params / 1e9:.2f} B weights, "
        f"{found.size_before / 1e9:.2f} GB of (absent) external data, 9 presets: {elapsed:.2f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()

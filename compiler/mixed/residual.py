"""Find residual blocks in an ONNX graph, generically, for LIM.

Heuristic: an `Add(skip, branch)` of two computed tensors is a residual connection when `skip`
is an ancestor of `branch` and the path from one to the other holds at least one linear layer;
that is `x + f(x)` whatever f is. The block's hidden state enters as `skip` and leaves as the
Add's output. Pre-norm decoders (LLaMA) give two blocks per layer (attention, MLP), post-norm
encoders (BERT) too, with the LayerNorm after the Add outside the block. A linear layer belongs
to the innermost block whose branch contains it; layers in no branch (an lm_head, a classifier)
belong to none.
"""

from __future__ import annotations

import dataclasses

import onnx_ir as ir

from qcompile.passes.canonicalize import Layer


@dataclasses.dataclass
class Block:
    add: str  # the residual Add node's name
    skip: str  # tensor entering the block
    out: str  # tensor leaving it (the Add's output)
    layers: list[str]


def _ancestors(value: ir.Value) -> set[int]:
    seen: set[int] = set()
    stack = [value.producer()] if value.producer() is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(v.producer() for v in node.inputs if v is not None and v.producer() is not None)
    return seen


def _descendants(value: ir.Value, stop: ir.Node) -> set[int]:
    seen: set[int] = set()
    stack = [u.node for u in value.uses()]
    while stack:
        node = stack.pop()
        if id(node) in seen or node is stop:
            continue
        seen.add(id(node))
        stack.extend(u.node for out in node.outputs for u in out.uses())
    return seen


def _computed(value: ir.Value | None) -> bool:
    return (
        value is not None
        and value.const_value is None
        and (value.producer() is not None or value.is_graph_input())
    )


def residual_blocks(graph: ir.Graph, layers: list[Layer]) -> list[Block]:
    by_node = {id(layer.node): layer.name for layer in layers}
    candidates: list[tuple[int, Block, set[str]]] = []
    for index, node in enumerate(graph):
        if node.op_type != "Add" or len(node.inputs) != 2 or not all(_computed(v) for v in node.inputs):
            continue
        for skip, branch in (node.inputs, tuple(reversed(node.inputs))):
            if branch.producer() is None:
                continue
            inside = _ancestors(branch) & _descendants(skip, node)
            names = [by_node[i] for i in inside if i in by_node]
            if names:
                block = Block(node.name or f"Add_{index}", skip.name, node.outputs[0].name, [])
                candidates.append((len(inside), block, set(names)))
                break
    owner: dict[str, tuple[int, Block]] = {}
    for size, block, names in candidates:
        for name in names:
            if name not in owner or size < owner[name][0]:
                owner[name] = (size, block)
    blocks = [block for _, block, _ in candidates]
    for layer in layers:
        if layer.name in owner:
            owner[layer.name][1].layers.append(layer.name)
    return [b for b in blocks if b.layers]

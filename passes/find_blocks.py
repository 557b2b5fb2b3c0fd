"""Split a graph into its sequential blocks (transformer layers) from the residual stream.

A residual Add joins a tensor `x` with a branch computed from `x` through at least one weighted
op (MatMul/Gemm/Conv with a constant weight). The longest chain of residual Adds, each one's
skip input descending from the previous one's output, is the residual stream; its Add outputs
are the cut points. Each node belongs to the first cut it is an ancestor of (nodes after the last
cut form the epilogue). Consecutive residual segments are grouped into blocks by their smallest
period (a transformer layer is two segments: attention and MLP), compared by op counts and
weight shapes, never by names. A graph without a residual stream is one block, with the reason.
"""

from __future__ import annotations

import collections
import dataclasses

import onnx_ir as ir

from qcompile.passes.canonicalize import WEIGHTED_OPS


@dataclasses.dataclass(frozen=True)
class Block:
    index: int
    nodes: tuple[ir.Node, ...]  # in graph order
    inputs: tuple[str, ...]  # values it reads that earlier blocks or the graph inputs produce
    outputs: tuple[str, ...]  # values it produces that later blocks or the graph outputs read


@dataclasses.dataclass(frozen=True)
class Blocks:
    blocks: tuple[Block, ...]
    cuts: tuple[str, ...]  # residual values that end blocks (the last block ends at the graph outputs)
    reason: str = ""  # why the graph is one block, if it is


def _is_constant(value: ir.Value | None) -> bool:
    if value is None or value.const_value is not None:
        return True
    producer = value.producer()
    return producer is not None and producer.op_type == "Constant"


def _has_weight(node: ir.Node) -> bool:
    if node.op_type not in WEIGHTED_OPS or node.domain not in ("", "ai.onnx"):
        return False
    return any(_is_constant(v) for v in node.inputs[:2] if v is not None)


def _ancestor_nodes(value: ir.Value, stop: ir.Value | None = None) -> set[ir.Node]:
    """Nodes `value` depends on (not expanding past `stop`)."""
    seen: set[ir.Node] = set()
    todo = [value]
    while todo:
        v = todo.pop()
        if v is None or v is stop:
            continue
        node = v.producer()
        if node is None or node in seen:
            continue
        seen.add(node)
        todo.extend(node.inputs)
    return seen


def _residual_skip(node: ir.Node) -> ir.Value | None:
    """The skip input of a residual Add, or None if `node` is not one."""
    if node.op_type != "Add" or node.domain not in ("", "ai.onnx") or len(node.inputs) != 2:
        return None
    a, b = node.inputs
    if _is_constant(a) or _is_constant(b):
        return None
    for skip, branch in ((a, b), (b, a)):
        between = _ancestor_nodes(branch, stop=skip)
        # nodes between skip and branch: ancestors of branch that read skip, directly or not
        reached, todo = set(), [u.node for u in skip.uses() if u.node in between]
        while todo:
            n = todo.pop()
            if n in reached:
                continue
            reached.add(n)
            todo.extend(u.node for out in n.outputs for u in out.uses() if u.node in between)
        if any(_has_weight(n) for n in reached):
            return skip
    return None


def residual_stream(graph: ir.Graph) -> list[ir.Value]:
    """The Add outputs along the longest chain of residual Adds, in order."""
    adds = [(node, skip) for node in graph if (skip := _residual_skip(node)) is not None]
    if not adds:
        return []
    ancestors = [_ancestor_nodes(skip) for _, skip in adds]
    best: list[tuple[int, int]] = []  # (chain length ending here, previous index)
    for j, (node, _) in enumerate(adds):
        options = [(best[i][0] + 1, i) for i in range(j) if adds[i][0] in ancestors[j]]
        best.append(max(options, default=(1, -1)))
    j = max(range(len(adds)), key=lambda i: best[i][0])
    chain = []
    while j >= 0:
        chain.append(adds[j][0].outputs[0])
        j = best[j][1]
    return chain[::-1]


def _segments(graph: ir.Graph, cuts: list[ir.Value]) -> list[list[ir.Node]]:
    """Nodes by the first cut they lead to; the last list holds the nodes after the last cut."""
    segment_of: dict[ir.Node, int] = {}
    for i, cut in enumerate(cuts):
        for node in _ancestor_nodes(cut):
            segment_of.setdefault(node, i)
    segments: list[list[ir.Node]] = [[] for _ in range(len(cuts) + 1)]
    for node in graph:
        segments[segment_of.get(node, len(cuts))].append(node)
    return segments


def _signature(nodes: list[ir.Node]) -> tuple:
    ops = collections.Counter(n.op_type for n in nodes)
    shapes = tuple(
        tuple(v.const_value.shape)
        for n in nodes
        if _has_weight(n)
        for v in n.inputs[:2]
        if v is not None and v.const_value is not None
    )
    return tuple(sorted(ops.items())), shapes


def _period(segments: list[list[ir.Node]]) -> int:
    """Smallest p with segment j like segment j + p throughout (the first segment also holds the prologue)."""
    signatures = [_signature(s) for s in segments[1:]]
    for p in range(1, len(signatures) // 2 + 1):
        if all(signatures[j] == signatures[j + p] for j in range(len(signatures) - p)):
            return p
    return 1


def blocks_at(graph: ir.Graph, cut_names: list[str] | tuple[str, ...]) -> tuple[Block, ...]:
    """The blocks ending at the named values (in order; names the graph lacks are skipped), then the rest."""
    values = {v.name: v for node in graph for v in node.outputs}
    cuts = [values[name] for name in cut_names if name in values]
    return with_boundaries(graph, [s for s in _segments(graph, cuts) if s])


def with_boundaries(graph: ir.Graph, node_lists: list[list[ir.Node]]) -> tuple[Block, ...]:
    block_of = {node: i for i, nodes in enumerate(node_lists) for node in nodes}
    outputs = {v.name for v in graph.outputs}
    blocks = []
    for i, nodes in enumerate(node_lists):
        inputs: dict[str, None] = {}
        produced: dict[str, None] = {}
        for node in nodes:
            for v in node.inputs:
                if v is not None and v.const_value is None and block_of.get(v.producer()) != i:
                    inputs[v.name] = None
            for v in node.outputs:
                if v.name in outputs or any(block_of.get(u.node, i) > i for u in v.uses()):
                    produced[v.name] = None
        blocks.append(Block(i, tuple(nodes), tuple(inputs), tuple(produced)))
    return tuple(blocks)


def find_blocks(graph: ir.Graph) -> Blocks:
    nodes = list(graph)
    if any(
        attr.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS)
        for node in nodes
        for attr in node.attributes.values()
    ):
        return Blocks(with_boundaries(graph, [nodes]), (), "the graph has control flow (subgraphs)")
    stream = residual_stream(graph)
    if not stream:
        return Blocks(
            with_boundaries(graph, [nodes]),
            (),
            "no residual stream (no Add joins a tensor with a weighted branch computed from it)",
        )
    period = _period(_segments(graph, stream)[:-1])
    ends = range(len(stream) - 1, -1, -period)  # the last residual value always ends a block
    cuts = tuple(stream[e].name for e in sorted(ends))
    return Blocks(blocks_at(graph, cuts), cuts)

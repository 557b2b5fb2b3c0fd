"""Find the quantizable layers: MatMul / Gemm / Conv whose weight is a constant.

A weight may sit behind Transpose, Cast or Identity nodes; the layer records the chain and
reads the effective weight through it. Every weighted op that is not quantizable is recorded
with the reason.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx_ir as ir

WEIGHTED_OPS = ("MatMul", "Gemm", "Conv")
_PASS_THROUGH = ("Transpose", "Cast", "Identity")


@dataclasses.dataclass
class Layer:
    """A weighted op with a constant weight, seen as `y = x @ W.T` with `W[N, K]`."""

    name: str
    op: str
    node: ir.Node
    activation: ir.Value
    weight: ir.Value  # the operand the op reads (maybe the output of the pass-through chain)
    source: ir.Value  # the constant initializer at the root of the chain
    chain: tuple[ir.Node, ...]  # pass-through nodes from source to weight, in order
    layout: str  # "kn": operand is [K, N]; "nk": operand is [N, K] (Gemm transB, Conv flattened)
    n: int
    k: int

    @property
    def operand_shape(self) -> tuple[int, ...]:
        return _operand_shape(self.source, self.chain)

    def operand_array(self) -> np.ndarray:
        """The weight as the op reads it (chain applied), float32."""
        arr = self.source.const_value.numpy()
        for node in self.chain:
            if node.op_type == "Transpose":
                perm = node.attributes.get_ints("perm", None)
                arr = np.transpose(arr, perm)
        return np.asarray(arr, np.float32)

    def weight_nk(self) -> np.ndarray:
        """The weight as `W[N, K]`: a copy, never a view of the (possibly memory-mapped) initializer."""
        arr = self.operand_array()
        if self.layout == "kn":
            return _transposed_copy(arr)
        return np.array(arr.reshape(self.n, self.k), np.float32, order="C", copy=True)


def _transposed_copy(arr: np.ndarray, rows: int = 32) -> np.ndarray:
    """`arr.T` as a new float32 C array, copied a few rows at a time: each read is contiguous and each
    write stays in cache (half the time of numpy's one-shot transposing copy of a large matrix)."""
    from qcompile.threads import map_chunks

    out = np.empty(arr.shape[::-1], np.float32)

    def copy(r: int) -> None:
        out[:, r : r + rows] = np.array(arr[r : r + rows], np.float32).T

    map_chunks(copy, range(0, arr.shape[0], rows))
    return out


@dataclasses.dataclass(frozen=True)
class Skipped:
    name: str
    op: str
    reason: str


def _node_name(node: ir.Node, index: int) -> str:
    return node.name or f"{node.op_type}_{index}"


def _weight_chain(value: ir.Value) -> tuple[ir.Value | None, tuple[ir.Node, ...], str]:
    chain: list[ir.Node] = []
    while value.const_value is None:
        producer = value.producer()
        if producer is None or producer.op_type not in _PASS_THROUGH or len(producer.inputs) != 1:
            return None, (), "weight is not a constant"
        if producer.op_type == "Cast" and producer.attributes.get_int("to") != ir.DataType.FLOAT:
            return None, (), "weight goes through a Cast to a type other than float32"
        chain.insert(0, producer)
        value = producer.inputs[0]
    if value.const_value.dtype not in (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16):
        return None, (), f"weight is {value.const_value.dtype.name}, not a float"
    return value, tuple(chain), ""


def _shared(source: ir.Value, chain: tuple[ir.Node, ...], op_node: ir.Node) -> str:
    for value, consumer in [(source, chain[0] if chain else op_node)] + [
        (n.outputs[0], chain[i + 1] if i + 1 < len(chain) else op_node) for i, n in enumerate(chain)
    ]:
        others = {u.node.name or u.node.op_type for u in value.uses() if u.node is not consumer}
        if others or value.is_graph_output():
            return f"weight shared with {', '.join(sorted(others)) or 'a graph output'}"
    return ""


def _classify(node: ir.Node) -> tuple[int, str, str]:
    """(weight input index, layout, reason if not quantizable)."""
    if node.op_type == "MatMul":
        if node.inputs[1] is not None and _weight_chain(node.inputs[1])[0] is not None:
            return 1, "kn", ""
        if _weight_chain(node.inputs[0])[0] is not None:
            return 0, "", "weight is the first operand of MatMul"
        return 1, "kn", _weight_chain(node.inputs[1])[2]
    if node.op_type == "Gemm":
        return 1, "nk" if node.attributes.get_int("transB", 0) else "kn", ""
    return 1, "nk", ""


def find_layers(graph: ir.Graph) -> tuple[list[Layer], list[Skipped]]:
    layers: list[Layer] = []
    skipped: list[Skipped] = []
    for index, node in enumerate(graph):
        if node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type == "ConvTranspose":
            skipped.append(
                Skipped(
                    _node_name(node, index),
                    node.op_type,
                    "ConvTranspose: TensorRT takes only per-input-channel weight scales",
                )
            )
        if node.op_type not in WEIGHTED_OPS:
            continue
        name = _node_name(node, index)
        w_index, layout, reason = _classify(node)
        source, chain, chain_reason = _weight_chain(node.inputs[w_index])
        reason = reason or chain_reason
        if not reason:
            reason = _shared(source, chain, node)
        if not reason:
            shape = _operand_shape(source, chain)
            if node.op_type != "Conv" and len(shape) != 2:
                reason = f"weight has rank {len(shape)}, not 2"
            elif node.op_type == "Conv" and len(shape) < 3:
                reason = f"Conv weight has rank {len(shape)}"
        if reason:
            skipped.append(Skipped(name, node.op_type, reason))
            continue
        if node.op_type == "Conv":
            n, k = shape[0], int(np.prod(shape[1:]))
        else:
            n, k = (shape[1], shape[0]) if layout == "kn" else (shape[0], shape[1])
        layers.append(
            Layer(
                name,
                node.op_type,
                node,
                node.inputs[1 - w_index if node.op_type == "MatMul" else 0],
                node.inputs[w_index],
                source,
                chain,
                layout,
                int(n),
                int(k),
            )
        )
    return layers, skipped


def _operand_shape(source: ir.Value, chain: tuple[ir.Node, ...]) -> tuple[int, ...]:
    shape = tuple(source.const_value.shape)
    for node in chain:
        if node.op_type == "Transpose":
            perm = node.attributes.get_ints("perm", None) or list(reversed(range(len(shape))))
            shape = tuple(shape[p] for p in perm)
    return shape

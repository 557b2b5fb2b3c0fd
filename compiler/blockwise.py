"""Run a model file block by block with onnxruntime.

Each block (passes/find_blocks.py) becomes a sub-model holding only its own initializers (its
external data is read from the model's folder), fed per sample with the values earlier blocks
produced. Between blocks those values live in a `Carry`: arrays in memory, or `.npy` files read
back memory-mapped once they pass a budget. Nothing else is shared between blocks.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from qcompile.ort_runner import OrtModel
from qcompile.passes.find_blocks import Block, Blocks, blocks_at, find_blocks

SPILL_BYTES = 1 << 30  # carried activations kept in memory; beyond this they go to disk
_counter = itertools.count()


class Carry:
    """Per sample, the values the remaining blocks (and the graph outputs) still read."""

    def __init__(self, samples: list[dict[str, np.ndarray]], folder: Path, budget: int = SPILL_BYTES):
        self.values = [dict(s) for s in samples]
        self.folder, self.budget = Path(folder), budget

    def feeds(self, block: Block) -> list[dict[str, np.ndarray]]:
        return [{name: s[name] for name in block.inputs} for s in self.values]

    def dtypes(self, block: Block) -> dict[str, np.ndarray]:
        first = self.values[0] if self.values else {}
        return {name: first[name] for name in block.inputs}

    def advance(self, produced: list[dict[str, np.ndarray]], keep: set[str]) -> None:
        """Add each sample's new values, then drop what nothing later reads."""
        self.values = [
            {k: v for k, v in {**s, **p}.items() if k in keep} for s, p in zip(self.values, produced)
        ]
        resident = sum(v.nbytes for s in self.values for v in s.values() if not isinstance(v, np.memmap))
        if resident > self.budget:
            self._spill()

    def _spill(self) -> None:
        """Every in-memory value into one file, read back as views of one memory map: a map per
        array would hold a file descriptor each (a KV-cache model carries 60 present.* per sample)."""
        arrays = [
            (s, k, v) for s in self.values for k, v in s.items() if v.size and not isinstance(v, np.memmap)
        ]
        offsets, end = [], 0
        for _, _, v in arrays:
            end = -(-end // 64) * 64  # aligned for every dtype's view
            offsets.append(end)
            end += v.nbytes
        if end == 0:
            return
        path = self.folder / f"carry-{next(_counter)}.bin"
        with open(path, "wb") as f:
            for (_, _, v), offset in zip(arrays, offsets):
                f.seek(offset)
                np.ascontiguousarray(v).tofile(f)
            f.truncate(end)
        mapped = np.memmap(path, np.uint8, mode="r", shape=(end,))
        for (sample, key, v), offset in zip(arrays, offsets):
            sample[key] = mapped[offset : offset + v.nbytes].view(v.dtype).reshape(v.shape)


def _value_info(name: str, example: np.ndarray) -> onnx.ValueInfoProto:
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.asarray(example).dtype)
    return onnx.helper.make_tensor_value_info(name, elem, [None] * np.ndim(example))


class BlockModel:
    """The blocks of one model file and the sub-model of each."""

    def __init__(self, path: Path, blocks: Blocks | None = None, *, cuts: tuple[str, ...] | None = None):
        self.path = Path(path)
        self.proto = onnx.load(str(path), load_external_data=False)
        graph = ir.serde.deserialize_graph(self.proto.graph)
        if blocks is None and cuts is not None:
            blocks = Blocks(blocks_at(graph, cuts), cuts)
        self.blocks = blocks if blocks is not None else find_blocks(graph)
        self._position = {node.output[0]: i for i, node in enumerate(self.proto.graph.node) if node.output}
        self.output_names = [o.name for o in self.proto.graph.output]

        self._block_of = {v.name: b.index for b in self.blocks.blocks for n in b.nodes for v in n.outputs}

    def block_of(self, value_name: str) -> int | None:
        """The block whose node produces `value_name` (None for graph inputs and initializers)."""
        return self._block_of.get(value_name)

    def keep_after(self, index: int) -> set[str]:
        later = {name for b in self.blocks.blocks[index + 1 :] for name in b.inputs}
        return later | set(self.output_names)

    def sub_model(self, block: Block, examples: dict[str, np.ndarray], outputs: list[str]) -> onnx.ModelProto:
        nodes = [self.proto.graph.node[self._position[n.outputs[0].name]] for n in block.nodes]
        used = {name for node in nodes for name in node.input}
        initializers = [t for t in self.proto.graph.initializer if t.name in used]
        graph = onnx.helper.make_graph(
            nodes,
            f"block{block.index}",
            [_value_info(n, examples[n]) for n in block.inputs],
            [onnx.helper.make_empty_tensor_value_info(n) for n in outputs],
            initializers,
        )
        model = onnx.helper.make_model(
            graph, opset_imports=self.proto.opset_import, ir_version=self.proto.ir_version
        )
        model.functions.extend(self.proto.functions)
        return model

    def session(
        self,
        block: Block,
        examples: dict[str, np.ndarray],
        *,
        extra_outputs=(),
        swappable=(),
        optimize: bool | None = None,
    ) -> OrtModel:
        """A session over `block`; its outputs are the block's outputs, then `extra_outputs`."""
        outputs = list(dict.fromkeys([*block.outputs, *(n for n in extra_outputs if n not in block.inputs)]))
        proto = self.sub_model(block, examples, outputs)
        return OrtModel(self.path, proto=proto, swappable=swappable, optimize=optimize)


def run_block(
    session: OrtModel, block: Block, feeds: list[dict], weights: dict | None = None, options=None
) -> list[dict]:
    """Each sample's block outputs, by name."""
    names = list(block.outputs)
    return [dict(zip(names, session.run(f, names, weights, options))) for f in feeds]

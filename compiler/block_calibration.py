"""Calibrate and quantize block by block: only one block's weights in an onnxruntime session at a
time, each block fed its inputs from the carry of the blocks before it.

Sequential mode feeds block i+1 the outputs of block i with its weights already quantized (the
setting of GPTQ's reference implementation and ZeroQuant's LKD); activations inside the block are
not fake-quantized there, only its weights. Weight-only RTN needs no data: no session is made.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np

from qcompile.blockwise import BlockModel, Carry, run_block
from qcompile.layer_quantizer import Group, QuantizedGroup, quantize_groups
from qcompile.mixed.runner import source_layout
from qcompile.recipe import Recipe

logger = logging.getLogger(__name__)


def _block_index(model: BlockModel, group: Group) -> int:
    name = group.planned[0].layer.node.outputs[0].name
    index = model.block_of(name)
    if index is None:
        raise LookupError(f"layer output {name!r} is not in the calibration model {model.path}")
    return index


def quantized_weights(done: list[QuantizedGroup]) -> dict[str, np.ndarray]:
    """Initializer name -> the float weight each quantized layer computes with."""
    return {
        p.layer.source.name: source_layout(p.layer, r.effective_weight())
        for qg in done
        for p, r in zip(qg.group.planned, qg.results)
    }


def quantize_blockwise(
    model: BlockModel | None,
    groups: list[Group],
    samples: list,
    recipe: Recipe,
    *,
    folder: Path,
    sequential: bool = False,
    progress: Callable | None = None,
    spill: bool = False,
) -> list[QuantizedGroup]:
    """Quantize every group; statistics come from running `model`'s blocks on `samples` in order.
    `spill`: keep each layer's codes in `folder` (memory-mapped) rather than in memory."""
    spill_to = folder if spill else None
    if model is None or not any(g.needs for g in groups):
        return quantize_groups(groups, None, [], recipe, progress, spill_to)
    by_block: dict[int, list[Group]] = {}
    for g in groups:
        by_block.setdefault(_block_index(model, g), []).append(g)
    total, offset = sum(len(g.planned) for g in groups), 0

    def bar(stage, done, count):
        if progress:
            progress(stage, offset + done, total) if stage == "quantize" else progress(stage, done, count)

    carry, out = Carry(samples, folder), []
    blocks = model.blocks.blocks[: max(by_block) + 1]
    for block in blocks:
        mine = by_block.get(block.index, [])
        observed = sorted({g.activation for g in mine if g.needs})
        swappable = [p.layer.source.name for g in mine for p in g.planned] if sequential else []
        feeds = carry.feeds(block)
        session = model.session(block, carry.dtypes(block), extra_outputs=observed, swappable=swappable)
        with session:
            logger.info(
                "block %d/%d: %d layers, %d tensors observed",
                block.index + 1,
                len(blocks),
                sum(len(g.planned) for g in mine),
                len(observed),
            )
            carried = not sequential and block is not blocks[-1]
            run, produced = _keeping_outputs(session.run, block) if carried else (session.run, {})
            done = quantize_groups(mine, run, feeds, recipe, bar, spill_to)
            offset += sum(len(g.planned) for g in mine)
            out += done
            if block is not blocks[-1]:
                if len(produced) == len(feeds):  # the calibration runs gave every sample's outputs
                    outputs = [produced[id(f)] for f in feeds]
                else:
                    weights = quantized_weights(done) if sequential else None
                    outputs = run_block(session, block, feeds, weights)
                carry.advance(outputs, model.keep_after(block.index))
    return out


def _keeping_outputs(run: Callable, block) -> tuple[Callable, dict]:
    """`run` that also fetches the block's outputs and keeps them by sample (its id), so that the float
    model's carry needs no second pass over the block."""
    produced = {}

    def run_and_keep(sample: dict, names: list[str]) -> list:
        values = run(sample, [*names, *block.outputs])
        produced[id(sample)] = dict(zip(block.outputs, values[len(names) :]))
        return values[: len(names)]

    return run_and_keep, produced

"""Verify a quantized model against its original block by block: both run in lockstep, each on
its own carry, so one block of each is in memory at a time. The error of every block's output
(the residual stream where the block ends, the graph outputs for the last) says where accuracy
is lost; the graph outputs give the model-level figures."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

import numpy as np

from qcompile.accuracy import compare_outputs, cosine
from qcompile.blockwise import BlockModel, Carry, run_block
from qcompile.ort_runner import user_model_errors
from qcompile.report import BlockError, OutputAccuracy


def _block_error(index: int, name: str, ref: list[np.ndarray], got: list[np.ndarray]) -> BlockError:
    cos = [cosine(r, g) for r, g in zip(ref, got)]
    num = sum(
        float(np.sum((np.asarray(r, np.float64) - np.asarray(g, np.float64)) ** 2)) for r, g in zip(ref, got)
    )
    den = sum(float(np.sum(np.asarray(r, np.float64) ** 2)) for r in ref)
    return BlockError(
        index, name, float(np.mean(cos)), float(np.min(cos)), num / den if den else float(num > 0)
    )


def verify_blockwise(
    original: BlockModel,
    quantized_path: Path,
    samples: list,
    *,
    folder: Path,
    progress: Callable | None = None,
) -> tuple[list[OutputAccuracy], list[BlockError]]:
    quantized = BlockModel(quantized_path, cuts=original.blocks.cuts)
    pairs = list(zip(original.blocks.blocks, quantized.blocks.blocks))
    if len(original.blocks.blocks) != len(
        quantized.blocks.blocks
    ):  # a cut value vanished: compare whole models
        original = BlockModel(original.path, cuts=())
        quantized = BlockModel(quantized_path, cuts=())
        pairs = list(zip(original.blocks.blocks, quantized.blocks.blocks))
    (folder / "original").mkdir(exist_ok=True)
    (folder / "quantized").mkdir(exist_ok=True)
    carries = Carry(samples, folder / "original"), Carry(samples, folder / "quantized")
    names, errors = original.output_names, []
    for step, (a, b) in enumerate(pairs):
        produced = []
        for model, block, carry in ((original, a, carries[0]), (quantized, b, carries[1])):
            # the user's model failing on its inputs is the user's to fix; the quantized one failing is a bug
            with (
                user_model_errors("the model") if model is original else contextlib.nullcontext(),
                model.session(block, carry.dtypes(block)) as session,
            ):
                produced.append(run_block(session, block, carry.feeds(block)))
            carry.advance(produced[-1], model.keep_after(block.index))
        ends = (
            [original.blocks.cuts[step]]
            if step < len(original.blocks.cuts)
            else [n for n in names if n in a.outputs]
        )
        errors += [
            _block_error(a.index, n, [p[n] for p in produced[0]], [p[n] for p in produced[1]]) for n in ends
        ]
        if progress:
            progress("verify", step + 1, len(pairs))
    results = (
        [[c[n] for n in names] for c in carries[0].values],
        [[c[n] for n in names] for c in carries[1].values],
    )
    return compare_outputs(names, *results), errors

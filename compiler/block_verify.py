"""Verify a quantized model against its original block by block: both run in lockstep, each on
its own carry, so one block of each is in memory at a time. The error of every block's output
(the residual stream where the block ends, the graph outputs for the last) says where accuracy
is lost; the graph outputs give the model-level figures."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from qcompile.accuracy import compare_outputs, cosine
from qcompile.blockwise import BlockModel, Carry, run_block
from qcompile.errors import ModelError
from qcompile.ort_runner import ort_errors, user_model_errors
from qcompile.report import BlockError, OutputAccuracy


class VerifyTimeout(Exception):
    """Verification ran past its time budget: stopped, not failed."""


class _Budget:
    """RunOptions whose terminate flag is set once `seconds` have passed (None: never); a run still going
    then stops at its next node, inside Loop and If bodies too."""

    def __init__(self, seconds: float | None):
        import onnxruntime as ort

        self.options = ort.RunOptions()
        self.options.log_severity_level = 4  # the stop is reported once, by qcompile
        self._timer = threading.Timer(seconds, self._expire) if seconds else None
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        self.options.terminate = True

    @property
    def expired(self) -> bool:
        return self.options.terminate

    def check(self) -> None:
        if self.expired:
            raise VerifyTimeout

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


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
    seconds: float | None = None,
) -> tuple[list[OutputAccuracy], list[BlockError]]:
    """Raises VerifyTimeout when it runs for more than `seconds`."""
    budget = _Budget(seconds)
    try:
        return _verify(original, quantized_path, samples, folder, progress, budget)
    except (ModelError, *ort_errors()):
        if budget.expired:
            raise VerifyTimeout from None
        raise
    finally:
        budget.close()


def _verify(
    original: BlockModel, quantized_path: Path, samples: list, folder: Path, progress, budget: _Budget
):
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
            budget.check()
            # the user's model failing on its inputs is the user's to fix; the quantized one failing is a bug
            with (
                user_model_errors("the model") if model is original else contextlib.nullcontext(),
                model.session(block, carry.dtypes(block)) as session,
            ):
                produced.append(run_block(session, block, carry.feeds(block), options=budget.options))
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

"""One onnxruntime session over the original model for the sensitivity methods: it exposes chosen
intermediate tensors and lets chosen weight initializers be replaced per run (each becomes a
graph input with the initializer as its default), so trying a quantized weight is a feed, not a
model build."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from qcompile.accuracy import cosine
from qcompile.ort_runner import OrtModel
from qcompile.passes.canonicalize import Layer


class WeightSwapRunner(OrtModel):
    """OrtModel over the original model with the given layers' weights swappable."""

    def __init__(self, path: Path, *, extra_outputs: list[str] = (), swappable: list[Layer] = ()):
        super().__init__(path, extra_outputs=extra_outputs, swappable=[layer.source.name for layer in swappable])


def stream(runner: WeightSwapRunner, names: list[str], samples, consume: Callable[[str, np.ndarray], None],
           *, chunk: int = 64, progress: Callable[[int, int], None] | None = None) -> None:
    """Run every sample, fetching at most `chunk` tensors per run, and hand each tensor to `consume`."""
    names = list(dict.fromkeys(names))
    chunks = [names[i:i + chunk] for i in range(0, len(names), chunk)]
    total, done = len(chunks) * len(samples), 0
    for part in chunks:
        for sample in samples:
            for name, value in zip(part, runner.run(sample, part)):
                consume(name, value)
            done += 1
            if progress:
                progress(done, total)


def output_error(reference, outputs, metric: str) -> float:
    """Model-output error of `outputs` against `reference` (per sample, a list of output tensors):
    "cosine" = 1 - mean cosine over samples and outputs; "mse" = mean over outputs of
    |ref - out|^2 / |ref|^2 summed over samples."""
    if metric == "cosine":
        return 1.0 - float(np.mean([cosine(r, o) for ref, out in zip(reference, outputs) for r, o in zip(ref, out)]))
    errs = []
    for i in range(len(reference[0])):
        num = sum(float(np.sum((np.asarray(r[i], np.float64) - o[i]) ** 2)) for r, o in zip(reference, outputs))
        den = sum(float(np.sum(np.asarray(r[i], np.float64) ** 2)) for r in reference)
        errs.append(num / max(den, 1e-30))
    return float(np.mean(errs))


def source_layout(layer: Layer, w_nk: np.ndarray) -> np.ndarray:
    """Inverse of Layer.weight_nk: a [N, K] weight back into the initializer's layout and dtype."""
    operand = w_nk.T if layer.layout == "kn" else w_nk.reshape(layer.operand_shape)
    for node in reversed(layer.chain):
        if node.op_type == "Transpose":
            perm = node.attributes.get_ints("perm", None) or list(reversed(range(operand.ndim)))
            operand = np.transpose(operand, np.argsort(perm))
    dtype = np.dtype(layer.source.const_value.dtype.numpy())
    return np.ascontiguousarray(operand.astype(dtype))

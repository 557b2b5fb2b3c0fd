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
        super().__init__(
            path, extra_outputs=extra_outputs, swappable=[layer.source.name for layer in swappable]
        )


def stream(
    runner: WeightSwapRunner,
    names: list[str],
    samples,
    consume: Callable[[str, np.ndarray], None],
    *,
    chunk: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Run every sample, fetching at most `chunk` tensors per run, and hand each tensor to `consume`."""
    names = list(dict.fromkeys(names))
    chunks = [names[i : i + chunk] for i in range(0, len(names), chunk)]
    total, done = len(chunks) * len(samples), 0
    for part in chunks:
        for sample in samples:
            for name, value in zip(part, runner.run(sample, part)):
                consume(name, value)
            done += 1
            if progress:
                progress(done, total)


def output_metrics(metric: str, names: list[str]) -> list[str]:
    """The metric per output: "auto" is "kl" on outputs named like logits ("logits" in the name,
    any case), "cosine" on the others."""
    if metric != "auto":
        return [metric] * len(names)
    return ["kl" if "logits" in name.lower() else "cosine" for name in names]


def metric_label(metric: str, names: list[str]) -> str:
    """E.g. "kl" or "auto (kl on logits)", for plans and reports."""
    if metric != "auto":
        return metric
    return (
        "auto ("
        + ", ".join(f"{kind} on {name}" for kind, name in zip(output_metrics(metric, names), names))
        + ")"
    )


def kl_divergence(reference: np.ndarray, output: np.ndarray) -> float:
    """Mean over positions of KL(softmax(reference) || softmax(output)), softmax over the last axis."""

    def log_softmax(x):
        x = np.asarray(x, np.float64)
        x = x - x.max(axis=-1, keepdims=True)
        return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))

    log_p, log_q = log_softmax(reference), log_softmax(output)
    return float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)))


def output_error(reference, outputs, metric: str, names: list[str]) -> float:
    """Model-output error of `outputs` against `reference` (per sample, a list of output tensors
    named `names`), the mean over outputs of: "cosine" = 1 - mean cosine over samples; "mse" =
    |ref - out|^2 / |ref|^2 summed over samples; "kl" = mean KL divergence of the last axis'
    softmax (next-token distributions for logits) over samples; "auto" = output_metrics."""
    errs = []
    for i, kind in enumerate(output_metrics(metric, names)):
        pairs = [
            (np.asarray(ref[i], np.float64), np.asarray(out[i], np.float64))
            for ref, out in zip(reference, outputs)
        ]
        if kind == "cosine":
            errs.append(1.0 - float(np.mean([cosine(r, o) for r, o in pairs])))
        elif kind == "kl":
            errs.append(float(np.mean([kl_divergence(r, o) for r, o in pairs])))
        else:
            errs.append(
                sum(float(np.sum((r - o) ** 2)) for r, o in pairs)
                / max(sum(float(np.sum(r**2)) for r, _ in pairs), 1e-30)
            )
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

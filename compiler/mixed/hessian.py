"""HAWQ-style sensitivity with the layer-local Hessian E[x x^T] of `y = W x`, used in full.

The predicted error of a (layer, format) is the expected layer-output error of its real
round-to-nearest weight error dW = W - Q(W):

    E|dW x|^2 = tr(dW S dW^T),  S = E[x x^T]  (K x K, mean over calibration tokens)

which sees which input channels carry energy and how the format's error falls on them (a
format's error concentrated on quiet channels costs little). The earlier proxy
`N x MSE(dW) x tr(S)` is this with S replaced by its mean diagonal (isotropic inputs).

Normalization (SensitivityOptions.hessian_normalize):
- "output" (default): divided by the layer's output energy tr(W S W^T), i.e. the relative
  output error. Absolute errors are not comparable across layers that feed a LayerNorm or a
  softmax at different scales; measured on all-MiniLM-L6-v2 it gives the best plans of the
  variants (docs/MIXED_PRECISION.md).
- "none": the absolute output error above.
S is accumulated per distinct layer input (layers that share an input share it) in float64, in
chunks of inputs whose matrices together stay under GRAM_BUDGET_BYTES (one pass over the
samples per chunk). Conv layers keep the isotropic proxy (S would need im2col); noted.
The layer score (reported) is tr(S): the input energy.
"""

from __future__ import annotations

import numpy as np

from qcompile.layer_quantizer import chunk_by_cost
from qcompile.mixed.candidates import weight_spec
from qcompile.mixed.runner import WeightSwapRunner, stream
from qcompile.mixed.sensitivity import Context, Sensitivity

GRAM_BUDGET_BYTES = 1_500_000_000  # second moments held at once (the layer quantizer's bound too)


def _rows(x: np.ndarray, conv: bool) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if conv:
        x = np.moveaxis(x, 1, -1)
    return x.reshape(-1, x.shape[-1])


def second_moments(ctx: Context, sizes: dict[str, int], conv: dict[str, bool]) -> dict[str, tuple]:
    """Input -> (E[x x^T] or None for a conv input, tr(E[x x^T]) per token row, channels), streamed
    in chunks of inputs whose K x K float64 matrices together fit GRAM_BUDGET_BYTES."""
    runner = WeightSwapRunner(ctx.path, extra_outputs=list(sizes))
    out = {}
    for chunk in chunk_by_cost(list(sizes), lambda n: 0 if conv[n] else 8 * sizes[n] ** 2, GRAM_BUDGET_BYTES):
        acc: dict[str, list] = {n: [None, 0.0, 0, 1] for n in chunk}  # gram, sum of squares, rows, channels

        def consume(name: str, x: np.ndarray) -> None:
            rows = _rows(x, conv[name])
            entry = acc[name]
            if not conv[name]:
                gram = rows.T @ rows
                entry[0] = gram if entry[0] is None else entry[0] + gram
            entry[1] += float(np.square(rows).sum())
            entry[2] += rows.shape[0]
            entry[3] = rows.shape[1]

        stream(runner, chunk, ctx.samples, consume, progress=lambda d, t: ctx.report("hessian", d, t))
        for name, (gram, squares, count, channels) in acc.items():
            count = max(count, 1)
            out[name] = (None if gram is None else gram / count, squares / count, channels)
    return out


def output_errors(
    w: np.ndarray, moment: np.ndarray, deq: dict[str, np.ndarray]
) -> tuple[dict[str, float], float]:
    """(format -> tr(dW S dW^T), tr(W S W^T)) for a [N, K] weight and its dequantized versions."""
    s = moment.astype(np.float32)

    def quad(d: np.ndarray) -> float:
        return float(np.sum((d.astype(np.float32) @ s) * d, dtype=np.float64))

    return {f: quad(w - q) for f, q in deq.items()}, quad(w)


def hessian(ctx: Context) -> Sensitivity:
    from qcompile.quantizer import quantize_weight

    by_input: dict[str, list] = {}
    for info in ctx.infos:
        by_input.setdefault(info.layer.activation.name, []).append(info)
    conv = {name: infos[0].layer.op == "Conv" for name, infos in by_input.items()}
    moments = second_moments(ctx, {name: infos[0].layer.k for name, infos in sorted(by_input.items())}, conv)
    score, error, energy = {}, {}, {}
    for name, infos in by_input.items():
        moment, trace, channels = moments[name]
        for info in infos:
            layer, w = info.layer, np.asarray(info.layer.weight_nk(), np.float32)
            if moment is None:  # conv: mean channel second moment x K, isotropic
                per_row = trace * layer.k / channels
                score[info.name] = per_row
                error[info.name] = {
                    f: per_row * ctx.weight_errors[info.name][f][0] * layer.n for f in info.bits
                }
                energy[info.name] = per_row * float(np.mean(np.square(w, dtype=np.float64))) * layer.n
                continue
            score[info.name] = trace
            deq = {}
            for f in info.bits:
                spec = weight_spec(f, ctx.group_size, layer)
                deq[f] = w if spec is None else quantize_weight(w, spec).dequantize().astype(np.float32)
            error[info.name], energy[info.name] = output_errors(w, moment, deq)
    normalize = ctx.options.hessian_normalize
    if normalize == "output":
        error = {n: {f: e / max(energy[n], 1e-30) for f, e in errs.items()} for n, errs in error.items()}
    if any(conv.values()):
        ctx.notes.append("hessian: conv layers use the isotropic proxy N x MSE(dW) x tr(E[x x^T])")
    return Sensitivity(
        "hessian",
        score,
        error,
        {
            "score": "tr(E[x x^T]) of the layer input",
            "error": "tr(dW E[x x^T] dW^T)" + (" / tr(W E[x x^T] W^T)" if normalize == "output" else ""),
            "output_energy": energy,
        },
    )

"""HAWQ-style sensitivity with the layer-local Hessian proxy E[x x^T] of `y = W x`.

For a weight error dW uncorrelated with x, E|dW x|^2 = N * MSE(dW) * tr(E[x x^T]), and
tr(E[x x^T]) = mean over tokens of sum_k x_k^2: one streaming pass over the calibration
samples, no K x K matrix. The predicted error of a (layer, format) is that product with the
format's round-to-nearest weight MSE; it is HAWQ-v3's tr(H)/n * |dW|^2 with this H.
Conv: x is the input image and one output position reads K = C_in/groups * kh * kw of its
values, so the trace is the mean over channels of E[x_c^2] times K.
"""

from __future__ import annotations

import numpy as np

from qcompile.mixed.runner import WeightSwapRunner, stream
from qcompile.mixed.sensitivity import Context, Sensitivity


def hessian_trace(ctx: Context) -> Sensitivity:
    by_input: dict[str, list] = {}
    for info in ctx.infos:
        by_input.setdefault(info.layer.activation.name, []).append(info)
    sums = {name: [0.0, 0, 1] for name in by_input}  # sum of x^2, tokens, channels
    conv = {name: infos[0].layer.op == "Conv" for name, infos in by_input.items()}

    def consume(name: str, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64)
        if conv[name]:
            x = np.moveaxis(x, 1, -1)
        rows = x.reshape(-1, x.shape[-1])
        sums[name][0] += float(np.square(rows).sum())
        sums[name][1] += rows.shape[0]
        sums[name][2] = rows.shape[1]

    runner = WeightSwapRunner(ctx.path, extra_outputs=sorted(by_input))
    stream(runner, sorted(by_input), ctx.samples, consume, progress=lambda d, t: ctx.report("hessian", d, t))
    score, error = {}, {}
    for name, infos in by_input.items():
        trace = sums[name][0] / max(sums[name][1], 1)
        for info in infos:
            layer = info.layer
            per_layer = trace * layer.k / sums[name][2] if layer.op == "Conv" else trace
            score[info.name] = per_layer
            error[info.name] = {f: per_layer * ctx.weight_errors[info.name][f][0] * layer.n for f in info.bits}
    return Sensitivity("hessian", score, error, {"score": "tr(E[x x^T]) of the layer input"})

"""Measured sensitivity: quantize one layer (all others float), run the model with onnxruntime on
`samples` calibration samples and compare its outputs with the float model's.

Cost: one onnxruntime run per (layer, quantized format, sample), nothing rebuilt: the weights are
graph inputs of one session and a quantized layer is a different feed (runner.py). Above
`measured_max_runs` runs, consecutive layers (graph order) are quantized together in G groups,
G = max_runs // (formats x samples), and a group's error is shared among its layers in
proportion to params x relative weight MSE of the format.
Error: runner.output_error ("auto": KL divergence of the next-token distributions on logits,
1 - mean cosine on other outputs).
"""

from __future__ import annotations

import numpy as np

from qcompile.mixed.candidates import weight_spec
from qcompile.mixed.runner import WeightSwapRunner, metric_label, output_error, source_layout
from qcompile.mixed.sensitivity import Context, Sensitivity


def groups_for(n_layers: int, runs_per_layer: int, max_runs: int) -> list[range]:
    """Contiguous layer groups so that groups x runs_per_layer <= max_runs (at least one group)."""
    count = n_layers if n_layers * runs_per_layer <= max_runs else max(1, max_runs // max(runs_per_layer, 1))
    bounds = np.linspace(0, n_layers, min(count, n_layers) + 1).round().astype(int)
    return [range(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def measured(ctx: Context) -> Sensitivity:
    opts = ctx.options
    samples = ctx.samples[: opts.samples]
    quantized = sorted(
        {f for info in ctx.infos for f in info.bits if weight_spec(f, ctx.group_size) is not None}
    )
    groups = groups_for(len(ctx.infos), len(quantized) * len(samples), opts.measured_max_runs)
    if len(groups) < len(ctx.infos):
        ctx.notes.append(
            f"measured: {len(ctx.infos)} layers x {len(quantized)} formats x {len(samples)} samples is "
            f"over {opts.measured_max_runs} runs; measured {len(groups)} groups of consecutive layers"
        )
    runner = WeightSwapRunner(ctx.path, swappable=[info.layer for info in ctx.infos])
    reference = [runner.run(s) for s in samples]
    error = {info.name: {f: 0.0 for f in info.bits} for info in ctx.infos}
    from qcompile.quantizer import quantize_weight

    done, total = 0, len(groups) * len(quantized)
    for group in groups:
        members = [ctx.infos[i] for i in group]
        for fmt in quantized:
            takers = [m for m in members if fmt in m.bits]
            if takers:
                feeds = {
                    m.layer.source.name: source_layout(
                        m.layer,
                        quantize_weight(
                            m.layer.weight_nk(), weight_spec(fmt, ctx.group_size, m.layer)
                        ).dequantize(),
                    )
                    for m in takers
                }
                e = output_error(
                    reference,
                    [runner.run(s, weights=feeds) for s in samples],
                    opts.measured_metric,
                    runner.output_names,
                )
                shares = np.array([m.params * ctx.weight_errors[m.name][fmt][1] for m in takers], np.float64)
                shares = (
                    shares / shares.sum() if shares.sum() > 0 else np.full(len(takers), 1.0 / len(takers))
                )
                for m, share in zip(takers, shares):
                    error[m.name][fmt] = max(e, 0.0) * float(share)
            done += 1
            ctx.report("measured", done, total)
    score = {}
    for info in ctx.infos:
        probes = [f for f in info.bits if weight_spec(f, ctx.group_size) is not None]
        score[info.name] = error[info.name][min(probes, key=lambda f: info.bits[f])] if probes else 0.0
    return Sensitivity(
        "measured",
        score,
        error,
        {
            "metric": metric_label(opts.measured_metric, runner.output_names),
            "samples": len(samples),
            "groups": len(groups),
            "runs": len(groups) * len(quantized) * len(samples),
            "score": "error of the layer's fewest-bit format",
        },
    )

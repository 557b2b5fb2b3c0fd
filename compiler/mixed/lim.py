"""LIM, Layer Input Modification (Dumitru et al., arXiv 2406.17415): how much a block changes its
hidden state, LIM = -cos(h_in, h_out), averaged over calibration tokens; higher = more important.

Blocks come from residual.py. Every linear layer gets its block's LIM. The allocator weighs
formats by the non-negative importance 1 + LIM = 1 - cos (same order). Layers in no residual
branch (an lm_head) get the largest importance of any block: the paper finds the first and last
layers the most important, and an unknown layer is safer kept precise. Without any residual
structure the score falls back to each layer's own input/output similarity, as linear CKA
(the cosine of centred token-similarity matrices: defined although K != N).
"""

from __future__ import annotations

import numpy as np

from qcompile.mixed.residual import residual_blocks
from qcompile.mixed.runner import WeightSwapRunner
from qcompile.mixed.sensitivity import Context, Sensitivity, from_importance

BLOCKS_PER_RUN = 32
CKA_ROWS = 512  # tokens kept per layer for the fallback (Gram matrices are CKA_ROWS^2)


def _rows(x: np.ndarray, op: str) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if op == "Conv":
        x = np.moveaxis(x, 1, -1)
    return x.reshape(-1, x.shape[-1])


def _token_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = _rows(a, ""), _rows(b, "")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    keep = norms > 0
    return (a[keep] * b[keep]).sum(axis=1) / norms[keep]


def lim(ctx: Context) -> Sensitivity:
    layers = [info.layer for info in ctx.infos]
    blocks = [b for b in residual_blocks(ctx.model.graph, layers)]
    if not blocks:
        return _cka_fallback(ctx)
    runner = WeightSwapRunner(ctx.path, extra_outputs=sorted({n for b in blocks for n in (b.skip, b.out)}))
    sums = {b.add: [0.0, 0] for b in blocks}
    groups = [blocks[i : i + BLOCKS_PER_RUN] for i in range(0, len(blocks), BLOCKS_PER_RUN)]
    for g, group in enumerate(groups):
        names = [n for b in group for n in (b.skip, b.out)]
        for s, sample in enumerate(ctx.samples):
            values = dict(zip(names, runner.run(sample, names)))
            for b in group:
                if values[b.skip].shape == values[b.out].shape:
                    cos = _token_cosines(values[b.skip], values[b.out])
                    sums[b.add][0] += float(cos.sum())
                    sums[b.add][1] += cos.size
            ctx.report("lim", g * len(ctx.samples) + s + 1, len(groups) * len(ctx.samples))
    block_lim = {b.add: -sums[b.add][0] / sums[b.add][1] for b in blocks if sums[b.add][1]}
    top = max(block_lim.values())
    score, outside = {}, []
    for b in blocks:
        for name in b.layers:
            score[name] = block_lim.get(b.add, top)
    for info in ctx.infos:
        if info.name not in score:
            score[info.name] = top
            outside.append(info.name)
    importance = {name: 1.0 + s for name, s in score.items()}
    details = {
        "blocks": [{"add": b.add, "lim": block_lim.get(b.add), "layers": b.layers} for b in blocks],
        "outside_blocks": outside,
    }
    return from_importance("lim", ctx, score, importance, details)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of two row-aligned representations (1 = same up to rotation and scale)."""
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    kx, ky = x @ x.T, y @ y.T
    denom = np.linalg.norm(kx) * np.linalg.norm(ky)
    return float((kx * ky).sum() / denom) if denom > 0 else 1.0


def _cka_fallback(ctx: Context) -> Sensitivity:
    pairs = {info.name: (info.layer.activation.name, info.layer.node.outputs[0].name) for info in ctx.infos}
    runner = WeightSwapRunner(ctx.path, extra_outputs=sorted({n for p in pairs.values() for n in p}))
    per_sample = max(1, CKA_ROWS // max(len(ctx.samples), 1))
    rows: dict[str, list] = {name: [[], []] for name in pairs}
    for s, sample in enumerate(ctx.samples):
        for info in ctx.infos:
            x, y = (_rows(v, info.layer.op) for v in runner.run(sample, list(pairs[info.name])))
            pick = np.linspace(0, len(x) - 1, min(per_sample, len(x))).round().astype(int)
            if len(x) == len(y):
                rows[info.name][0].append(x[pick])
                rows[info.name][1].append(y[pick])
        ctx.report("lim", s + 1, len(ctx.samples))
    score = {}
    for name, (xs, ys) in rows.items():
        score[name] = -linear_cka(np.concatenate(xs), np.concatenate(ys)) if xs else 0.0
    importance = {name: 1.0 + s for name, s in score.items()}
    ctx.notes.append("lim: no residual block found; scored each layer by -CKA(input, output) instead")
    return from_importance("lim", ctx, score, importance, {"fallback": "per-layer linear CKA"})

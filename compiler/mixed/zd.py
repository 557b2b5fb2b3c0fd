"""ZD, z-score distribution (Dumitru et al., arXiv 2406.17415): the share of a layer's weights
whose z-score (w - mean) / std exceeds a threshold (default 1). Data-free.

The paper's direction is uncertain (its abstract reads "smaller is better"; a summary says the
opposite), so it is an option: "higher" makes a larger share more important (importance =
share / mean share), "lower" a smaller one (importance = mean share / share).
"""

from __future__ import annotations

import numpy as np

from qcompile.mixed.sensitivity import Context, Sensitivity, from_importance


def z_share(w: np.ndarray, threshold: float) -> float:
    w = np.asarray(w, np.float64).ravel()
    std = w.std()
    if std == 0:
        return 0.0
    return float(np.mean((w - w.mean()) / std > threshold))


def zd(ctx: Context) -> Sensitivity:
    opts = ctx.options
    score = {}
    for i, info in enumerate(ctx.infos):
        score[info.name] = z_share(info.layer.weight_nk(), opts.zd_threshold)
        ctx.report("zd", i + 1, len(ctx.infos))
    mean = max(float(np.mean(list(score.values()))), 1e-12)
    floor = 1e-6  # a layer with no weight above the threshold still gets a finite importance
    if opts.zd_direction == "higher":
        importance = {n: max(s, floor) / mean for n, s in score.items()}
    else:
        importance = {n: mean / max(s, floor) for n, s in score.items()}
    return from_importance(
        "zd", ctx, score, importance, {"threshold": opts.zd_threshold, "direction": opts.zd_direction}
    )

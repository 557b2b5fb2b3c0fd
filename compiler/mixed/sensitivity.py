"""Per-layer sensitivity, several methods behind one registry, all feeding the same allocator.

Every method returns a `Sensitivity`: a score per layer (what the method measures, in its own
units, for the report) and a predicted error per (layer, format) (what the allocator sums).
Methods that score layers, not formats (LIM, ZD), predict `importance x relative weight MSE of
the format` (round-to-nearest); fp16 always predicts 0.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import onnx_ir as ir

from qcompile.errors import RecipeError
from qcompile.mixed.candidates import LayerInfo

ZD_DIRECTIONS = ("higher", "lower")
MEASURED_METRICS = ("auto", "cosine", "mse", "kl")
HESSIAN_NORMALIZATIONS = ("output", "none")


@dataclasses.dataclass(frozen=True)
class SensitivityOptions:
    samples: int = 4  # calibration samples the `measured` method runs (the others use all of them)
    zd_threshold: float = 1.0
    zd_direction: str = "higher"  # "higher": more weights above the threshold = more important
    measured_metric: str = (
        "auto"  # model-output error (runner.output_error): KL on logits, 1 - cosine elsewhere
    )
    measured_max_runs: int = 2000  # above this many onnxruntime runs, `measured` quantizes whole blocks
    hessian_normalize: str = "output"  # "output": layer-output error relative to the output energy; "none"
    seed: int = 0

    def __post_init__(self):
        if self.zd_direction not in ZD_DIRECTIONS:
            raise RecipeError(
                f"zd_direction must be one of {', '.join(ZD_DIRECTIONS)}, not {self.zd_direction!r}"
            )
        if self.measured_metric not in MEASURED_METRICS:
            raise RecipeError(
                f"measured metric must be one of {', '.join(MEASURED_METRICS)}, not {self.measured_metric!r}"
            )
        if self.hessian_normalize not in HESSIAN_NORMALIZATIONS:
            raise RecipeError(
                f"hessian_normalize must be one of {', '.join(HESSIAN_NORMALIZATIONS)}, "
                f"not {self.hessian_normalize!r}"
            )
        if self.samples < 1:
            raise RecipeError(f"sensitivity samples must be at least 1, not {self.samples}")


@dataclasses.dataclass
class Context:
    """What a method may use; weight errors are computed once and shared."""

    model: ir.Model
    path: Path  # the original model on disk, for onnxruntime
    infos: list[LayerInfo]
    samples: list[dict]  # calibration samples (the held-back ones excluded)
    group_size: int
    options: SensitivityOptions
    weight_errors: dict[str, dict[str, tuple[float, float]]]  # layer -> format -> (MSE, relative MSE)
    progress: Callable[[str, int, int], None] | None = None
    notes: list[str] = dataclasses.field(default_factory=list)

    def report(self, stage: str, done: int, total: int) -> None:
        if self.progress:
            self.progress(stage, done, total)


@dataclasses.dataclass
class Sensitivity:
    method: str
    score: dict[str, float]  # layer -> the method's own score
    error: dict[str, dict[str, float]]  # layer -> format -> predicted error
    details: dict = dataclasses.field(default_factory=dict)


def from_importance(
    method: str,
    ctx: Context,
    score: dict[str, float],
    importance: dict[str, float],
    details: dict | None = None,
) -> Sensitivity:
    """Layer scores -> per-format errors: importance x relative weight MSE."""
    error = {
        info.name: {f: importance[info.name] * ctx.weight_errors[info.name][f][1] for f in info.bits}
        for info in ctx.infos
    }
    return Sensitivity(method, score, error, details or {})


def _lim(ctx):
    from qcompile.mixed.lim import lim

    return lim(ctx)


def _zd(ctx):
    from qcompile.mixed.zd import zd

    return zd(ctx)


def _hessian(ctx):
    from qcompile.mixed.hessian import hessian

    return hessian(ctx)


def _measured(ctx):
    from qcompile.mixed.measured import measured

    return measured(ctx)


METHODS: dict[str, tuple[Callable[[Context], Sensitivity], str]] = {
    "lim": (_lim, "layer input modification: 1 - cos(hidden state in, out) of the layer's residual block"),
    "zd": (_zd, "z-score distribution: share of weights with z-score above a threshold (data-free)"),
    "hessian": (
        _hessian,
        "layer-output error tr(dW E[x x^T] dW^T) of the format's RTN error over the "
        "output energy tr(W E[x x^T] W^T) (HAWQ-style)",
    ),
    "measured": (_measured, "model-output error with one layer quantized, measured with onnxruntime"),
}


def check_method(name: str) -> str:
    if name not in METHODS:
        raise RecipeError(f"unknown sensitivity method {name!r}; known: {', '.join(METHODS)}")
    return name


def compute(name: str, ctx: Context) -> Sensitivity:
    return METHODS[check_method(name)][0](ctx)

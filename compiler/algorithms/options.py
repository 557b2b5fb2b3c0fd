"""Typed, validated options of each algorithm; invalid values raise RecipeError naming what is valid."""

from __future__ import annotations

import dataclasses

from qcompile.errors import RecipeError


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise RecipeError(message)


def _int_at_least(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _number_in(value, low: float, high: float, *, open_low: bool = False, open_high: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return (low < value if open_low else low <= value) and (value < high if open_high else value <= high)


@dataclasses.dataclass(frozen=True)
class RtnOptions:
    """Round to nearest. mse_clip (symmetric unconstrained scales only, others keep their range): shrink
    each group's range by the ratio in [0.5, 1] (grid points) that minimizes that group's weight squared
    error. Off by default: it helps MiniLM and hurts SmolLM2 (BENCHMARKS.md, issue 18)."""

    mse_clip: bool = False
    grid: int = 20
    full_range: bool = True  # signed integers: a negative extreme maps onto qmin (False: amax -> qmax)

    def __post_init__(self):
        _check(isinstance(self.mse_clip, bool), f"rtn mse_clip must be true or false, not {self.mse_clip!r}")
        _check(_int_at_least(self.grid, 1), f"rtn grid must be an integer >= 1, not {self.grid!r}")
        _check(
            isinstance(self.full_range, bool),
            f"rtn full_range must be true or false, not {self.full_range!r}",
        )


@dataclasses.dataclass(frozen=True)
class HqqOptions:
    """HQQ's proximal schedule: `iters` steps, l_p norm `lp_norm` (< 1 lets a few weights stay wrong),
    shrink strength `beta` multiplied by `kappa` each step."""

    iters: int = 20
    lp_norm: float = 0.7
    beta: float = 10.0
    kappa: float = 1.01
    # "group": each group keeps its own best offset by mean |error|; "reference": the HQQ paper's loop
    # (and onnxruntime's), one schedule for the whole weight, stopped when its mean |error| rises
    select: str = "group"

    def __post_init__(self):
        _check(_int_at_least(self.iters, 0), f"hqq iters must be an integer >= 0, not {self.iters!r}")
        _check(
            self.select in ("group", "reference"),
            f"hqq select must be 'group' or 'reference', not {self.select!r}",
        )
        _check(
            _number_in(self.lp_norm, 0.0, 1.0, open_low=True),
            f"hqq lp_norm must be in (0, 1], not {self.lp_norm!r}",
        )
        _check(
            _number_in(self.beta, 0.0, 1e6, open_low=True), f"hqq beta must be in (0, 1e6], not {self.beta!r}"
        )
        _check(_number_in(self.kappa, 1.0, 10.0), f"hqq kappa must be in [1, 10], not {self.kappa!r}")


@dataclasses.dataclass(frozen=True)
class GptqOptions:
    block_size: int = 128
    damp: float = 0.01
    act_order: bool = False
    static_groups: bool = False

    def __post_init__(self):
        _check(
            _int_at_least(self.block_size, 1),
            f"gptq block_size must be an integer >= 1, not {self.block_size!r}",
        )
        _check(
            _number_in(self.damp, 0.0, 1.0, open_low=True),
            f"gptq damp must be in (0, 1] (a fraction of mean diag(H)), not {self.damp!r}",
        )
        _check(
            isinstance(self.act_order, bool), f"gptq act_order must be true or false, not {self.act_order!r}"
        )
        _check(
            isinstance(self.static_groups, bool),
            f"gptq static_groups must be true or false, not {self.static_groups!r}",
        )


@dataclasses.dataclass(frozen=True)
class AwqOptions:
    grid: int = 20
    search_clip: bool = False
    clip_grid: int = 20
    max_shrink: float = 0.5

    def __post_init__(self):
        _check(_int_at_least(self.grid, 1), f"awq grid must be an integer >= 1, not {self.grid!r}")
        _check(
            _int_at_least(self.clip_grid, 1), f"awq clip_grid must be an integer >= 1, not {self.clip_grid!r}"
        )
        _check(
            _number_in(self.max_shrink, 0.0, 1.0, open_low=True, open_high=True),
            f"awq max_shrink must be in (0, 1), not {self.max_shrink!r}",
        )
        _check(
            isinstance(self.search_clip, bool),
            f"awq search_clip must be true or false, not {self.search_clip!r}",
        )


@dataclasses.dataclass(frozen=True)
class SmoothQuantOptions:
    """alpha: a fixed migration strength in [0, 1], or None (in a recipe file "search") to search
    `alphas` per layer."""

    alpha: float | None = 0.5
    alphas: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(21))

    def __post_init__(self):
        object.__setattr__(self, "alphas", tuple(self.alphas))
        if self.alpha == "search":
            object.__setattr__(self, "alpha", None)
        _check(
            self.alpha is None or _number_in(self.alpha, 0.0, 1.0),
            f"smoothquant alpha must be in [0, 1] or 'search' (None in Python), not {self.alpha!r}",
        )
        _check(
            len(self.alphas) > 0 and all(_number_in(a, 0.0, 1.0) for a in self.alphas),
            f"smoothquant alphas must be a non-empty list of values in [0, 1], not {self.alphas!r}",
        )


@dataclasses.dataclass(frozen=True)
class LorcOptions:
    rank: int = 8
    factor_dtype: str = "float16"

    def __post_init__(self):
        _check(_int_at_least(self.rank, 0), f"lorc rank must be an integer >= 0, not {self.rank!r}")
        _check(
            self.factor_dtype in ("float16", "int8"),
            f"unknown lorc factor_dtype {self.factor_dtype!r}; valid: float16, int8",
        )


@dataclasses.dataclass(frozen=True)
class LkdOptions:
    steps: int = 200
    lr: float = 1e-2
    tune: str = "both"

    def __post_init__(self):
        _check(_int_at_least(self.steps, 0), f"lkd steps must be an integer >= 0, not {self.steps!r}")
        _check(_number_in(self.lr, 0.0, 1e3, open_low=True), f"lkd lr must be in (0, 1000], not {self.lr!r}")
        _check(
            self.tune in ("scales", "weights", "both"),
            f"unknown lkd tune {self.tune!r}; valid: scales, weights, both",
        )


@dataclasses.dataclass(frozen=True)
class LlmFp4Options:
    """LLM-FP4's per-channel power-of-two activation offsets: no options (the clamp is the format's)."""


@dataclasses.dataclass(frozen=True)
class FpSearchOptions:
    """candidates: minifloat formats to try (default: those the plugins take at the spec's width)."""

    candidates: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "candidates", tuple(self.candidates))
        _check(
            all(isinstance(c, str) for c in self.candidates),
            f"fpsearch candidates must be format names, not {self.candidates!r}",
        )

"""Accuracy algorithms for one linear layer `y = x @ W.T` (W [N, K]), as numpy math; registry keyed by name.

Each entry has a frozen options dataclass and an `apply(w, spec, calib, options, base=None) -> LayerResult`.
"quantize" entries make a layer from the float weight; "refine" entries (lorc, lkd) improve a `base` result
(RTN when None). `needs` names the LayerCalibration fields the calibration pass must collect.
The math functions themselves (gptq, awq_scales, smooth_scales, search_alpha, lorc, lkd) are importable
directly.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from qcompile.algorithms.format_choice import SEARCHABLE, choose_minifloat
from qcompile.algorithms.layer import LayerCalibration, LayerResult
from qcompile.algorithms.options import (
    AwqOptions,
    FpSearchOptions,
    GptqOptions,
    HqqOptions,
    LkdOptions,
    LlmFp4Options,
    LorcOptions,
    RtnOptions,
    SmoothQuantOptions,
)
from qcompile.errors import RecipeError
from qcompile.quantizer import WeightSpec, quantize_weight


@dataclasses.dataclass(frozen=True)
class AlgorithmEntry:
    name: str
    options: type
    apply: Callable[..., LayerResult]
    stage: str  # "quantize" or "refine"
    needs: tuple[str, ...]  # LayerCalibration fields
    summary: str


def _rtn(w, spec: WeightSpec, calib: LayerCalibration, options: RtnOptions, base=None) -> LayerResult:
    from qcompile.quantizer import clip_searchable, mse_clipped_scales

    spec = spec if options.full_range else dataclasses.replace(spec, full_range=False)
    spec = choose_minifloat(w, spec, calib.hessian)
    if options.mse_clip and clip_searchable(spec):
        return LayerResult(quantize_weight(w, spec, scales=mse_clipped_scales(w, spec, options.grid)))
    return LayerResult(quantize_weight(w, spec))


def _hqq(w, spec: WeightSpec, calib, options: HqqOptions, base=None) -> LayerResult:
    from qcompile.algorithms.hqq import hqq

    if not (spec.offsets and spec.fmt.kind == "int" and spec.fmt.signed):
        result = _rtn(w, spec, calib, RtnOptions())  # no offset to fit (Conv, Gemm transA=1, minifloats)
        return dataclasses.replace(result, info={"hqq": {"applied": False, "fallback": "rtn"}})
    qw, info = hqq(
        w,
        spec,
        iters=options.iters,
        lp_norm=options.lp_norm,
        beta=options.beta,
        kappa=options.kappa,
        select=options.select,
    )
    return LayerResult(qw, info={"hqq": info})


def _gptq(w, spec, calib, options: GptqOptions, base=None) -> LayerResult:
    from qcompile.algorithms.gptq import gptq

    (hessian,) = calib.require("gptq", "hessian")
    spec = choose_minifloat(w, spec, hessian)
    qw, info = gptq(
        w,
        hessian,
        spec,
        block_size=options.block_size,
        damp=options.damp,
        act_order=options.act_order,
        static_groups=options.static_groups,
    )
    return LayerResult(qw, info={"gptq": info})


def _awq(w, spec, calib, options: AwqOptions, base=None) -> LayerResult:
    from qcompile.algorithms.awq import awq_scales

    absmean, sample = calib.require("awq", "x_absmean", "x_sample")
    s, qw, info = awq_scales(
        w,
        absmean,
        sample,
        spec,
        options.grid,
        options.search_clip,
        clip_grid=options.clip_grid,
        max_shrink=options.max_shrink,
    )
    return LayerResult(qw, input_scale=s, info={"awq": info})


def _smoothquant(w, spec, calib, options: SmoothQuantOptions, base=None) -> LayerResult:
    from qcompile.algorithms.smoothquant import search_alpha

    absmax, sample = calib.require("smoothquant", "x_absmax", "x_sample")
    alphas = options.alphas if options.alpha is None else (options.alpha,)
    _, s, qw, info = search_alpha(sample, w, calib.act_fmt, spec, alphas, x_absmax=absmax)
    return LayerResult(qw, input_scale=s, info={"smoothquant": info})


def _llmfp4(w, spec, calib, options: LlmFp4Options, base=None) -> LayerResult:
    from qcompile.llmfp4 import split_activation_scales

    (absmax,) = calib.require("llmfp4", "x_absmax")
    if calib.act_fmt is None:
        raise RecipeError(
            "llmfp4 splits activation scales: use a preset that quantizes activations (wfp4a8, w4a8, fp8)"
        )
    _, offsets = split_activation_scales(absmax, calib.act_fmt)
    s = np.exp2(offsets).astype(np.float32)  # x / s and W * s: exact, powers of two
    info = {"offset_max": int(offsets.max()), "channels_shifted": int((offsets > 0).sum())}
    return LayerResult(
        quantize_weight(np.asarray(w, np.float32) * s, spec), input_scale=s, info={"llmfp4": info}
    )


def _fpsearch(w, spec, calib, options: FpSearchOptions, base=None) -> LayerResult:
    from qcompile.llmfp4 import search_format

    (sample,) = calib.require("fpsearch", "x_sample")
    if spec.fmt.kind != "float" or spec.granularity != "channel":
        raise RecipeError(
            f"fpsearch searches per-channel minifloat weights (w6a16, wfp8a16), "
            f"not {spec.fmt.name} per {spec.granularity}"
        )
    candidates = options.candidates or SEARCHABLE.get(spec.fmt.bits, (spec.fmt.name,))
    found = search_format(w, sample, spec.fmt.bits, candidates=candidates, act_fmt=calib.act_fmt)
    scales = found.scales(w)
    if spec.scale_dtype == "float16":
        scales = scales.astype(np.float16).astype(np.float32)
    qw = quantize_weight(w, dataclasses.replace(spec, fmt=found.fmt), scales=scales)
    info = {
        "format": found.fmt.name,
        "mse": found.mse,
        "default_mse": found.default_mse,
        "mean_clip": float(found.clip.mean()),
    }
    return LayerResult(qw, info={"fpsearch": info})


def _scaled(w, calib: LayerCalibration, base: LayerResult | None):
    """The weight and sample the base result quantized: W * s and x / s when it carries an input scale."""
    w = np.asarray(w, np.float32)
    sample = calib.x_sample
    if base is not None and base.input_scale is not None:
        w = w * base.input_scale
        sample = None if sample is None else sample / base.input_scale
    return w, sample


def _lorc(w, spec, calib, options: LorcOptions, base: LayerResult | None = None) -> LayerResult:
    from qcompile.algorithms.lorc import lorc

    base = base or _rtn(w, spec, calib, RtnOptions())
    if base.low_rank is not None:
        raise RecipeError("lorc is already applied to this layer")
    w_eff, sample = _scaled(w, calib, base)
    a, b, info = lorc(w_eff, base.qw, options.rank, options.factor_dtype, x_sample=sample)
    return dataclasses.replace(base, low_rank=(a, b), info={**base.info, "lorc": info})


def _lkd(w, spec, calib, options: LkdOptions, base: LayerResult | None = None) -> LayerResult:
    from qcompile.algorithms.lkd import lkd

    base = base or _rtn(w, spec, calib, RtnOptions())
    if base.low_rank is not None:
        raise RecipeError("run lkd before lorc: LoRC's factors are fitted to the weight LKD would change")
    calib.require("lkd", "x_sample")
    w_eff, sample = _scaled(w, calib, base)
    qw, info = lkd(w_eff, base.qw, sample, options.steps, options.lr, tune=options.tune)
    return dataclasses.replace(base, qw=qw, info={**base.info, "lkd": info})


ALGORITHMS: dict[str, AlgorithmEntry] = {
    e.name: e
    for e in (
        AlgorithmEntry(
            "rtn",
            RtnOptions,
            _rtn,
            "quantize",
            (),
            "round to nearest over the full code range (optional per-group MSE clip search, mse_clip)",
        ),
        AlgorithmEntry(
            "hqq",
            HqqOptions,
            _hqq,
            "quantize",
            (),
            "data-free half-quadratic fit of each group's float offset (emitted with --offsets' side branch)",
        ),
        AlgorithmEntry(
            "gptq",
            GptqOptions,
            _gptq,
            "quantize",
            ("hessian",),
            "column-wise quantization with Hessian-based error feedback",
        ),
        AlgorithmEntry(
            "awq",
            AwqOptions,
            _awq,
            "quantize",
            ("x_absmean", "x_sample"),
            "activation-aware per-input-channel weight scaling, alpha searched (optional clip search)",
        ),
        AlgorithmEntry(
            "smoothquant",
            SmoothQuantOptions,
            _smoothquant,
            "quantize",
            ("x_absmax", "x_sample"),
            "migrate activation outliers into the weights (alpha fixed, or searched per layer)",
        ),
        AlgorithmEntry(
            "llmfp4",
            LlmFp4Options,
            _llmfp4,
            "quantize",
            ("x_absmax",),
            "LLM-FP4: per-channel power-of-two activation offsets folded into the weights",
        ),
        AlgorithmEntry(
            "fpsearch",
            FpSearchOptions,
            _fpsearch,
            "quantize",
            ("x_sample",),
            "LLM-FP4 search: minifloat format (E3M2/E2M3 at 6 bits) and per-channel clip per layer",
        ),
        AlgorithmEntry(
            "lorc", LorcOptions, _lorc, "refine", (), "low-rank (SVD) compensation of the weight error"
        ),
        AlgorithmEntry(
            "lkd",
            LkdOptions,
            _lkd,
            "refine",
            ("x_sample",),
            "layer-wise distillation of scales and rounding (needs PyTorch)",
        ),
    )
}


def get_algorithm(name: str) -> AlgorithmEntry:
    if name not in ALGORITHMS:
        raise RecipeError(f"unknown algorithm {name!r}; registered: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


def make_options(name: str, values: dict | None = None):
    """The options dataclass of `name` from a plain dict (recipe files); unknown keys name the valid ones."""
    cls = get_algorithm(name).options
    values = dict(values or {})
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise RecipeError(f"unknown {name} options {unknown}; valid: {', '.join(known) or 'none'}")
    return cls(**values)


__all__ = ["ALGORITHMS", "AlgorithmEntry", "LayerCalibration", "LayerResult", "get_algorithm", "make_options"]

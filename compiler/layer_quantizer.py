"""Calibrate and quantize the planned layers: statistics streamed from onnxruntime in bounded
chunks, then the recipe's algorithm on each group of layers that share an input tensor.

A group (same activation, same choice) is quantized as one weight `[sum N, K]`, so a
per-input-channel scale (AWQ, SmoothQuant) is one vector that can be folded into the producer
of the activation, and LoRC's input factor is shared; results are split back per layer.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from pathlib import Path
from typing import Callable

import numpy as np
import onnx_ir as ir

from qcompile import calibration as calib
from qcompile.algorithms import ALGORITHMS, LayerCalibration, LayerResult, make_options
from qcompile.algorithms.hessian import HessianAccumulator, TokenSample
from qcompile.algorithms.layer import output_mse
from qcompile.algorithms.options import LkdOptions, LorcOptions
from qcompile.passes.add_low_rank import takes_side_branch
from qcompile.quantizer import QuantizedWeight, quantize_weight
from qcompile.recipe import Recipe
from qcompile.threads import map_chunks

logger = logging.getLogger(__name__)
# Statistics held at once while observing (GPTQ Hessians are K x K float64 each).
STATS_BUDGET_BYTES = 1_500_000_000
TOKEN_SAMPLE = 512
ROW_CHUNK = 1 << 20  # RTN and HQQ quantize a weight in row chunks of about this many elements
SPILL_MIN_BYTES = 1 << 20  # smaller code arrays stay in memory
_spilled = itertools.count()
MASK_RANGE = 1e30  # an additive mask built from float32's minimum (DESIGN.md): never quantized


@dataclasses.dataclass
class Group:
    activation: str
    k: int
    planned: list  # planning.Planned, all with the same LayerChoice
    needs: frozenset[str]

    @property
    def choice(self):
        return self.planned[0].choice


@dataclasses.dataclass
class QuantizedGroup:
    group: Group
    results: list[LayerResult]  # one per planned layer, in order
    act_scale: float | None
    measured: list[dict] = dataclasses.field(default_factory=list)  # per layer: report fields (_measure)
    refused: str = ""  # why the group was left unquantized after calibration


def _needs(recipe: Recipe, choice) -> frozenset[str]:
    needs = set(ALGORITHMS[recipe.algorithm].needs)
    if recipe.lkd_steps:
        needs |= set(ALGORITHMS["lkd"].needs)
    if ALGORITHMS[recipe.algorithm].needs or recipe.lkd_steps or recipe.lorc_rank:
        needs.add("x_sample")  # the report's per-layer output error before and after
    if choice.activations is not None:
        needs.add("act")
    return frozenset(needs)


def make_groups(planned: list, recipe: Recipe) -> list[Group]:
    groups: dict[tuple, Group] = {}
    for p in planned:
        key = (p.layer.activation.name, p.choice)
        if key not in groups:
            groups[key] = Group(p.layer.activation.name, p.layer.k, [], _needs(recipe, p.choice))
        groups[key].planned.append(p)
    return list(groups.values())


def chunk_by_cost(items: list, cost: Callable, budget: int) -> list[list]:
    """Consecutive items in chunks whose summed cost (bytes held at once) stays within budget."""
    chunks, current, used = [], [], 0
    for item in items:
        c = cost(item)
        if current and used + c > budget:
            chunks.append(current)
            current, used = [], 0
        current.append(item)
        used += c
    return chunks + [current] if current else chunks


def _chunks(groups: list[Group]) -> list[list[Group]]:
    """Groups to observe together, so that the statistics held at once stay within budget."""
    return chunk_by_cost(
        groups,
        lambda g: 8 * g.k * g.k if "hessian" in g.needs else 4 * g.k * (TOKEN_SAMPLE + 4),
        STATS_BUDGET_BYTES,
    )


def quantize_groups(
    groups: list[Group],
    run: Callable,
    samples: list,
    recipe: Recipe,
    progress: Callable | None,
    spill: Path | None = None,
) -> list[QuantizedGroup]:
    """`run(sample, names)` returns the named tensors for one calibration sample. `spill`: a folder
    where each layer's codes go once quantized, read back memory-mapped (a large model's codes are
    then never all resident)."""
    options = make_options(recipe.algorithm, recipe.algorithm_options)
    done, total, out = 0, sum(len(g.planned) for g in groups), []
    for chunk in _chunks(groups):
        observed = sorted({g.activation for g in chunk if g.needs})
        accumulators: dict[str, list] = {}
        for g in chunk:
            if "hessian" in g.needs:
                accumulators.setdefault(g.activation + "/hessian", HessianAccumulator(g.k))
            if "x_sample" in g.needs:
                accumulators.setdefault(g.activation + "/sample", TokenSample(TOKEN_SAMPLE))
        consumers = {
            name: _feeder([a for key, a in accumulators.items() if key.startswith(name + "/")])
            for name in observed
        }
        if observed:
            bar = (lambda d, t: progress("calibrate", d, t)) if progress else None
            stats = calib.observe(run, observed, samples, consumers=consumers, progress=bar)
        else:
            stats = {}
        for g in chunk:
            out.append(_quantize_group(g, stats.get(g.activation), accumulators, recipe, options))
            if spill is not None:
                for r in out[-1].results:
                    r.qw.codes = _to_disk(r.qw.codes, spill)
            done += len(g.planned)
            if progress:
                progress("quantize", done, total)
        accumulators.clear()
    return out


def _feeder(accumulators: list) -> Callable[[np.ndarray], None]:
    def feed(x: np.ndarray) -> None:
        for acc in accumulators:
            acc.add(x)

    return feed


def _layer_calibration(g: Group, stats, accumulators) -> LayerCalibration:
    hessian = accumulators.get(g.activation + "/hessian")
    sample = accumulators.get(g.activation + "/sample")
    act = g.choice.activations
    return LayerCalibration(
        hessian=hessian.hessian() if hessian is not None else None,
        x_absmean=stats.channel_absmean if stats is not None else None,
        x_absmax=stats.channel_amax if stats is not None else None,
        x_sample=sample.rows() if sample is not None else None,
        act_fmt=act.fmt if act is not None else None,
    )


def _quantize_group(g: Group, stats, accumulators, recipe: Recipe, options) -> QuantizedGroup:
    spec, act = g.choice.weights, g.choice.activations
    act_amax = None
    if act is not None:
        act_amax = stats.percentile(act.percentile) if act.method == "percentile" else stats.amax
        if not np.isfinite(act_amax) or act_amax >= MASK_RANGE:
            reason = f"activation range {act_amax:.3g} (an additive mask?) cannot be quantized"
            return QuantizedGroup(g, [], None, refused=reason)
    notes = {}
    if spec.offsets and not all(takes_side_branch(p.layer) for p in g.planned):
        spec = dataclasses.replace(spec, offsets=False)
        notes["offsets"] = "not applied: float offsets need a MatMul or Gemm(transA=0) side branch"
    cal = _layer_calibration(g, stats, accumulators)
    weights = [p.layer.weight_nk() for p in g.planned]
    for p in g.planned:
        _release(p.layer.source.const_value)
    if _row_wise(recipe, spec):  # each weight alone gives the same codes as their concatenation
        results = [_apply(w, spec, cal, recipe.algorithm, options) for w in weights]
    else:
        results = _quantize_together(weights, spec, cal, recipe, options, g)
    input_scale = results[0].input_scale
    if act is not None and input_scale is not None:
        act_amax = float(np.max(stats.channel_amax / input_scale))  # the range of x / s
    act_scale = None if act is None else max(act_amax, 1e-12) / act.fmt.max
    measured = [_measure(p, w, r, cal, recipe, notes) for p, w, r in zip(g.planned, weights, results)]
    return QuantizedGroup(g, results, act_scale, measured)


def _rows_independent(algorithm: str, spec) -> bool:
    """Whether the algorithm quantizes every output row on its own (RTN or HQQ with per-row scales)."""
    return algorithm in ("rtn", "hqq") and spec.granularity != "tensor"


def _row_wise(recipe: Recipe, spec) -> bool:
    """Whether the whole recipe treats rows independently (no LKD or LoRC on the stacked weight)."""
    return _rows_independent(recipe.algorithm, spec) and not recipe.lkd_steps and not recipe.lorc_rank


def _quantize_together(weights, spec, cal, recipe: Recipe, options, g: Group) -> list[LayerResult]:
    """The layers that share an input as one matrix (their rows stacked), split back per layer."""
    w = weights[0] if len(weights) == 1 else np.concatenate(weights)
    result = _apply(w, spec, cal, recipe.algorithm, options)
    if recipe.lkd_steps:
        result = ALGORITHMS["lkd"].apply(w, spec, cal, LkdOptions(steps=recipe.lkd_steps), base=result)
    if recipe.lorc_rank and all(takes_side_branch(p.layer) for p in g.planned):
        result = ALGORITHMS["lorc"].apply(w, spec, cal, LorcOptions(rank=recipe.lorc_rank), base=result)
    rows = np.cumsum([0] + [x.shape[0] for x in weights])
    return [_split(result, rows[i], rows[i + 1]) for i in range(len(weights))]


def _apply(w: np.ndarray, spec, cal: LayerCalibration, algorithm: str, options) -> LayerResult:
    """The algorithm on `w`; RTN and HQQ on a large weight by row chunks (rows are independent unless one
    scale spans the tensor), so its temporaries stay small."""
    apply = ALGORITHMS[algorithm].apply
    if not _rows_independent(algorithm, spec) or w.size <= ROW_CHUNK:
        return apply(w, spec, cal, options)
    rows = max(1, ROW_CHUNK // w.shape[1])
    parts = map_chunks(lambda r: apply(w[r : r + rows], spec, cal, options).qw, range(0, w.shape[0], rows))

    def cat(field):
        values = [getattr(p, field) for p in parts]
        return None if values[0] is None else np.concatenate(values)

    return LayerResult(
        QuantizedWeight(
            parts[0].spec,
            cat("codes"),
            cat("scales"),
            cat("zero_points"),
            cat("channel_scale"),
            cat("group_exp"),
            cat("offsets"),
        )
    )


def _to_disk(codes: np.ndarray, folder: Path) -> np.ndarray:
    if codes.nbytes < SPILL_MIN_BYTES:
        return codes
    path = folder / f"codes-{next(_spilled)}.npy"
    np.save(path, codes)
    return np.load(path, mmap_mode="r")


def _split(result: LayerResult, r0: int, r1: int) -> LayerResult:
    low_rank = None if result.low_rank is None else (result.low_rank[0], result.low_rank[1][:, r0:r1])
    return LayerResult(result.qw.rows(r0, r1), result.input_scale, low_rank, result.info)


def _measure(
    p, w: np.ndarray, result: LayerResult, cal: LayerCalibration, recipe: Recipe, notes: dict
) -> dict:
    """What the layer's report entry says of its quantization (layer_reports.py builds the entry)."""
    spec = result.qw.spec  # an algorithm may pick the format (fpsearch)
    details = dict(notes)
    details["algorithms"] = (
        [recipe.algorithm] + (["lkd"] if recipe.lkd_steps else []) + (["lorc"] if recipe.lorc_rank else [])
    )
    for name, info in result.info.items():
        details[name] = _summary(info)
    bits = spec.bits_per_weight(p.layer.n, p.layer.k)
    if result.low_rank is not None:
        a, b = result.low_rank
        lorc_bits = 16 * a.shape[1] * (a.shape[0] + b.shape[1]) / (p.layer.n * p.layer.k)
        bits += lorc_bits
        details["lorc_bits_per_weight"] = lorc_bits
    if spec.scale_dtype == "float16":
        details.update(_float16_scales(p.layer.name, result.qw.scales))
    if result.input_scale is not None:
        details["input_scale_range"] = [float(result.input_scale.min()), float(result.input_scale.max())]
    if cal.x_sample is not None:
        rtn = quantize_weight(w, p.choice.weights).dequantize()
        details["output_mse_rtn"] = output_mse(cal.x_sample, w, rtn)
        plain = result.low_rank is None and result.input_scale is None  # no float64 copy needed
        approx = result.qw.dequantize() if plain else result.effective_weight()
        details["output_mse"] = output_mse(cal.x_sample, w, approx)
    if not spec.offsets and (
        spec.scale_constraint != "none" or spec.fmt.kind == "float" and spec.granularity == "group"
    ):
        from qcompile.fold import constraint_costs

        details["scale_constraint_sqnr_db"] = {k: v["sqnr_db"] for k, v in constraint_costs(w, spec).items()}
    return {
        "weight_format": spec.fmt.name,
        "granularity": spec.granularity + (f" {spec.group_size}" if spec.granularity == "group" else ""),
        "bits_per_weight": bits,
        "weight_sqnr_db": weight_sqnr_db(w, result),
        "details": details,
    }


def _float16_scales(name: str, scales: np.ndarray) -> dict:
    """Float16 scales of tiny weight groups fall below float16's normal range: say so, never silently."""
    subnormal = int(np.count_nonzero(scales < 2.0**-14))
    if not subnormal:
        return {}
    floor = int(np.count_nonzero(scales <= 2.0**-24))
    text = (
        f"{subnormal} of {scales.size} scale groups below float16's normal range (2^-14): their "
        f"weights keep fewer significant bits; {floor} at float16's smallest value (2^-24) may decode as 0"
    )
    logger.warning("%s: %s", name, text)
    return {"float16_scales": text}


def weight_sqnr_db(w: np.ndarray, result: LayerResult, chunk: int = 1 << 20) -> float:
    """sqnr_db(w, result.effective_weight()) by row chunks of about `chunk` elements, without a
    full-size float64 copy: a plain quantized weight is compared in float32 (each chunk's sums
    in float32 BLAS, about 1e-6 relative, far below the 0.1 dB the report shows)."""
    rows = max(1, chunk // w.shape[1])

    def sums(r0: int) -> tuple[float, float]:
        part = _split(result, r0, r0 + rows)
        plain = part.low_rank is None and part.input_scale is None
        ref = w[r0 : r0 + rows]
        diff = ref - (part.qw.dequantize() if plain else part.effective_weight())
        return float(np.vdot(ref, ref)), float(np.vdot(diff, diff))

    parts = map_chunks(sums, range(0, w.shape[0], rows))
    sig, err = sum(p[0] for p in parts), sum(p[1] for p in parts)
    return float("inf") if err == 0 else 10 * np.log10(max(sig, 1e-300) / err)


def _summary(info) -> dict:
    """The scalar fields of an algorithm's info (alpha, errors before and after, ...)."""
    fields = dataclasses.asdict(info) if dataclasses.is_dataclass(info) else dict(info)
    return {k: v for k, v in fields.items() if isinstance(v, (int, float, str, bool)) or v is None}


def _release(tensor) -> None:
    """Unmap an external-data weight once read, so resident memory holds one layer at a time."""
    if isinstance(tensor, ir.ExternalTensor):
        tensor.release()

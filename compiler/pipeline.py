"""compile(): load -> plan -> calibrate and quantize (block by block) -> emit -> check -> save
-> verify (block by block) -> report. Each stage is one function below; `_Stages.run` times it,
and its checker names the stage when what it produced is wrong."""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import onnx_ir as ir

from qcompile import calibration as calib
from qcompile import layer_quantizer, planning, report_html
from qcompile.algorithms import ALGORITHMS
from qcompile.block_calibration import quantize_blockwise
from qcompile.blockwise import BlockModel
from qcompile.errors import CheckFailed, ModelError, RecipeError
from qcompile.layer_reports import layer_reports
from qcompile.model_io import (
    MIN_OPSET,  # noqa: F401  (re-exported)
    initializer_bytes,
    load_model,
    model_files,
    repoint_external_data,
    save_model,
)
from qcompile.ort_runner import user_model_errors
from qcompile.outputs import OutputPaths, Staging, check_path, disk_errors, plan_outputs
from qcompile.passes.add_group_offsets import AddGroupOffsets
from qcompile.passes.add_low_rank import AddLowRankBranches
from qcompile.passes.check_qdq import check_qdq
from qcompile.passes.insert_qdq import InsertQDQ, QuantizedLayer
from qcompile.passes.scale_input_channels import ScaleInputChannels
from qcompile.passes.trt_preflight import check_tensorrt_rules
from qcompile.planning import fit_group_size, unsupported_reason  # noqa: F401  (re-exported)
from qcompile.recipe import Recipe
from qcompile.recipe_file import VERIFY_SECONDS
from qcompile.report import Report
from qcompile.report_html import html_beside
from qcompile.stream_save import save_streaming

logger = logging.getLogger(__name__)
STREAM_BYTES = 256 << 20  # a quantized model larger than this is saved with external data, tensor by tensor

Progress = Callable[[str, int, int], None]


@dataclasses.dataclass
class Artifacts:
    quantized_model: Path | None
    report: Report
    report_path: Path | None = None
    recipe_path: Path | None = None
    report_html: Path | None = None
    files: list[Path] = dataclasses.field(default_factory=list)
    model: ir.Model | None = None  # the quantized model in memory (weights may point at the saved file)


@dataclasses.dataclass
class _Loaded:
    model: ir.Model
    source: Path | None
    out: Path | None
    size_before: int
    paths: OutputPaths | None = None  # every output, checked before any work
    staged: Path | None = None  # the saved model's staged copy, until everything succeeded


@dataclasses.dataclass
class _Data:
    calib_set: list
    eval_set: list
    eval_source: str
    notes: list = dataclasses.field(default_factory=list)
    guessed: bool = False  # random inputs whose unknown dimensions were guessed
    skipped: str = ""  # why verification was skipped


class _Stages:
    def __init__(self):
        self.timings: dict[str, float] = {}
        self.start = time.perf_counter()

    def run(self, name: str, fn: Callable, *args, check: Callable | None = None, **kwargs):
        """`fn(*args, **kwargs)`, timed; `check(result)` returns the problems that must not be there."""
        t0 = time.perf_counter()
        logger.debug("stage %s", name)
        result = fn(*args, **kwargs)
        problems = check(result) if check is not None else []
        if problems:
            raise CheckFailed(f"stage {name!r}: " + "; ".join(problems[:5]))
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
        return result


def input_specs(model: ir.Model) -> list[calib.InputSpec]:
    specs = []
    initializers = set(model.graph.initializers)
    for value in model.graph.inputs:
        if value.name in initializers:
            continue
        dtype = np.dtype(value.dtype.numpy()) if value.dtype is not None else np.dtype(np.float32)
        dims = (
            tuple(d if isinstance(d, int) else None for d in value.shape) if value.shape is not None else None
        )
        specs.append(calib.InputSpec(value.name, dtype, dims))
    return specs


def _reference_path(model: ir.Model, path: Path | None, workdir: Path) -> Path:
    if path is not None:
        return path
    out = workdir / "original.onnx"
    ir.save(model, out)
    return out


def compile(
    model,
    recipe: Recipe | str = "w8a8",
    calibration=None,
    *,
    output: str | Path | None = None,
    report_path: str | Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
    verify: bool = True,
    sequential: bool = False,
    verify_timeout: float | None = VERIFY_SECONDS,
    auto=None,
) -> Artifacts:
    """Quantize `model` (a path or an onnx.ModelProto) with `recipe` (a Recipe or a preset name).

    `calibration` is a .npz path, a folder of them, a dict of arrays with a leading sample axis,
    "random" (explicitly), or None (only for weight-only recipes). `sequential`: calibrate each
    block on the outputs of the blocks before it with their weights already quantized.
    `verify_timeout`: seconds after which verification stops and the report says so (None or 0: no limit).
    `auto`: a mixed.auto.AutoRun, whose plan (searched in the "mixed precision" stage) replaces `recipe`'s
    precision layer by layer (`--precision auto`).
    """
    recipe = Recipe.preset(recipe) if isinstance(recipe, str) else recipe
    _check_timeout(verify_timeout)
    stages = _Stages()
    with disk_errors(), tempfile.TemporaryDirectory(prefix="qcompile-") as tmp, Staging() as staging:
        work = Path(tmp)
        job = stages.run("load", _load, model, output, report_path, calibration, force)
        if auto is not None:
            recipe = stages.run(
                "mixed precision", auto.decide, model, job.model, calibration, recipe, progress
            )
        planned, kept = stages.run("plan", planning.plan, job.model, recipe, check=_check_plan)
        groups = layer_quantizer.make_groups(planned, recipe)
        with user_model_errors("the model on its calibration inputs"):
            folder = job.source.parent if job.source is not None else None
            data = stages.run("data", _data, job.model, calibration, groups, recipe, progress, folder)
            ref = stages.run("blocks", _blocks, job, groups, verify, work)
            quantized = stages.run(
                "calibrate+quantize",
                quantize_blockwise,
                ref,
                groups,
                data.calib_set,
                recipe,
                folder=work,
                sequential=sequential,
                progress=progress,
                spill=job.size_before > STREAM_BYTES,
                check=lambda q: _check_quantized(q, planned),
            )
        emitted = stages.run(
            "emit",
            _emit,
            job.model,
            quantized,
            recipe.target_arch,
            check=lambda e: check_qdq(job.model, e[0]),
        )
        plugins = bool(emitted[1])
        layers = layer_reports(planned, quantized, emitted[2], auto.plan if auto is not None else None)
        del quantized, emitted  # the codes now live in the model's tensors only (released as they are saved)
        violations = stages.run("check", check_tensorrt_rules, job.model)
        if job.paths is not None:
            job.staged = stages.run("save", _save, job.model, job.paths.model, staging)[0]
        accuracy, blocks = (
            stages.run("verify", _verify, ref, job, data, plugins, work, progress, verify_timeout)
            if verify
            else ([], [])
        )
        report = stages.run(
            "report",
            _report,
            job,
            data,
            recipe,
            layers + kept,
            accuracy,
            blocks,
            ref,
            violations,
            plugins,
        )
        if auto is not None:
            auto.annotate(report)
        report.timings = {**stages.timings, "total": time.perf_counter() - stages.start}
        artifacts = Artifacts(job.out, report, model=job.model)
        return _write_outputs(artifacts, recipe, job, report_path, staging, auto)


def _check_timeout(seconds) -> None:
    if seconds is not None and (
        isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < float("inf")
    ):
        raise RecipeError(f"verify_timeout must be a number of seconds >= 0, not {seconds!r}")


def _load(model, output, report_path, calibration, force: bool) -> _Loaded:
    """The model (opset upgraded) and every output path, refused before any work when unsafe (the
    model, its external data and the calibration files are inputs no output may replace)."""
    ir_model, source = load_model(model)
    out = Path(output) if output is not None else None
    inputs = model_files(source) if source is not None else []
    if isinstance(calibration, (str, Path)) and str(calibration) != calib.RANDOM:
        inputs += calib.calibration_files(calibration)
    paths = plan_outputs(out, report=report_path, inputs=inputs, force=force) if out is not None else None
    if out is None and report_path is not None:
        check_path(report_path, inputs, force)
        check_path(html_beside(report_path), inputs, force)
    return _Loaded(ir_model, source, out, initializer_bytes(ir_model), paths)


def _data(model: ir.Model, calibration, groups, recipe: Recipe, progress=None, folder=None) -> _Data:
    fits = ALGORITHMS[recipe.algorithm].needs
    needs_data = any("act" in g.needs for g in groups) or bool(fits) or bool(recipe.lkd_steps)
    samples, eval_source, notes, guessed = _samples(calibration, model, needs_data, fits, progress, folder)
    calib_set, eval_set = calib.split_holdout(samples, recipe.holdout)
    if not eval_set:
        eval_set = calib_set
        eval_source = (
            eval_source.replace("held-back ", "")
            + " (the calibration samples themselves: too few to hold any back)"
        )
    return _Data(calib_set, eval_set, eval_source, notes, guessed)


def _blocks(job: _Loaded, groups, verify: bool, work: Path) -> BlockModel | None:
    """The original model's blocks, when anything runs it (calibration or verification)."""
    if not verify and not any(g.needs for g in groups):
        return None
    ref = BlockModel(_reference_path(job.model, job.source, work))
    logger.info(
        "blocks: %s",
        f"one ({ref.blocks.reason})"
        if ref.blocks.reason
        else f"{len(ref.blocks.blocks)}, found from the residual stream",
    )
    return ref


def _save(model: ir.Model, out: Path, staging: Staging) -> list[Path]:
    """The model staged (committed with the sidecars once everything succeeded)."""
    if initializer_bytes(model) > STREAM_BYTES:
        return save_streaming(model, out, staging=staging)
    return save_model(model, out, staging=staging)


def _check_plan(result) -> list[str]:
    planned, kept = result
    if not planned:
        raise ModelError("no layer left to quantize: " + "; ".join(f"{r.name}: {r.reason}" for r in kept[:3]))
    return [f"{p.layer.name}: planned without a weight format" for p in planned if p.choice.weights is None]


def _check_quantized(quantized, planned) -> list[str]:
    done = {p.layer.name for qg in quantized for p in qg.group.planned if qg.results or qg.refused}
    return [f"{p.layer.name}: neither quantized nor refused" for p in planned if p.layer.name not in done]


def _report(
    job: _Loaded, data: _Data, recipe: Recipe, layers, accuracy, blocks, ref, violations, plugins: bool
) -> Report:
    report = Report(
        str(job.source or "<in-memory model>"),
        recipe.to_dict(),
        layers,
        job.size_before,
        initializer_bytes(job.model),
        accuracy,
        len(data.eval_set) if accuracy else 0,
        data.eval_source,
        blocks=blocks,
    )
    report.notes += data.notes
    if ref is not None:
        report.notes.append(
            f"one block: {ref.blocks.reason}"
            if ref.blocks.reason
            else f"{len(ref.blocks.blocks)} blocks found from the residual stream; "
            "calibrated and verified block by block"
        )
    if plugins:
        report.notes.append("plugin GEMMs were measured on their standard-ONNX lowering (same packed bytes)")
    if data.skipped:
        report.notes.append(data.skipped)
    report.notes += [f"TensorRT pre-flight: {v}" for v in violations] or [
        "TensorRT pre-flight: no rule broken"
    ]
    return report


def _write_outputs(
    artifacts: Artifacts, recipe: Recipe, job: _Loaded, report_path, staging: Staging, auto
) -> Artifacts:
    """Everything succeeded: stage the recipe, the mixed-precision plan and the report (if asked for),
    move all into place."""
    paths = job.paths
    if paths is not None:
        artifacts.recipe_path = paths.recipe
        staging.temp_for(paths.recipe).write_text(json.dumps(recipe.to_dict(), indent=2) + "\n")
        if auto is not None:
            staging.temp_for(paths.plan).write_text(auto.plan.to_json())
    if report_path is not None:
        artifacts.report_path = paths.report_json if paths is not None else Path(report_path)
        staging.temp_for(artifacts.report_path).write_text(
            json.dumps(artifacts.report.to_dict(), indent=2) + "\n"
        )
        artifacts.report_html = paths.report_html if paths is not None else html_beside(report_path)
        mixed = {"plan": auto.plan, "curve": auto.curve} if auto is not None else {}
        staging.temp_for(artifacts.report_html).write_text(report_html.render(artifacts.report, **mixed))
    artifacts.files = staging.commit()
    if job.staged is not None:
        repoint_external_data(artifacts.model, job.staged.parent, paths.model.parent)
    return artifacts


def _samples(
    calibration, model: ir.Model, needs_data: bool, fits: tuple[str, ...], progress=None, folder=None
):
    """(samples, evaluation source, report notes, whether random input shapes had to be guessed): the
    user's data, random inputs, or generated ones (as many as an algorithm fitted to `fits` wants)."""
    from qcompile.calibration_sources import prepare_samples
    from qcompile.input_shapes import random_specs

    specs, guessed = input_specs(model), False
    if calibration is None or (isinstance(calibration, str) and calibration == calib.RANDOM):
        specs, guessed = random_specs(model, specs)
    return (*prepare_samples(calibration, model, specs, needs_data, progress, fits, folder), guessed)


def _layers(qg) -> list[QuantizedLayer]:
    act_fmt = qg.group.choice.activations.fmt if qg.group.choice.activations else None
    return [
        QuantizedLayer(p.layer, r.qw, act_fmt, qg.act_scale) for p, r in zip(qg.group.planned, qg.results)
    ]


def _emit(
    model: ir.Model, quantized, target_arch: str = "any"
) -> tuple[list[QuantizedLayer], list[tuple[QuantizedLayer, str]], dict]:
    """Input-channel scales, LoRC and offset branches, then Q/DQ and plugin nodes (packed for
    target_arch); returns (Q/DQ layers, plugin layers, layer name -> emission details for the report)."""
    details: dict[str, dict] = {}
    scaled = [
        (qg.group.planned[0].layer.activation, [p.layer for p in qg.group.planned], qg.results[0].input_scale)
        for qg in quantized
        if qg.results and qg.results[0].input_scale is not None
    ]
    if scaled:
        scaling = ScaleInputChannels(scaled)
        scaling(model)
        for applied in scaling.applied:
            for name in applied.layers:
                details.setdefault(name, {})["input_scale"] = (
                    f"folded into {applied.node}"
                    if applied.how == "folded"
                    else f"explicit Mul {applied.node}"
                )
    low_rank = [
        (p.layer, *r.low_rank)
        for qg in quantized
        for p, r in zip(qg.group.planned, qg.results)
        if r.low_rank is not None
    ]
    if low_rank:
        AddLowRankBranches(low_rank)(model)
    offsets = [
        (p.layer, r.qw.offsets)
        for qg in quantized
        for p, r in zip(qg.group.planned, qg.results)
        if r.qw.offsets is not None
    ]
    if offsets:
        AddGroupOffsets(offsets)(model)
    qdq = [ql for qg in quantized if qg.group.choice.emit == "qdq" for ql in _layers(qg)]
    InsertQDQ(qdq)(model)
    plugins = [
        (ql, qg.group.choice.plugin)
        for qg in quantized
        if qg.group.choice.emit == "plugin"
        for ql in _layers(qg)
    ]
    logger.info("emit: %d layers as Q/DQ, %d as plugin nodes", len(qdq), len(plugins))
    if plugins:
        from qcompile.passes.emit_plugins import EmitPluginGemms

        emitter = EmitPluginGemms(plugins, target_arch)
        emitter(model)
        for name, why in emitter.not_sm90.items():
            details.setdefault(name, {})["layout"] = why
    return qdq, plugins, details


def _verify(ref: BlockModel, job: _Loaded, data: _Data, has_plugins: bool, work: Path, progress, seconds):
    """Original and quantized, block by block. Saving with external data repoints the in-memory tensors
    at the written files, so a saved model is read back from disk rather than reused."""
    from qcompile.block_verify import VerifyTimeout, verify_blockwise

    logger.info(
        "verify: original vs quantized on %d samples with onnxruntime, block by block", len(data.eval_set)
    )
    path = job.staged
    if has_plugins or path is None:
        from qcompile.passes.lower_plugins import LowerPluginNodes

        model = ir.load(job.staged) if job.staged is not None else job.model
        if has_plugins:
            LowerPluginNodes()(model)
        path = work / "quantized.onnx"
        save_model(model, path, check=False)
    (work / "verify").mkdir()
    try:
        return verify_blockwise(
            ref, path, data.eval_set, folder=work / "verify", progress=progress, seconds=seconds
        )
    except VerifyTimeout:
        data.skipped = (
            f"verification stopped after {seconds:g} s (--verify-timeout): "
            "the report has no accuracy figures for this model"
        )
        logger.warning("%s", data.skipped)
        return [], []
    except ModelError as exc:  # onnxruntime failed on the original model
        if not data.guessed:
            raise
        data.skipped = (
            f"verification skipped: the model's input shapes are not all known and random inputs "
            f"of guessed shapes failed ({str(exc)[:120]}); pass --calib with real inputs"
        )
        logger.warning("%s", data.skipped)
        return [], []

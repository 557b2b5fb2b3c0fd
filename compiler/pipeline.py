"""compile(): load -> find layers -> calibrate -> quantize weights -> emit -> check -> save
-> lower plugin nodes -> run both models with onnxruntime -> report."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np
import onnx_ir as ir

from qcompile import calibration as calib
from qcompile import layer_quantizer
from qcompile.accuracy import compare_outputs
from qcompile.errors import CalibrationError, ModelError
from qcompile.model_io import check_output_path, initializer_bytes, load_model, save_model
from qcompile.ort_runner import OrtModel
from qcompile.passes.canonicalize import Layer, find_layers
from qcompile.passes.check_qdq import check_qdq
from qcompile.passes.add_group_offsets import AddGroupOffsets
from qcompile.passes.add_low_rank import AddLowRankBranches
from qcompile.passes.insert_qdq import InsertQDQ, QuantizedLayer
from qcompile.passes.scale_input_channels import ScaleInputChannels
from qcompile.recipe import LayerChoice, Recipe
from qcompile.report import LayerReport, Report

logger = logging.getLogger(__name__)
MIN_OPSET = 21

Progress = Callable[[str, int, int], None]


@dataclasses.dataclass
class Artifacts:
    quantized_model: Path | None
    report: Report
    report_path: Path | None = None
    recipe_path: Path | None = None
    files: list[Path] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Planned:
    layer: Layer
    choice: LayerChoice
    report: LayerReport


def input_specs(model: ir.Model) -> list[calib.InputSpec]:
    specs = []
    initializers = set(model.graph.initializers)
    for value in model.graph.inputs:
        if value.name in initializers:
            continue
        dtype = np.dtype(value.dtype.numpy()) if value.dtype is not None else np.dtype(np.float32)
        dims = tuple(d if isinstance(d, int) else None for d in value.shape) if value.shape is not None else ()
        specs.append(calib.InputSpec(value.name, dtype, dims))
    return specs


def _plan(model: ir.Model, recipe: Recipe) -> tuple[list[_Planned], list[LayerReport]]:
    layers, skipped = find_layers(model.graph)
    kept = [LayerReport(s.name, s.op, (0, 0), "fp32", reason=s.reason) for s in skipped]
    planned = []
    for layer in layers:
        choice, note = fit_group_size(layer, recipe.choice_for(layer.name))
        report = LayerReport(layer.name, layer.op, (layer.n, layer.k), choice.preset)
        if note:
            report.details["group_size"] = note
        reason = unsupported_reason(layer, choice)
        if reason:
            report.reason = reason
            kept.append(report)
        else:
            planned.append(_Planned(layer, choice, report))
    if not layers:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in skipped[:3])
        raise ModelError("model has no quantizable layer (MatMul, Gemm or Conv with a constant weight)"
                         + (f": {reasons}" if reasons else ""))
    return planned, kept


def fit_group_size(layer: Layer, choice: LayerChoice) -> tuple[LayerChoice, str]:
    """A GEMM whose K is not a multiple of the group size takes the largest smaller group size (64, 32)
    that divides K, as the scale blocks must tile K; the note says so (none fits: unsupported_reason)."""
    spec = choice.weights
    if spec is None or spec.granularity != "group" or layer.op == "Conv" or layer.k % spec.group_size == 0:
        return choice, ""
    for size in (64, 32):
        if size < spec.group_size and layer.k % size == 0:
            weights = dataclasses.replace(spec, group_size=size)
            return (dataclasses.replace(choice, weights=weights),
                    f"group size {size}: K={layer.k} is not a multiple of {spec.group_size}")
    return choice, ""


def unsupported_reason(layer: Layer, choice: LayerChoice) -> str:
    spec = choice.weights
    if spec is None:
        return f"left in high precision by the recipe ({choice.preset})"
    if layer.op == "Gemm" and layer.node.attributes.get_int("transA", 0) and choice.emit == "plugin":
        return "Gemm with transA=1 has no plugin form"
    if spec.granularity == "group":
        if layer.op == "Conv":
            return "block quantization is for GEMM weights only (TensorRT has no INT4 Conv)"
        if layer.k % spec.group_size:
            return f"K={layer.k} is not a multiple of the group size {spec.group_size}"
    if choice.emit == "plugin":
        if layer.op == "Conv":
            return f"{choice.plugin} is a GEMM plugin; Conv has no plugin form"
        from qcompile.passes.emit_plugins import plugin_shape_problem

        return plugin_shape_problem(choice.plugin, layer.n, layer.k, spec.group_size)
    return ""


def _ensure_opset(model: ir.Model, path: Path | None) -> ir.Model:
    opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1))
    if opset >= MIN_OPSET:
        return model
    from onnx import version_converter

    try:
        proto = version_converter.convert_version(ir.to_proto(model), MIN_OPSET)
    except Exception as exc:
        raise ModelError(f"model opset {opset} could not be converted to opset {MIN_OPSET} "
                         f"(Q/DQ with INT4 and block scales need it): {str(exc)[:120]}") from None
    logger.info("converted opset %d -> %d", opset, MIN_OPSET)
    return ir.serde.deserialize_model(proto)


def _reference_path(model: ir.Model, path: Path | None, workdir: Path) -> Path:
    if path is not None:
        return path
    out = workdir / "original.onnx"
    ir.save(model, out)
    return out


def compile(model, recipe: Recipe | str = "w8a8", calibration=None, *, output: str | Path | None = None,
            report_path: str | Path | None = None, force: bool = False, progress: Progress | None = None,
            verify: bool = True) -> Artifacts:
    """Quantize `model` (a path or an onnx.ModelProto) with `recipe` (a Recipe or a preset name).

    `calibration` is a .npz path, a folder of them, a dict of arrays with a leading sample axis,
    "random" (explicitly), or None (only for weight-only recipes).
    """
    import tempfile

    timings: dict[str, float] = {}
    start = time.perf_counter()
    recipe = Recipe.preset(recipe) if isinstance(recipe, str) else recipe
    ir_model, source = load_model(model)
    out = Path(output) if output is not None else None
    if out is not None:
        check_output_path(out, [source], force)
    ir_model = _ensure_opset(ir_model, source)
    size_before = initializer_bytes(ir_model)
    planned, kept = _plan(ir_model, recipe)
    if not planned:
        raise ModelError("no layer left to quantize: " + "; ".join(f"{r.name}: {r.reason}" for r in kept[:3]))
    logger.info("canonicalize: %d layers to quantize, %d kept in high precision", len(planned), len(kept))
    needs_data = any(p.choice.activations is not None for p in planned) or recipe.algorithm != "rtn" or \
        bool(recipe.lkd_steps)
    samples, eval_source = _samples(calibration, ir_model, needs_data, recipe)
    calib_set, eval_set = calib.split_holdout(samples, recipe.holdout)
    if not eval_set:
        eval_set = calib_set
        eval_source = eval_source.replace("held-back ", "") + " (the calibration samples themselves: too few to hold any back)"
    timings["load"] = time.perf_counter() - start

    with tempfile.TemporaryDirectory(prefix="qcompile-") as work:
        ref_path = _reference_path(ir_model, source, Path(work))
        groups = layer_quantizer.make_groups(planned, recipe)
        observed = sorted({g.activation for g in groups if g.needs})
        with OrtModel(ref_path, extra_outputs=observed) as original:
            output_names = original.output_names
            t0 = time.perf_counter()
            if observed:
                logger.info("calibrate: %d activation tensors on %d samples", len(observed), len(calib_set))
            logger.info("quantize: %d weights (%s)", len(planned), recipe.algorithm)
            quantized = layer_quantizer.quantize_groups(groups, original.run, calib_set, recipe, progress)
            timings["calibrate+quantize"] = time.perf_counter() - t0
            reference = [original.run(s) for s in eval_set] if verify else []
        qdq_layers, plugin_layers = _emit(ir_model, quantized)
        problems = check_qdq(ir_model, qdq_layers)
        if problems:
            raise RuntimeError("Q/DQ check failed after emission: " + "; ".join(problems))
        size_after = initializer_bytes(ir_model)
        files = save_model(ir_model, out) if out is not None else []

        accuracy = []
        if verify:
            t0 = time.perf_counter()
            logger.info("verify: original vs quantized on %d samples with onnxruntime", len(eval_set))
            accuracy = _verify(ir_model, output_names, eval_set, reference, bool(plugin_layers), out, progress)
            timings["verify"] = time.perf_counter() - t0

    layer_reports = [p.report for p in planned] + kept
    timings["total"] = time.perf_counter() - start
    report = Report(str(source or "<in-memory model>"), recipe.to_dict(), layer_reports, size_before, size_after,
                    accuracy, len(eval_set) if verify else 0, eval_source, timings=timings)
    if plugin_layers:
        report.notes.append("plugin GEMMs were measured on their standard-ONNX lowering (same packed bytes)")
    artifacts = Artifacts(out, report, files=files)
    if out is not None:
        artifacts.recipe_path = out.with_name(out.name + ".recipe.json")
        _write_text(artifacts.recipe_path, json.dumps(recipe.to_dict(), indent=2))
        artifacts.files.append(artifacts.recipe_path)
    if report_path is not None:
        artifacts.report_path = Path(report_path)
        report.write_json(artifacts.report_path)
        artifacts.files.append(artifacts.report_path)
    return artifacts


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)


def _samples(calibration, model: ir.Model, needs_data: bool, recipe: Recipe):
    specs = input_specs(model)
    if calibration is None:
        if needs_data:
            raise CalibrationError(
                f"--precision {recipe.precision} with --algorithm {recipe.algorithm} needs calibration data "
                "(--calib FILE.npz); "
                "pass '--calib random' only if you accept scales fitted to random inputs, which rarely match real "
                "activation ranges and silently cost accuracy")
        return calib.load_calibration(calib.RANDOM, specs), \
            "random inputs (no calibration data given: accuracy on real data may differ)"
    if isinstance(calibration, str) and calibration == calib.RANDOM:
        logger.warning("calibrating on random inputs: activation scales will not match real data")
        return calib.load_calibration(calibration, specs), "random inputs (--calib random)"
    return calib.load_calibration(calibration, specs), "held-back calibration samples"


def _layers(qg) -> list[QuantizedLayer]:
    act_fmt = qg.group.choice.activations.fmt if qg.group.choice.activations else None
    return [QuantizedLayer(p.layer, r.qw, act_fmt, qg.act_scale) for p, r in zip(qg.group.planned, qg.results)]


def _emit(model: ir.Model, quantized) -> tuple[list[QuantizedLayer], list[tuple[QuantizedLayer, str]]]:
    """Input-channel scales, LoRC and offset branches, then Q/DQ and plugin nodes; returns (Q/DQ layers, plugin layers)."""
    scaled = [(qg.group.planned[0].layer.activation, [p.layer for p in qg.group.planned], qg.results[0].input_scale)
              for qg in quantized if qg.results and qg.results[0].input_scale is not None]
    if scaled:
        scaling = ScaleInputChannels(scaled)
        scaling(model)
        reports = {p.layer.name: p.report for qg in quantized for p in qg.group.planned}
        for applied in scaling.applied:
            for name in applied.layers:
                reports[name].details["input_scale"] = (
                    f"folded into {applied.node}" if applied.how == "folded" else f"explicit Mul {applied.node}")
    low_rank = [(p.layer, *r.low_rank) for qg in quantized for p, r in zip(qg.group.planned, qg.results)
                if r.low_rank is not None]
    if low_rank:
        AddLowRankBranches(low_rank)(model)
    offsets = [(p.layer, r.qw.offsets) for qg in quantized for p, r in zip(qg.group.planned, qg.results)
               if r.qw.offsets is not None]
    if offsets:
        AddGroupOffsets(offsets)(model)
    qdq = [ql for qg in quantized if qg.group.choice.emit == "qdq" for ql in _layers(qg)]
    InsertQDQ(qdq)(model)
    plugins = [(ql, qg.group.choice.plugin) for qg in quantized if qg.group.choice.emit == "plugin"
               for ql in _layers(qg)]
    logger.info("emit: %d layers as Q/DQ, %d as plugin nodes", len(qdq), len(plugins))
    if plugins:
        from qcompile.passes.emit_plugins import EmitPluginGemms

        EmitPluginGemms(plugins)(model)
    return qdq, plugins


def _verify(model: ir.Model, names, eval_set, reference, has_plugins: bool, out, progress):
    # Saving with external data repoints the in-memory tensors at the written files, so a model
    # that was saved is read back from disk rather than reused.
    if has_plugins:
        from qcompile.passes.lower_plugins import LowerPluginNodes

        model = ir.load(out) if out is not None else model
        LowerPluginNodes()(model)
        session = OrtModel.from_ir(model)
    else:
        session = OrtModel(out) if out is not None else OrtModel.from_ir(model)
    with session as quantized:
        results = []
        for i, sample in enumerate(eval_set):
            results.append(quantized.run(sample, names))
            if progress:
                progress("verify", i + 1, len(eval_set))
    return compare_outputs(names, reference, results)

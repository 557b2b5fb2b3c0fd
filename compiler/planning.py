"""Planning: a format per layer from the recipe (presets, overrides), group sizes fitted to the
layer shapes, and the reason for every layer left in high precision. Uniform presets and the
mixed-precision search (compiler/mixed/) use these same rules."""

from __future__ import annotations

import dataclasses

import onnx_ir as ir

from qcompile.errors import ModelError
from qcompile.passes.canonicalize import Layer, find_layers
from qcompile.recipe import LayerChoice, Recipe
from qcompile.report import LayerReport


@dataclasses.dataclass
class Planned:
    layer: Layer
    choice: LayerChoice
    group_note: str = ""  # why the group size differs from the recipe's


def plan(model: ir.Model, recipe: Recipe) -> tuple[list[Planned], list[LayerReport]]:
    layers, skipped = find_layers(model.graph)
    kept = [LayerReport(s.name, s.op, (0, 0), "fp32", reason=s.reason) for s in skipped]
    planned = []
    for layer in layers:
        choice, note = fit_group_size(layer, recipe.choice_for(layer.name))
        reason = unsupported_reason(layer, choice)
        if reason:
            details = {"group_size": note} if note else {}
            kept.append(
                LayerReport(
                    layer.name, layer.op, (layer.n, layer.k), choice.preset, reason=reason, details=details
                )
            )
        else:
            planned.append(Planned(layer, choice, note))
    if not layers:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in skipped[:3])
        raise ModelError(
            "model has no quantizable layer (MatMul, Gemm or Conv with a constant weight)"
            + (f": {reasons}" if reasons else "")
        )
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
            return (
                dataclasses.replace(choice, weights=weights),
                f"group size {size}: K={layer.k} is not a multiple of {spec.group_size}",
            )
    return choice, ""


def unsupported_reason(layer: Layer, choice: LayerChoice) -> str:
    spec = choice.weights
    if spec is None:
        return f"left in high precision by the recipe ({choice.preset})"
    if layer.op == "Gemm" and choice.emit == "plugin":
        attrs = layer.node.attributes
        if attrs.get_int("transA", 0):
            return "Gemm with transA=1 has no plugin form"
        has_bias = len(layer.node.inputs) > 2 and layer.node.inputs[2] is not None
        for attr in ("alpha", "beta") if has_bias else ("alpha",):
            if attrs.get_float(attr, 1.0) != 1.0:
                return f"Gemm with {attr}={attrs.get_float(attr):g} has no plugin form"
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

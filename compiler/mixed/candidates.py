"""Candidate weight formats for mixed precision and what each costs a given layer.

A candidate format is a weight-only preset of recipe.py; its bits per weight (scales included)
come from WeightSpec.bits_per_weight. A layer that a format cannot take (K not a multiple of the
group size, plugin tile rules) does not get that option, with the pipeline's own reason.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from qcompile.errors import RecipeError
from qcompile.passes.canonicalize import Layer
from qcompile.recipe import SKIP, Recipe

FORMAT_PRESETS = {
    "int4": "w4a16",
    "fp4": "wfp4a16",
    "fp6": "w6a16",
    "int8": "w8a16",
    "fp8": "wfp8a16",
    "fp16": SKIP,
}
DEFAULT_FORMATS = tuple(FORMAT_PRESETS)
HIGH_PRECISION_BITS = 16.0  # a layer left unquantized is deployed in fp16 (TensorRT)


def parse_formats(formats) -> tuple[str, ...]:
    """'int4,fp16' or a sequence -> validated tuple of format names, in the given order."""
    names = [f.strip() for f in formats.split(",")] if isinstance(formats, str) else list(formats)
    names = [n for n in names if n]
    unknown = [n for n in names if n not in FORMAT_PRESETS]
    if unknown or not names:
        raise RecipeError(
            f"unknown mixed-precision format(s) {unknown or names}; known: {', '.join(FORMAT_PRESETS)}"
        )
    return tuple(dict.fromkeys(names))


def preset_of(value: str) -> str:
    """A format name (int4) or a preset name (w4a16, w8a8, fp16) -> the preset name."""
    preset = FORMAT_PRESETS.get(value, value)
    Recipe(precision=preset)  # raises RecipeError naming the valid presets
    return preset


def format_of(preset: str) -> str:
    """The candidate-format name of a preset when it has one, else the preset itself."""
    return next((f for f, p in FORMAT_PRESETS.items() if p == preset), preset)


@dataclasses.dataclass
class LayerInfo:
    """One quantizable layer: its size and the bits of every format it can take."""

    layer: Layer
    bits: dict[str, float]  # format -> bits per weight, only formats this layer can take
    refused: dict[str, str]  # format -> why this layer cannot take it

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def params(self) -> int:
        return self.layer.n * self.layer.k


def layer_choice(layer: Layer, preset: str, group_size: int):
    """The preset's LayerChoice for this layer as compile() makes it (group size fitted to K)."""
    from qcompile.planning import fit_group_size

    return fit_group_size(layer, Recipe(precision=preset, group_size=group_size).choice_for(layer.name))[0]


def preset_bits(layer: Layer, preset: str, group_size: int) -> tuple[float | None, str]:
    """(bits per weight, "") for a preset this layer can take, else (None, reason)."""
    from qcompile.planning import unsupported_reason  # the pipeline's own refusal rules, kept in one place

    choice = layer_choice(layer, preset, group_size)
    if choice.weights is None:
        return HIGH_PRECISION_BITS, ""
    reason = unsupported_reason(layer, choice)
    if reason:
        return None, reason
    return choice.weights.bits_per_weight(layer.n, layer.k), ""


def layer_infos(layers: list[Layer], formats: tuple[str, ...], group_size: int) -> list[LayerInfo]:
    """Every layer with the formats it can take; fp16 is always possible (the pipeline's fallback)."""
    infos = []
    for layer in layers:
        bits, refused = {}, {}
        for fmt in formats:
            b, reason = preset_bits(layer, FORMAT_PRESETS[fmt], group_size)
            if b is None:
                refused[fmt] = reason
            else:
                bits[fmt] = b
        if not bits:
            bits["fp16"] = HIGH_PRECISION_BITS
        infos.append(LayerInfo(layer, bits, refused))
    return infos


def weight_spec(fmt: str, group_size: int, layer: Layer | None = None):
    """The format's WeightSpec (None for fp16); for `layer`, as compile() fits it to that layer's K."""
    if layer is None:
        return Recipe(precision=FORMAT_PRESETS[fmt], group_size=group_size).choice_for("").weights
    return layer_choice(layer, FORMAT_PRESETS[fmt], group_size).weights


def weight_errors(infos: list[LayerInfo], group_size: int) -> dict[str, dict[str, tuple[float, float]]]:
    """layer -> format -> (MSE, relative MSE) of round-to-nearest quantization; (0, 0) for fp16."""
    from qcompile.quantizer import quantize_weight

    out: dict[str, dict[str, tuple[float, float]]] = {}
    for info in infos:
        w = info.layer.weight_nk()
        energy = float(np.mean(np.square(w, dtype=np.float64)))
        errors = {}
        for fmt in info.bits:
            spec = weight_spec(fmt, group_size, info.layer)
            if spec is None:
                errors[fmt] = (0.0, 0.0)
                continue
            mse = float(np.mean(np.square(w - quantize_weight(w, spec).dequantize(), dtype=np.float64)))
            errors[fmt] = (mse, mse / max(energy, 1e-30))
        out[info.name] = errors
    return out

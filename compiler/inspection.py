"""`qcompile inspect`: what compile() would do with a model, from its structure alone.

The graph is read without its weight data (onnx.load with load_external_data=False; initializers
are looked at for shape and dtype only), so this is fast on a 7B model whose weights sit in
external data. The per-layer decisions are the pipeline's own (planning.fit_group_size,
planning.unsupported_reason, WeightSpec.bits_per_weight).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import onnx
import onnx_ir as ir

from qcompile.errors import ModelError
from qcompile.mixed.candidates import HIGH_PRECISION_BITS
from qcompile.passes.canonicalize import Layer, Skipped, find_layers
from qcompile.planning import fit_group_size, unsupported_reason
from qcompile.recipe import PRESETS, Recipe


@dataclasses.dataclass
class Decision:
    """One layer under one preset: its weight format and bits, or why it stays in high precision."""

    format: str | None
    bits: float | None
    emitted_as: str = ""
    note: str = ""  # a fitted group size
    reason: str = ""


@dataclasses.dataclass
class PresetSummary:
    preset: str
    decisions: dict[str, Decision]  # layer name -> decision
    size_after: int  # bytes: quantized weights at their bits, everything else as stored
    bits_per_weight: float  # over every layer weight, kept ones at 16 (TensorRT runs them in fp16)
    activations: list[str]  # tensors whose range needs calibration data


@dataclasses.dataclass
class Inspection:
    model: str
    layers: list[Layer]
    skipped: list[Skipped]
    size_before: int
    presets: list[PresetSummary]

    @property
    def layer_params(self) -> int:
        return sum(layer.n * layer.k for layer in self.layers)


def read_structure(path: str | Path) -> ir.Model:
    """The graph without its weight data: external tensors stay unread references."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model not found: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
        return ir.serde.deserialize_model(proto)
    except Exception as exc:  # protobuf raises DecodeError, RuntimeWarning, ValueError...
        raise ModelError(
            f"{path} is not a readable ONNX model ({type(exc).__name__}: {str(exc)[:120]})"
        ) from None


def _nbytes(value: ir.Value) -> int:
    tensor = value.const_value
    if tensor is None or tensor.dtype is None:
        return 0
    return math.ceil(math.prod(tensor.shape.numpy()) * tensor.dtype.itemsize)


def _decide(layer: Layer, recipe: Recipe) -> Decision:
    choice, note = fit_group_size(layer, recipe.choice_for(layer.name))
    reason = unsupported_reason(layer, choice)
    if reason:
        return Decision(None, None, reason=reason)
    spec = choice.weights
    gran = f"group {spec.group_size}" if spec.granularity == "group" else spec.granularity
    return Decision(
        f"{spec.fmt.name} ({gran})", spec.bits_per_weight(layer.n, layer.k), choice.plugin or "Q/DQ", note
    )


def _summary(model: ir.Model, layers: list[Layer], recipe: Recipe, size_before: int) -> PresetSummary:
    decisions, saved, bits, acts = {}, 0.0, 0.0, {}
    for layer in layers:
        decision = decisions[layer.name] = _decide(layer, recipe)
        stored = _nbytes(layer.source)
        params = layer.n * layer.k
        if decision.bits is None:
            bits += params * HIGH_PRECISION_BITS
            continue
        saved += stored - params * decision.bits / 8
        bits += params * decision.bits
        if recipe.choice_for(layer.name).activations is not None:
            acts.setdefault(layer.activation.name, None)
    params = sum(layer.n * layer.k for layer in layers)
    return PresetSummary(
        recipe.precision, decisions, round(size_before - saved), bits / max(params, 1), list(acts)
    )


def inspect_model(path: str | Path, precisions=PRESETS, group_size: int = 128) -> Inspection:
    model = read_structure(path)
    layers, skipped = find_layers(model.graph)
    size = sum(_nbytes(v) for v in model.graph.initializers.values())
    presets = [_summary(model, layers, Recipe(precision=p, group_size=group_size), size) for p in precisions]
    return Inspection(str(path), layers, skipped, size, presets)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def render(found: Inspection, detail: str | None = None) -> str:
    """The text `qcompile inspect` prints: layers, the per-preset matrix (or one preset in detail)."""
    lines = [
        f"{found.model}: {len(found.layers)} quantizable layers holding {found.layer_params:,} weights; "
        f"initializers {_mb(found.size_before)}",
        "",
    ]
    presets = found.presets
    if detail is None:
        rows = [("layer", "op", "N x K", "share", *[p.preset for p in presets])]
        rows += [
            (*_describe(found, layer), *[_cell(p.decisions[layer.name]) for p in presets])
            for layer in found.layers
        ]
        lines += _table(rows)
        lines.append("(bits per weight, scales included; kept = stays in high precision, reasons below)")
    else:
        rows = [("layer", "op", "N x K", "share", "weights", "bits/w", "as / reason")]
        for layer in found.layers:
            d = presets[0].decisions[layer.name]
            how = (f"kept: {d.reason}" if d.reason else d.emitted_as) + (f" ({d.note})" if d.note else "")
            rows.append((*_describe(found, layer), d.format or "-", _cell(d), how))
        lines += _table(rows)
    lines += [f"not a quantizable layer: {s.name} ({s.op}): {s.reason}" for s in found.skipped]
    rows = [("preset", "layers", "bits/w", "size", "activations to calibrate")]
    for p in presets:
        quantized = sum(d.bits is not None for d in p.decisions.values())
        rows.append(
            (
                p.preset,
                f"{quantized}/{len(p.decisions)}",
                f"{p.bits_per_weight:.3f}",
                f"{_mb(found.size_before)} -> {_mb(p.size_after)}",
                str(len(p.activations)) if p.activations else "none (weight-only)",
            )
        )
    lines += ["", *_table(rows), "(bits/w: over all layer weights, kept ones at 16; size: ONNX initializers)"]
    if detail is None:
        lines += [
            f"{p.preset}: kept {name}: {d.reason}"
            for p in presets
            for name, d in p.decisions.items()
            if d.reason
        ]
    else:
        lines += [f"needs calibration: {name}" for name in presets[0].activations]
    return "\n".join(lines)


def _describe(found: Inspection, layer: Layer) -> tuple[str, str, str, str]:
    share = 100 * layer.n * layer.k / max(found.layer_params, 1)
    return layer.name, layer.op, f"{layer.n}x{layer.k}", f"{share:.1f}%"


def _cell(d: Decision) -> str:
    return "kept" if d.bits is None else f"{d.bits:.3f}"


def render_auto(path: str | Path, group_size: int = 128, formats=None) -> str:
    """`inspect --precision auto`: the bits per weight of every candidate format each layer can take
    (the choices of the mixed-precision search) and the range of average bits it can reach."""
    from qcompile.mixed.allocate import minimum_average_bits
    from qcompile.mixed.candidates import DEFAULT_FORMATS, layer_infos, parse_formats

    formats = parse_formats(formats or DEFAULT_FORMATS)
    model = read_structure(path)
    layers, _ = find_layers(model.graph)
    infos = layer_infos(layers, formats, group_size)
    total = max(sum(i.params for i in infos), 1)
    rows = [("layer", "op", "N x K", "share", *formats)]
    rows += [
        (
            i.name,
            i.layer.op,
            f"{i.layer.n}x{i.layer.k}",
            f"{100 * i.params / total:.1f}%",
            *[f"{i.bits[f]:.3f}" if f in i.bits else "-" for f in formats],
        )
        for i in infos
    ]
    highest = sum(max(i.bits.values()) * i.params for i in infos) / total
    lines = [
        f"{path}: {len(infos)} quantizable layers; candidate formats of --precision auto",
        "",
        *_table(rows),
        "(bits per weight, scales included; - = the layer cannot take that format)",
    ]
    lines += [f"{i.name}: no {f}: {reason}" for i in infos for f, reason in i.refused.items()]
    lines += ["", f"--avg-bits can range from {minimum_average_bits(infos, {}):.3f} to {highest:.3f}"]
    return "\n".join(lines)

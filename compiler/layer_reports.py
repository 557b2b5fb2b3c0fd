"""Each quantized layer's report entry, built once from what the plan chose for it, what quantizing
it measured (layer_quantizer._measure), how it was emitted and, for `--precision auto`, what the
mixed-precision plan said of it."""

from __future__ import annotations

from qcompile.report import LayerReport


def layer_reports(planned: list, quantized: list, emitted: dict[str, dict], plan=None) -> list[LayerReport]:
    """In the order of `planned`; `emitted`: layer name -> emission details; `plan`: a mixed.Plan."""
    outcome = {
        p.layer.name: (qg.refused, qg.measured[i] if qg.measured else None)
        for qg in quantized
        for i, p in enumerate(qg.group.planned)
    }
    return [_entry(p, *outcome[p.layer.name], emitted.get(p.layer.name, {}), plan) for p in planned]


def _entry(p, refused: str, measured: dict | None, emitted: dict, plan) -> LayerReport:
    layer, choice = p.layer, p.choice
    details = {"group_size": p.group_note} if p.group_note else {}
    fields = {}
    if refused:
        fields["reason"] = refused
    else:
        details.update(measured["details"])
        fields = {k: v for k, v in measured.items() if k != "details"}
        fields["activation_format"] = choice.activations.fmt.name if choice.activations else None
        fields["emitted_as"] = "Q/DQ" if choice.emit == "qdq" else f"plugin {choice.plugin}"
    details.update(emitted)
    if plan is not None and layer.name in plan.layers:
        entry = plan.layers[layer.name]
        details["mixed"] = {"format": entry.format, "sensitivity": entry.sensitivity}
    return LayerReport(layer.name, layer.op, (layer.n, layer.k), choice.preset, **fields, details=details)

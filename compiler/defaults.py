"""Per-preset algorithm defaults chosen by measurement (BENCHMARKS.md, "Defaults by measurement
(issue 18)"), with and without calibration data. The command line applies them when neither
--algorithm nor the recipe file names an algorithm; a Recipe built in Python keeps its plain
defaults (rtn), so a program's results never change under it. The report records the recipe used.
"""

from __future__ import annotations

# Only where both bench models measured better (see BENCHMARKS.md); every other preset keeps rtn.
WITH_DATA = {
    "w8a8": ("smoothquant", {"alpha": None}),
    "w4a16": ("gptq", {"act_order": True}),
    "w4a8": ("gptq", {"act_order": True}),
    "w6a16": ("gptq", {"act_order": True}),
}
WITHOUT_DATA = {"w4a16": ("hqq", {}), "w4a8": ("hqq", {})}
# Without data, when qcompile samples its calibration text from the model itself (a model with an
# output over its vocabulary): that text carries the activation outliers SmoothQuant needs (SmolLM2
# w8a8 perplexity 88.2 -> 43.2); an encoder's generated samples are random tokens, where it loses.
WITHOUT_DATA_SAMPLED = {"w8a8": ("smoothquant", {"alpha": None})}


def measured_default(recipe: dict, calib, samples_from_model: bool = False) -> tuple[dict, str | None]:
    """`recipe` (Recipe fields) with the measured default algorithm for its preset when it names none,
    and a sentence saying what was chosen (None when nothing changed). `samples_from_model`: without
    data, qcompile will sample its calibration text from the model (synthetic_calibration)."""
    if "algorithm" in recipe or recipe.get("algorithm_options"):
        return recipe, None
    has_data = calib is not None and calib != "random"
    precision = recipe.get("precision", "w8a8")
    if not isinstance(precision, str):  # a wrongly typed recipe value: Recipe validation reports it
        return recipe, None
    sampled = calib is None and samples_from_model
    chosen = (
        WITH_DATA.get(precision)
        if has_data
        else (WITHOUT_DATA_SAMPLED.get(precision) if sampled else None) or WITHOUT_DATA.get(precision)
    )
    if chosen is None:
        return recipe, None
    algorithm, options = chosen
    source = "with" if has_data else "without"
    note = (
        f"{precision} default {source} calibration data"
        + (" (text sampled from the model)" if sampled and not has_data else "")
        + f": --algorithm {algorithm}"
        + (f" {options}" if options else "")
        + " (chosen by measurement, BENCHMARKS.md)"
    )
    return {**recipe, "algorithm": algorithm, "algorithm_options": dict(options)}, note

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


def measured_default(recipe: dict, calib) -> tuple[dict, str | None]:
    """`recipe` (Recipe fields) with the measured default algorithm for its preset when it names none,
    and a sentence saying what was chosen (None when nothing changed)."""
    if "algorithm" in recipe or recipe.get("algorithm_options"):
        return recipe, None
    has_data = calib is not None and calib != "random"
    precision = recipe.get("precision", "w8a8")
    if not isinstance(precision, str):  # a wrongly typed recipe value: Recipe validation reports it
        return recipe, None
    chosen = (WITH_DATA if has_data else WITHOUT_DATA).get(precision)
    if chosen is None:
        return recipe, None
    algorithm, options = chosen
    note = (
        f"{precision} default {'with' if has_data else 'without'} calibration data: --algorithm {algorithm}"
        + (f" {options}" if options else "")
        + " (chosen by measurement, BENCHMARKS.md)"
    )
    return {**recipe, "algorithm": algorithm, "algorithm_options": dict(options)}, note

"""Per-preset algorithm defaults chosen by measurement (BENCHMARKS.md, "Defaults by measurement
(issue 18)"), with and without calibration data: an algorithm, its options and, for GPTQ's INT4
codes, float offsets. The command line applies them when neither --algorithm nor the recipe file
names an algorithm; a Recipe built in Python keeps its plain defaults (rtn), so a program's results
never change under it. The report records the recipe used.
"""

from __future__ import annotations

from qcompile.synthetic_calibration import SMALL_MODEL_WEIGHTS

# Only where both bench models measured better (see BENCHMARKS.md); every other preset keeps rtn.
WITH_DATA = {
    "w8a8": ("smoothquant", {"alpha": None}),
    "w4a16": ("gptq", {"act_order": True}),
    "w4a8": ("gptq", {"act_order": True}),
    "w6a16": ("gptq", {"act_order": True}),
}
# Presets whose default GPTQ gets a float offset per group (--offsets, the side branch TensorRT
# runs): better than its symmetric INT4 codes on both bench models, at group 128 and 32.
GPTQ_OFFSETS = ("w4a16", "w4a8")

WITHOUT_DATA = {"w4a16": ("hqq", {}), "w4a8": ("hqq", {})}
# Without data, when qcompile samples its calibration text from the model itself (a model with an
# output over its vocabulary): that text carries the activation outliers SmoothQuant needs (SmolLM2
# w8a8 perplexity 88.2 -> 38.2); an encoder's generated samples are random tokens, where it loses.
# GPTQ (with offsets) on that text beats hqq on SmolLM2 at group 128 and 32, for w4a16 and w4a8; on
# random tokens it loses, so encoders keep hqq, and so do models over SMALL_MODEL_WEIGHTS, where
# sampling the text and GPTQ's Hessians cost minutes per billion weights and hqq needs no text.
WITHOUT_DATA_SAMPLED = {
    "w8a8": ("smoothquant", {"alpha": None}),
    "w4a16": ("gptq", {"act_order": True}),
    "w4a8": ("gptq", {"act_order": True}),
}


def _chooses_weight_form(recipe: dict, precision: str) -> bool:
    """The recipe sets zero points or offsets itself (even to false), has layers of other formats (an
    offset does not suit every format), or runs QcW4A8Gemm, whose FP8 exponents take no offset."""
    return (
        recipe.get("asymmetric") is not None
        or recipe.get("offsets") is not None
        or bool(recipe.get("overrides"))
        or (precision == "w4a8" and bool(recipe.get("int4_plugin")))
    )


def measured_default(
    recipe: dict, calib, samples_from_model: bool = False, weights: int = 0
) -> tuple[dict, str | None]:
    """`recipe` (Recipe fields) with the measured default algorithm for its preset when it names none,
    and a sentence saying what was chosen (None when nothing changed). `samples_from_model`: without
    data, qcompile can sample its calibration text from the model (synthetic_calibration), whose
    GEMMs hold `weights` weights."""
    if "algorithm" in recipe or recipe.get("algorithm_options"):
        return recipe, None
    has_data = calib is not None and calib != "random"
    precision = recipe.get("precision", "w8a8")
    if not isinstance(precision, str):  # a wrongly typed recipe value: Recipe validation reports it
        return recipe, None
    sampled = calib is None and samples_from_model
    if sampled and weights > SMALL_MODEL_WEIGHTS and WITHOUT_DATA_SAMPLED.get(precision, ("",))[0] == "gptq":
        sampled = False  # hqq, data-free: no text to sample, no Hessians
    chosen = (
        WITH_DATA.get(precision)
        if has_data
        else (WITHOUT_DATA_SAMPLED.get(precision) if sampled else None) or WITHOUT_DATA.get(precision)
    )
    if chosen is None:
        return recipe, None
    algorithm, options = chosen
    offsets = (
        algorithm == "gptq" and precision in GPTQ_OFFSETS and not _chooses_weight_form(recipe, precision)
    )
    fields = {"offsets": True} if offsets else {}
    source = "with" if has_data else "without"
    note = (
        f"{precision} default {source} calibration data"
        + (" (text sampled from the model)" if sampled and not has_data else "")
        + f": --algorithm {algorithm}"
        + (f" {options}" if options else "")
        + "".join(f" --{name}" for name in fields)
        + " (chosen by measurement, BENCHMARKS.md)"
    )
    return {**recipe, **fields, "algorithm": algorithm, "algorithm_options": dict(options)}, note

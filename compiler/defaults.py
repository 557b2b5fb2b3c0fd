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
# Without data, the with-data defaults fitted to the samples qcompile generates
# (synthetic_calibration.generated_kind): text sampled from a model with an output over its
# vocabulary, or random tokens for an encoder. Sampled text carries the activation outliers
# SmoothQuant needs (SmolLM2 w8a8 perplexity, RTN 88.2; SmoothQuant on 64 sampled sequences topped up
# with random tokens 35.7, on real text 35.3), and GPTQ with offsets on it beats hqq at group 128 and
# 32. On 512 random-token sequences (MiniLM) SmoothQuant beats RTN (0.9931 against 0.9868), GPTQ with
# offsets beats hqq (w4a16 0.9722 against 0.9629, w4a8 0.9708 against 0.9604) and GPTQ reaches
# w6a16's 0.998 (0.9981 against rtn's 0.9974); on SmolLM2, sampling the text would break w6a16's
# two-minute budget. Only on models up to SMALL_MODEL_WEIGHTS, where qcompile generates that many
# samples; above it only SmoothQuant on sampled text (8 sequences), as sampling and GPTQ's Hessians
# cost minutes per billion weights.
# qcompile's own text, tokenized by a tokenizer.json beside the model, is real language: the with-data
# defaults, measured on it as well as on the bench's real calibration text (BENCHMARKS.md, eighth round).
WITHOUT_DATA_GENERATED = {
    "text": WITH_DATA,
    "sampled": {p: chosen for p, chosen in WITH_DATA.items() if p != "w6a16"},
    "random": WITH_DATA,
}


GENERATED_WORDS = {
    "text": "qcompile's calibration text",
    "sampled": "text sampled from the model",
    "random": "random tokens",
}


def _on_generated(precision: str, generated: str | None, weights: int):
    """The measured default on qcompile's generated samples, None where there is none."""
    chosen = WITHOUT_DATA_GENERATED.get(generated, {}).get(precision)
    if chosen is None or weights <= SMALL_MODEL_WEIGHTS:
        return chosen
    return chosen if generated in ("text", "sampled") and chosen[0] != "gptq" else None


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
    recipe: dict, calib, generated: str | None = None, weights: int = 0
) -> tuple[dict, str | None]:
    """`recipe` (Recipe fields) with the measured default algorithm for its preset when it names none,
    and a sentence saying what was chosen (None when nothing changed). `generated`: without data, what
    qcompile generates for the model (its own "text", "sampled" text, "random" tokens, or None:
    nothing),
    whose GEMMs hold `weights` weights."""
    if "algorithm" in recipe or recipe.get("algorithm_options"):
        return recipe, None
    has_data = calib is not None and calib != "random"
    precision = recipe.get("precision", "w8a8")
    if not isinstance(precision, str):  # a wrongly typed recipe value: Recipe validation reports it
        return recipe, None
    fitted = _on_generated(precision, generated, weights) if calib is None else None
    chosen = WITH_DATA.get(precision) if has_data else fitted or WITHOUT_DATA.get(precision)
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
        + (f" (on {GENERATED_WORDS[generated]})" if fitted else "")
        + f": --algorithm {algorithm}"
        + (f" {options}" if options else "")
        + "".join(f" --{name}" for name in fields)
        + " (chosen by measurement, BENCHMARKS.md)"
    )
    return {**recipe, **fields, "algorithm": algorithm, "algorithm_options": dict(options)}, note

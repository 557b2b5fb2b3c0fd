"""Everything a user chooses, as one frozen `Recipe`: from a preset name, Python, TOML or JSON."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from qcompile.errors import RecipeError
from qcompile.formats import Format, get_format
from qcompile.quantizer import WeightSpec

CALIB_METHODS = ("amax", "percentile")
EMITTERS = ("qdq", "plugin")
SKIP = "fp16"  # an override that leaves a layer unquantized


@dataclasses.dataclass(frozen=True)
class ActSpec:
    """Static per-tensor activation quantization."""

    fmt: Format
    method: str = "amax"
    percentile: float = 99.99

    def __post_init__(self):
        if self.method not in CALIB_METHODS:
            raise RecipeError(
                f"unknown calibration method {self.method!r}; known: {', '.join(CALIB_METHODS)}"
            )
        if not 50.0 < self.percentile <= 100.0:
            raise RecipeError(f"percentile must be in (50, 100], not {self.percentile}")


@dataclasses.dataclass(frozen=True)
class LayerChoice:
    """What one layer gets; `weights is None` leaves it in high precision."""

    preset: str
    weights: WeightSpec | None
    activations: ActSpec | None
    emit: str = "qdq"
    plugin: str | None = None


def _choice(preset: str, group_size: int, method: str, percentile: float) -> LayerChoice:
    def ws(fmt, gran="channel", **kw):
        return WeightSpec(get_format(fmt), gran, group_size, **kw)

    def act(fmt):
        return ActSpec(get_format(fmt), method, percentile)

    table = {
        "w8a8": lambda: LayerChoice(preset, ws("int8"), act("int8")),
        "fp8": lambda: LayerChoice(preset, ws("fp8_e4m3fn"), act("fp8_e4m3fn")),
        "w4a16": lambda: LayerChoice(preset, ws("int4", "group"), None),
        "w4a8": lambda: LayerChoice(preset, ws("int4", "group"), act("fp8_e4m3fn")),
        "w8a16": lambda: LayerChoice(preset, ws("int8"), None),
        "wfp4a8": lambda: LayerChoice(
            preset,
            ws("fp4_e2m1", "group", scale_constraint="pow2_ratio"),
            act("fp8_e4m3fn"),
            "plugin",
            "QcW4A8Gemm",
        ),
        "wfp8a16": lambda: LayerChoice(preset, ws("fp8_e4m3fn"), None),
        "wfp4a16": lambda: LayerChoice(
            preset, ws("fp4_e2m1", "group", scale_dtype="float16"), None, "plugin", "QcW4A16Gemm"
        ),
        "w6a16": lambda: LayerChoice(
            preset, ws("fp6_e3m2", scale_dtype="float16"), None, "plugin", "QcW6A16Gemm"
        ),
        SKIP: lambda: LayerChoice(preset, None, None),
    }
    if preset not in table:
        raise RecipeError(f"unknown precision {preset!r}; valid: {', '.join(p for p in table if p != SKIP)}")
    return table[preset]()


PRESETS = ("w8a8", "fp8", "w4a16", "w4a8", "w8a16", "wfp8a16", "wfp4a16", "wfp4a8", "w6a16")
# The GPUs a compiled model's plugin nodes are packed for: "any" (every GPU the plugins run on) or
# "sm90" (Hopper: QcW4A16Gemm weights in CUTLASS's int4_sm90 order where the sm_90a path takes them,
# which runs on Hopper only).
TARGET_ARCHS = ("any", "sm90")


@dataclasses.dataclass(frozen=True)
class Recipe:
    precision: str = "w8a8"
    group_size: int = 128
    calib_method: str = "amax"
    percentile: float = 99.99
    algorithm: str = "rtn"
    algorithm_options: dict = dataclasses.field(default_factory=dict)
    lorc_rank: int = 0
    lkd_steps: int = 0
    int4_plugin: bool = False
    target_arch: str = "any"  # TARGET_ARCHS
    asymmetric: bool = False  # INT4 weights as UINT4 with zero points (onnxruntime; TensorRT wants symmetric)
    offsets: bool = (
        False  # a float16 offset per weight scale group, added by a side branch (TensorRT runs it)
    )
    scale_constraint: str | None = None  # override the preset's: "none", "pow2" (M1), "pow2_ratio" (M2);
    # "preset" (the TOML spelling of None) keeps the preset's
    exclude: tuple[str, ...] = ()
    overrides: tuple[tuple[str, str], ...] = ()  # (exact name or "re:pattern", precision)
    holdout: float = 0.25  # of the calibration samples, held back for the report (32 at most)

    def __post_init__(self):
        if self.scale_constraint == "preset":
            object.__setattr__(self, "scale_constraint", None)
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "overrides", override_pairs(self.overrides))
        if self.calib_method not in CALIB_METHODS:
            raise RecipeError(
                f"unknown calibration method {self.calib_method!r}; known: {', '.join(CALIB_METHODS)}"
            )
        if self.target_arch not in TARGET_ARCHS:
            raise RecipeError(f"unknown target arch {self.target_arch!r}; known: {', '.join(TARGET_ARCHS)}")
        if self.group_size not in (32, 64, 128):
            raise RecipeError(f"group size must be 32, 64 or 128, not {self.group_size}")
        from qcompile.algorithms import get_algorithm, make_options

        if get_algorithm(self.algorithm).stage != "quantize":
            raise RecipeError(
                f"{self.algorithm} refines a quantized layer: use lorc_rank / lkd_steps (--lorc, --lkd)"
            )
        make_options(self.algorithm, self.algorithm_options)
        for name, value in (("lorc_rank", self.lorc_rank), ("lkd_steps", self.lkd_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RecipeError(f"{name} must be an integer >= 0, not {value!r}")
        if not 0.0 <= self.holdout < 1.0:
            raise RecipeError(f"holdout must be in [0, 1), not {self.holdout}")
        for pattern in list(self.exclude) + [p for p, _ in self.overrides]:
            matcher(pattern)
        self.choice_for("")  # validates precision, calibration method and every override
        for _, preset in self.overrides:
            _choice(preset, self.group_size, self.calib_method, self.percentile)

    def choice_for(self, layer_name: str) -> LayerChoice:
        preset = self.precision
        if any(matcher(p)(layer_name) for p in self.exclude):
            preset = SKIP
        for pattern, override in self.overrides:
            if matcher(pattern)(layer_name):
                preset = override
        choice = _choice(preset, self.group_size, self.calib_method, self.percentile)
        if self.scale_constraint is not None and choice.weights is not None:
            weights = dataclasses.replace(choice.weights, scale_constraint=self.scale_constraint)
            choice = dataclasses.replace(choice, weights=weights)
        if self.asymmetric and choice.weights is not None and choice.weights.fmt.name == "int4":
            weights = dataclasses.replace(choice.weights, fmt=get_format("uint4"), symmetric=False)
            choice = dataclasses.replace(choice, weights=weights)
        if (
            self.int4_plugin
            and choice.emit == "qdq"
            and choice.weights is not None
            and choice.weights.fmt.name in ("int4", "uint4")
        ):
            choice = _as_int4_plugin(choice)
        hqq = (
            self.algorithm == "hqq"
            and choice.weights is not None
            and choice.weights.fmt.kind == "int"
            and choice.plugin != "QcW4A8Gemm"
            and not self.asymmetric
        )
        if (self.offsets or hqq) and choice.weights is not None:
            if self.asymmetric:
                raise RecipeError("choose zero points (asymmetric) or float offsets, not both")
            if choice.plugin == "QcW4A8Gemm":
                raise RecipeError(
                    "float offsets do not fold into QcW4A8Gemm's FP8 exponents; use them with w4a16, "
                    "wfp4a16, w6a16 or Q/DQ w4a8"
                )
            choice = dataclasses.replace(choice, weights=dataclasses.replace(choice.weights, offsets=True))
        return choice

    @classmethod
    def preset(cls, name: str, **options) -> Recipe:
        return cls(precision=name, **options)

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise RecipeError(f"unknown recipe keys {sorted(unknown)}; known: {sorted(known)}")
        for field in dataclasses.fields(cls):
            if field.name in data:
                _check_type(field, data[field.name])
        return cls(**data)

    @classmethod
    def from_file(cls, path: str | Path) -> Recipe:
        """The file's top-level keys (its [auto] and [run] tables are for the command line,
        recipe_file.py)."""
        from qcompile.recipe_file import read

        return cls.from_dict(read(path)["recipe"])

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["exclude"] = list(self.exclude)
        data["overrides"] = dict(self.overrides)
        data["algorithm_options"] = dict(self.algorithm_options)
        return data


def _check_type(field: dataclasses.Field, value) -> None:
    """A recipe value of the field's kind (files are untrusted: wrong types are the user's to fix)."""
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    strings = lambda v: all(isinstance(x, str) for x in v)  # noqa: E731
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, str) or default is None:
        ok = isinstance(value, str) or (default is None and value is None)
    elif field.name == "overrides":
        ok = (isinstance(value, dict) and strings(value) and strings(value.values())) or (
            isinstance(value, (list, tuple))
            and all(isinstance(p, (list, tuple)) and len(p) == 2 and strings(p) for p in value)
        )
    elif isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and strings(value)
    elif isinstance(default, dict):
        ok = isinstance(value, dict) and strings(value)
    else:
        ok = True
    if not ok:
        raise RecipeError(f"recipe key {field.name!r}: {value!r:.60} is not a {_kind(default, field.name)}")


def _kind(default, name: str) -> str:
    if name == "overrides":
        return "table of NAME = PRECISION"
    return {
        bool: "true/false",
        int: "number",
        float: "number",
        str: "string",
        tuple: "list of strings",
        dict: "table",
    }.get(type(default), "string")


def _as_int4_plugin(choice: LayerChoice) -> LayerChoice:
    """w4a16 -> QcW4A16Gemm (FP16 scales); w4a8 -> QcW4A8Gemm (M2 scales folded into exponents)."""
    if choice.activations is None:
        weights = dataclasses.replace(choice.weights, scale_dtype="float16")
        return dataclasses.replace(choice, weights=weights, emit="plugin", plugin="QcW4A16Gemm")
    if choice.activations.fmt.name == "fp8_e4m3fn":
        weights = dataclasses.replace(choice.weights, scale_constraint="pow2_ratio")
        return dataclasses.replace(choice, weights=weights, emit="plugin", plugin="QcW4A8Gemm")
    return choice


def matcher(pattern: str):
    if pattern.startswith("re:"):
        try:
            regex = re.compile(pattern[3:])
        except re.error as exc:
            raise RecipeError(f"bad pattern {pattern!r}: {exc}") from None
        return lambda name: regex.fullmatch(name) is not None
    return lambda name: name == pattern


def override_pairs(overrides) -> tuple[tuple[str, str], ...]:
    """Overrides as a tuple of (pattern, precision) pairs, from a dict or any iterable of pairs."""
    return tuple(tuple(o) for o in (overrides.items() if isinstance(overrides, dict) else overrides))

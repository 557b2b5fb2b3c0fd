"""Recipe files (TOML or JSON): a key for every choice the `qcompile` command line makes. The file's
values are defaults; flags given on the command line override them.

Top-level keys are the fields of `Recipe` (precision, group_size, algorithm, algorithm_options,
lorc_rank, exclude, overrides, ...); `[auto]` holds the mixed-precision options of `--precision
auto` and `[run]` how the compile runs. Values that mean "none" have a spelling:
`algorithm_options = {alpha = "search"}` (SmoothQuant's alpha search) and
`scale_constraint = "preset"` (the preset's own scale constraint).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

from qcompile.errors import RecipeError

logger = logging.getLogger(__name__)

VERIFY_SECONDS = 900.0  # compile()'s verification time limit unless told otherwise

# section -> key -> (command-line flag, default)
AUTO_KEYS = {
    "avg_bits": ("--avg-bits", None),
    "formats": ("--formats", "int4,fp4,fp6,int8,fp8,fp16"),
    "sensitivity": ("--sensitivity", "lim"),
    "sensitivity_samples": ("--sensitivity-samples", 4),
    "error_metric": ("--error-metric", "auto"),
    "sweep": ("--sweep", ()),
    "plan": ("--plan", None),
    "guard": ("--guard/--no-guard", True),
}
RUN_KEYS = {
    "calib": ("--calib", None),
    "verify": ("--verify/--no-verify", True),
    "sequential": ("--sequential", False),
    "verify_timeout": ("--verify-timeout", VERIFY_SECONDS),
    "shapes": ("--shapes", ()),
}
PATH_KEYS = {("run", "calib"), ("auto", "plan")}  # relative paths are read from the recipe file's folder


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything one `qcompile compile` run was asked for, after merging file and flags."""

    recipe: dict  # Recipe fields (precision may be "auto", which Recipe itself does not take)
    auto: dict  # AUTO_KEYS with their values
    run: dict  # RUN_KEYS with their values

    @property
    def is_auto(self) -> bool:
        return self.recipe.get("precision") == "auto"


MAX_BYTES = 1 << 20


def read(path: str | Path) -> dict:
    """The file as {"recipe": {...}, "auto": {...}, "run": {...}}, keys checked, paths resolved."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise RecipeError(f"recipe {path} is {len(raw)} bytes; a recipe is at most {MAX_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecipeError(f"recipe {path} is not UTF-8 text (byte {exc.start})") from None
    try:
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except ValueError as exc:
        raise RecipeError(f"recipe {path} is not valid {path.suffix[1:] or 'JSON'}: {exc}") from None
    except RecursionError:
        raise RecipeError(f"recipe {path} is nested too deeply") from None
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {path} must be a table of keys, not {type(data).__name__}")
    sections = {"auto": data.pop("auto", {}), "run": data.pop("run", {})}
    for name, known in (("auto", AUTO_KEYS), ("run", RUN_KEYS)):
        section = sections[name]
        if not isinstance(section, dict):
            raise RecipeError(f"recipe {path}: [{name}] must be a table")
        unknown = sorted(set(section) - set(known))
        if unknown:
            raise RecipeError(f"recipe {path}: unknown [{name}] keys {unknown}; known: {sorted(known)}")
        for key in section:
            if (name, key) in PATH_KEYS and isinstance(section[key], str):
                section[key] = str(path.parent / section[key])
    return {"recipe": data, **sections}


def merge(file: dict | None, recipe_flags: dict, auto_flags: dict, run_flags: dict) -> Settings:
    """File values, then every flag that was given (not None). Lists (exclude) and tables (overrides)
    from flags extend the file's. The file's algorithm_options belong to the file's algorithm: a
    different --algorithm drops them; a file naming no algorithm lends them to the chosen one."""
    file = file or {"recipe": {}, "auto": {}, "run": {}}
    recipe = dict(file["recipe"])
    given = {k: v for k, v in recipe_flags.items() if v is not None and k not in ("exclude", "overrides")}
    file_algorithm = recipe.get("algorithm")
    if (
        given.get("algorithm")
        and file_algorithm
        and given["algorithm"] != file_algorithm
        and recipe.get("algorithm_options")
    ):
        logger.info(
            "recipe: algorithm_options of %s dropped: --algorithm %s runs with its own defaults",
            file_algorithm,
            given["algorithm"],
        )
        recipe.pop("algorithm_options")
    recipe.update(given)
    if recipe_flags.get("exclude"):
        recipe["exclude"] = [*recipe.get("exclude", []), *recipe_flags["exclude"]]
    if recipe_flags.get("overrides"):
        overrides = recipe.get("overrides", {})
        overrides = dict(overrides.items() if isinstance(overrides, dict) else overrides)
        recipe["overrides"] = {**overrides, **dict(recipe_flags["overrides"])}
    auto = (
        {k: default for k, (_, default) in AUTO_KEYS.items()}
        | file["auto"]
        | {k: v for k, v in auto_flags.items() if v is not None}
    )
    run = (
        {k: default for k, (_, default) in RUN_KEYS.items()}
        | file["run"]
        | {k: v for k, v in run_flags.items() if v is not None}
    )
    return Settings(recipe, auto, run)


def parse_overrides(items) -> list[tuple[str, str]]:
    """`--override NAME_OR_re:PATTERN=PRECISION` items -> pairs."""
    pairs = []
    for item in items:
        pattern, sep, value = item.rpartition("=")
        if not sep or not pattern:
            raise RecipeError(f"--override {item!r} is not NAME=PRECISION")
        pairs.append((pattern, value))
    return pairs


def budgets(value) -> tuple[float, ...]:
    """`--sweep 4.25,4.5,5` or a TOML list -> budgets in bits."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        try:
            out.append(float(item))
        except (TypeError, ValueError):
            raise RecipeError(f"sweep: {item!r} is not a number of bits") from None
    return tuple(out)

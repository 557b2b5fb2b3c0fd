"""`qcompile ... --print-python`: the Python calls a command line makes, in every mode."""

from __future__ import annotations


def _call(head: str, positional: list[str], keywords: list[tuple[str, object]]) -> str:
    lines = [f"    {code}," for code in positional] + [f"    {k}={v!r}," for k, v in keywords]
    return head + "(\n" + "\n".join(lines) + "\n)\n"


class _Code:
    """A value whose repr is the given source text."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _recipe(recipe) -> _Code:
    return _Code("Recipe(" + ", ".join(f"{k}={v!r}" for k, v in recipe.to_dict().items()) + ")")


def compile_call(model, recipe, run: dict, output, report_path, force: bool) -> str:
    """`run`: the run settings of recipe_file.RUN_KEYS; those away from compile()'s defaults are written."""
    from qcompile.recipe_file import VERIFY_SECONDS

    calib = run["calib"]
    extra = [("verify", False)] if not run["verify"] else []
    extra += [("sequential", True)] if run["sequential"] else []
    if run["verify_timeout"] != VERIFY_SECONDS:
        extra.append(("verify_timeout", run["verify_timeout"] or None))
    return (
        "import qcompile\nfrom qcompile.recipe import Recipe\n\n"
        + _call(
            "artifacts = qcompile.compile",
            [repr(str(model)), repr(_recipe(recipe)), repr(calib)],
            [("output", str(output)), ("report_path", str(report_path)), ("force", force), *extra],
        )
        + "print(artifacts.report.table())\n"
    )


def auto_call(model, calib, recipe, overrides, output, report_path, force: bool, options: dict) -> str:
    paths = ("plan_path", "report_dir")
    options = {k: str(v) if k in paths and v is not None else v for k, v in options.items()}
    return (
        "from qcompile.mixed import run_auto\nfrom qcompile.recipe import Recipe\n\n"
        + _call(
            "artifacts, plan, figures = run_auto",
            [repr(str(model)), repr(calib)],
            [
                ("recipe", _recipe(recipe)),
                *options.items(),
                ("overrides", list(overrides)),
                ("output", str(output)),
                ("report_path", str(report_path)),
                ("force", force),
            ],
        )
        + "print(plan.table())\nprint(artifacts.report.table())\n"
    )


def engine_call(onnx_path, engine, shapes: dict | None) -> str:
    return "\nfrom qcompile.trt_build import build_engine, find_plugin_library\n\n" + _call(
        "build_engine",
        [repr(str(onnx_path)), repr(str(engine))],
        [("plugin_library", _Code("find_plugin_library()")), ("shapes", shapes or None)],
    )

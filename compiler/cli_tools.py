"""The `qcompile lower` and `qcompile inspect` commands (registered on the main group by cli.py)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from qcompile import console
from qcompile.errors import QCompileError

logger = logging.getLogger("qcompile")


def _fail(exc: QCompileError) -> None:
    click.echo(f"qcompile: error: {exc}", err=True)
    sys.exit(exc.exit_code)


@click.command("lower")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Standard-ONNX model path [default: MODEL with .ref.onnx].",
)
@click.option("--force", is_flag=True, help="Overwrite an existing output.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.option("-v", "--verbose", count=True, help="Also the libraries' messages.")
def lower_command(model, output, force, quiet, verbose):
    """Write MODEL's plugin nodes as standard ONNX (decoding the same packed bytes), for onnxruntime."""
    console.configure(quiet=quiet, verbose=verbose)
    try:
        from qcompile.lowering import lower_file

        output = output or model.with_name(model.name.removesuffix(".onnx") + ".ref.onnx")
        for path in lower_file(model, output, force=force):
            logger.info("wrote %s", path)
    except QCompileError as exc:
        _fail(exc)


@click.command("inspect")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--precision",
    "-p",
    default=None,
    help="Show one preset in detail, or 'auto': the formats each layer can take [default: every preset].",
)
@click.option(
    "--group-size",
    type=click.Choice(["32", "64", "128"]),
    default="128",
    show_default=True,
    help="Group size of block-quantized weights.",
)
def inspect_command(model, precision, group_size):
    """What compile would do with MODEL (layers, formats per preset, sizes), without reading its weights."""
    console.configure(quiet=True)
    try:
        from qcompile.inspection import inspect_model, render, render_auto
        from qcompile.recipe import PRESETS, Recipe

        if precision == "auto":
            click.echo(render_auto(model, int(group_size)))
            return
        if precision is not None:
            Recipe(precision=precision)  # a RecipeError names the valid presets
        found = inspect_model(model, (precision,) if precision else PRESETS, int(group_size))
        click.echo(render(found, precision))
    except QCompileError as exc:
        _fail(exc)


def register(group: click.Group) -> None:
    group.add_command(lower_command)
    group.add_command(inspect_command)

"""The `qcompile` command: a thin shell over qcompile.compile()."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import click

from qcompile import cli_tools, console
from qcompile.errors import QCompileError
from qcompile.recipe_file import VERIFY_SECONDS

logger = logging.getLogger("qcompile")


class Terminated(BaseException):
    """SIGTERM, raised where Python next runs so that every `with` block cleans up on the way out."""


def _on_sigterm(signum, frame):
    raise Terminated


class _DefaultToCompile(click.Group):
    """`qcompile MODEL ...` means `qcompile compile MODEL ...`. Exit codes: 0 done, 2 a problem with the
    input or usage (one line), 130 Ctrl-C, 2 SIGTERM; 1 (with a traceback) only for qcompile bugs."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["compile", *args]
        return super().parse_args(ctx, args)

    def main(self, args=None, prog_name=None, **extra):
        from qcompile.outputs import COMMITTED

        COMMITTED.clear()  # this command's outputs only
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        streams = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = console.ReaderMayLeave(sys.stdout), console.ReaderMayLeave(sys.stderr)
        try:
            return super().main(args, prog_name, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(
                f"qcompile: error: {' '.join(exc.format_message().split())} (see qcompile --help)", err=True
            )
            sys.exit(2)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo(f"qcompile: interrupted; {_written()}", err=True)
            sys.exit(130)
        except Terminated:
            click.echo(f"qcompile: error: terminated (SIGTERM); {_written()}", err=True)
            sys.exit(2)
        except QCompileError as exc:
            _fail(exc)
        finally:
            sys.stdout, sys.stderr = streams
            signal.signal(signal.SIGTERM, previous)


def _written() -> str:
    """What a stopped run leaves: nothing, or outputs that were complete before the stop."""
    from qcompile.outputs import COMMITTED

    if not COMMITTED:
        return "no output was written"
    return f"the outputs were complete before the stop and are kept ({len(COMMITTED)} files, {COMMITTED[-1]})"


def _fail(exc: QCompileError) -> None:
    click.echo(f"qcompile: error: {exc}", err=True)
    sys.exit(exc.exit_code)


@click.group(cls=_DefaultToCompile, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="qcompile")
def main():
    """Quantize an ONNX model for TensorRT: `qcompile MODEL --precision w4a8 --calib calib.npz`.

    Commands: compile (the default), check (TensorRT pre-flight rules), build (engine from a
    quantized model), lower (plugin nodes as standard ONNX for onnxruntime).
    """


@main.command("compile")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--precision",
    "-p",
    default=None,
    help="Preset (w8a8, fp8, w4a16, w4a8, w8a16, wfp8a16, wfp4a16, wfp4a8, w6a16) or 'auto' "
    "(per-layer formats under --avg-bits) [default: w8a8].",
)
@click.option(
    "--recipe",
    "recipe_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Recipe file (TOML or JSON); command-line options override it.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Quantized model path [default: MODEL with .q.onnx].",
)
@click.option(
    "--calib",
    default=None,
    help="Calibration .npz (arrays named after the inputs, leading sample axis), a folder of them, "
    "or 'random'. Without it, a model taking token ids calibrates on qcompile's own text when a "
    "tokenizer.json lies beside it, else on text sampled from the model or random tokens.",
)
@click.option(
    "--group-size",
    type=click.Choice(["32", "64", "128"]),
    default=None,
    help="Group size of block-quantized weights [default: 128].",
)
@click.option(
    "--calib-method",
    type=click.Choice(["amax", "percentile"]),
    default=None,
    help="Activation range [default: amax].",
)
@click.option(
    "--algorithm",
    default=None,
    help="Weight algorithm: rtn, hqq, gptq, awq, smoothquant, llmfp4, fpsearch [default: rtn].",
)
@click.option(
    "--lorc",
    "lorc_rank",
    type=click.IntRange(min=0),
    default=None,
    help="LoRC: add a rank-R correction of each weight's error (ZeroQuant-V2; 8 is typical).",
)
@click.option(
    "--lkd",
    "lkd_steps",
    type=click.IntRange(min=0),
    default=None,
    help="ZeroQuant LKD: tune each layer for STEPS steps to match its float output (needs PyTorch).",
)
@click.option(
    "--int4-plugin",
    is_flag=True,
    default=None,
    help="Emit INT4 layers as qcompile's plugins instead of Q/DQ: w4a16 -> QcW4A16Gemm, w4a8 -> "
    "QcW4A8Gemm (M2 scales).",
)
@click.option(
    "--target-arch",
    default=None,
    metavar="ARCH",
    help="GPUs the plugin nodes are packed for: any, or sm90 (Hopper only: QcW4A16Gemm weights in the "
    "order of the sm_90a CUTLASS kernel where it takes them) [default: any].",
)
@click.option(
    "--asymmetric",
    is_flag=True,
    default=None,
    help="INT4 weights as UINT4 with zero points (onnxruntime runs them; TensorRT needs symmetric).",
)
@click.option(
    "--offsets",
    is_flag=True,
    default=None,
    help="Asymmetric weights TensorRT can run: each scale group spans the format's grid from its "
    "min to its max, plus a float16 offset added by a side branch.",
)
@click.option(
    "--exclude", multiple=True, help="Leave a layer unquantized: exact node name or 're:REGEX' (repeatable)."
)
@click.option(
    "--override", multiple=True, help="NAME_OR_re:PATTERN=PRECISION, e.g. 're:.*lm_head.*=fp16' (repeatable)."
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Report JSON path [default: OUTPUT with .report.json].",
)
@click.option(
    "--sequential",
    is_flag=True,
    default=None,
    help="Calibrate each block on the outputs of the blocks before it with their weights already"
    " quantized (GPTQ's and LKD's setting).",
)
@click.option(
    "--verify/--no-verify",
    default=None,
    help="Run both models with onnxruntime for the report's accuracy [default: verify].",
)
@click.option(
    "--verify-timeout",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Stop verification after this long; the report then says so and has no accuracy figures"
    f" (0: no limit) [default: {VERIFY_SECONDS:g}].",
)
@click.option(
    "--engine",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also build a TensorRT engine (needs TensorRT).",
)
@click.option(
    "--shapes",
    multiple=True,
    help="With --engine: optimization profile of a dynamic input, NAME:MIN,OPT,MAX (dims like 1x16; "
    "repeatable).",
)
@click.option(
    "--avg-bits",
    type=float,
    default=None,
    help="--precision auto: average bits per weight, scales included (e.g. 4.5).",
)
@click.option(
    "--formats",
    default=None,
    help="--precision auto: candidate weight formats [default: int4,fp4,fp6,int8,fp8,fp16].",
)
@click.option(
    "--sensitivity",
    type=click.Choice(["lim", "zd", "hessian", "measured"]),
    default=None,
    help="--precision auto: layer sensitivity method [default: lim].",
)
@click.option(
    "--sensitivity-samples",
    type=click.IntRange(min=1),
    default=None,
    help="Calibration samples for --sensitivity measured [default: 4].",
)
@click.option(
    "--error-metric",
    type=click.Choice(["auto", "cosine", "mse", "kl"]),
    default=None,
    help="--precision auto: model-output error of --sensitivity measured and the guard; auto = "
    "KL divergence on outputs named like logits, 1 - cosine on the others [default: auto].",
)
@click.option(
    "--sweep",
    default=None,
    help="--precision auto: budgets for an accuracy-vs-bits curve, e.g. 4.25,4.5,5,6,8.",
)
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="--precision auto: use this plan JSON (skips the search).",
)
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="--precision auto: also write the figures as PNG files (and an index.html) into this "
    "folder; OUT.report.html holds them already.",
)
@click.option(
    "--guard/--no-guard",
    default=None,
    help="--precision auto: measure the proxy plan against the uniform plans that fit the budget"
    " and keep the best [default: guard].",
)
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--print-python", is_flag=True, help="Print the equivalent Python call and exit.")
@click.option(
    "-q", "--quiet", is_flag=True, help="Only errors and the final table: no progress, no log lines."
)
@click.option(
    "-v", "--verbose", count=True, help="Also the libraries' messages (onnx-ir, onnxruntime, warnings)."
)
def compile_command(
    model,
    precision,
    recipe_file,
    output,
    calib,
    group_size,
    calib_method,
    algorithm,
    lorc_rank,
    lkd_steps,
    int4_plugin,
    target_arch,
    asymmetric,
    offsets,
    exclude,
    override,
    report_path,
    sequential,
    verify,
    verify_timeout,
    engine,
    shapes,
    avg_bits,
    formats,
    sensitivity,
    sensitivity_samples,
    error_metric,
    sweep,
    plan_path,
    report_dir,
    guard,
    force,
    print_python,
    quiet,
    verbose,
):
    """Quantize MODEL and report its accuracy against the original."""
    progress = console.configure(quiet=quiet, verbose=verbose)
    try:
        from qcompile import recipe_file as rf
        from qcompile.outputs import check_path, sidecar

        settings = rf.merge(
            rf.read(recipe_file) if recipe_file else None,
            {
                "precision": precision,
                "calib_method": calib_method,
                "algorithm": algorithm,
                "lorc_rank": lorc_rank,
                "lkd_steps": lkd_steps,
                "int4_plugin": int4_plugin,
                "target_arch": target_arch,
                "asymmetric": asymmetric,
                "offsets": offsets,
                "group_size": int(group_size) if group_size else None,
                "exclude": list(exclude),
                "overrides": rf.parse_overrides(override),
            },
            {
                "avg_bits": avg_bits,
                "formats": formats,
                "sensitivity": sensitivity,
                "sensitivity_samples": sensitivity_samples,
                "error_metric": error_metric,
                "sweep": sweep,
                "plan": plan_path,
                "guard": guard,
            },
            {
                "calib": calib,
                "verify": verify,
                "verify_timeout": verify_timeout,
                "sequential": sequential,
                "shapes": list(shapes) or None,
            },
        )
        output = output or sidecar(model, ".q.onnx")
        report_path = report_path or sidecar(output, ".report.json")
        if engine is not None:
            check_path(engine, [model, output], force)
        shapes = _parse_shapes(settings.run["shapes"])
        code = (
            _compile_auto(model, settings, output, report_path, report_dir, force, progress, print_python)
            if settings.is_auto
            else _compile_uniform(model, settings, output, report_path, force, progress, print_python)
        )
        if print_python:
            from qcompile.python_call import engine_call

            click.echo(code + (engine_call(output, engine, shapes) if engine is not None else ""), nl=False)
        elif engine is not None:
            _build_engine(output, engine, force, shapes)
    except QCompileError as exc:
        _fail(exc)
    finally:
        if progress is not None:
            progress.close()


def _generated_hint(model, settings) -> tuple[str | None, int]:
    """Without data, what qcompile will generate for the model (synthetic_calibration.generated_kind)
    and how many weights its GEMMs hold (a hint for the measured default only: a model that does not
    load is refused by compile()'s validation)."""
    import onnx_ir as ir

    from qcompile.defaults import WITHOUT_DATA_GENERATED
    from qcompile.synthetic_calibration import gemm_weights, generated_kind

    precision = settings.recipe.get("precision")
    if (
        settings.run["calib"] is not None
        or not isinstance(precision, str)
        or not any(precision in presets for presets in WITHOUT_DATA_GENERATED.values())
    ):
        return None, 0
    try:
        loaded = ir.load(model)  # weights stay on disk: ir.load reads them lazily
        return generated_kind(loaded, Path(model).parent), gemm_weights(loaded)
    except Exception:  # noqa: BLE001 - validation reports it with its one-line error
        return None, 0


def _compile_uniform(model, settings, output, report_path, force, progress, print_python) -> str:
    """One preset for every layer (with overrides); returns the Python code when only printing it."""
    from qcompile.defaults import measured_default
    from qcompile.recipe import Recipe

    fields, note = measured_default(settings.recipe, settings.run["calib"], *_generated_hint(model, settings))
    if note:
        logger.debug(note)  # the recipe in the report says which algorithm ran
    recipe, run = Recipe.from_dict(fields), settings.run
    if print_python:
        from qcompile.python_call import compile_call

        return compile_call(model, recipe, run, output, report_path, force)
    import qcompile

    logger.debug("qcompile %s: %s -> %s (%s)", qcompile.__version__, model, output, recipe.precision)
    artifacts = qcompile.compile(
        model,
        recipe,
        run["calib"],
        output=output,
        report_path=report_path,
        force=force,
        progress=progress,
        verify=run["verify"],
        sequential=run["sequential"],
        verify_timeout=run["verify_timeout"],
    )
    click.echo(artifacts.report.table())
    for path in artifacts.files:
        logger.info("wrote %s", path)
    return ""


def _compile_auto(model, settings, output, report_path, report_dir, force, progress, print_python) -> str:
    """`--precision auto`: overrides (formats or presets, from the file and the flags) go to the planner;
    returns the Python code when only printing it."""
    from qcompile import recipe_file as rf
    from qcompile.mixed import run_auto
    from qcompile.recipe import Recipe

    fields = {k: v for k, v in settings.recipe.items() if k not in ("precision", "overrides")}
    overrides = settings.recipe.get("overrides", {})
    overrides = list(overrides.items() if isinstance(overrides, dict) else overrides)
    recipe, auto = Recipe.from_dict(fields), settings.auto
    options = {
        "avg_bits": auto["avg_bits"],
        "formats": auto["formats"],
        "method": auto["sensitivity"],
        "sensitivity_samples": auto["sensitivity_samples"],
        "error_metric": auto["error_metric"],
        "sweep": rf.budgets(auto["sweep"]),
        "plan_path": auto["plan"],
        "report_dir": report_dir,
        "guard": auto["guard"],
    }
    if print_python:
        from qcompile.python_call import auto_call

        return auto_call(model, settings.run["calib"], recipe, overrides, output, report_path, force, options)
    artifacts, plan, figures = run_auto(
        model,
        settings.run["calib"],
        overrides=overrides,
        output=output,
        force=force,
        progress=progress,
        recipe=recipe,
        report_path=report_path,
        **options,
    )
    click.echo(plan.table())
    click.echo(artifacts.report.table())
    for path in [*artifacts.files, *figures]:
        logger.info("wrote %s", path)
    return ""


def _build_engine(
    onnx_path: Path, engine: Path, force: bool, shapes: dict, timing_cache: Path | None = None
) -> None:
    from qcompile.model_io import check_output_path
    from qcompile.trt_build import build_engine, find_plugin_library

    check_output_path(engine, [onnx_path], force)
    build_engine(
        onnx_path,
        engine,
        plugin_library=find_plugin_library(),
        shapes=shapes or None,
        timing_cache=timing_cache,
        progress=lambda line: click.echo(f"  {line}", err=True),
    )
    logger.info("wrote %s", engine)


def _parse_shapes(items) -> dict:
    """`NAME:MIN,OPT,MAX` with dims like 1x16 -> {NAME: ((1, 16), ...)}."""
    shapes = {}
    for item in items or ():
        name, sep, triple = item.rpartition(":")
        dims = triple.split(",")
        try:
            if not sep or len(dims) != 3:
                raise ValueError
            shapes[name] = tuple(tuple(int(d) for d in shape.split("x")) for shape in dims)
        except ValueError:
            raise QCompileError(f"--shapes {item!r} is not NAME:MIN,OPT,MAX (dims like 1x16)") from None
    return shapes


@main.command("check")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
def check_command(model):
    """Check a quantized MODEL against TensorRT's explicit-quantization rules (no TensorRT needed)."""
    try:
        from qcompile.model_io import load_model
        from qcompile.passes.trt_preflight import check_tensorrt_rules

        ir_model, _ = load_model(model, upgrade=False)
        violations = check_tensorrt_rules(ir_model)
    except QCompileError as exc:
        _fail(exc)
    for v in violations:
        click.echo(f"{v.node}: [{v.rule}] {v.message}")
    if violations:
        click.echo(f"{len(violations)} violation(s)", err=True)
        sys.exit(2)
    click.echo(f"{model}: passes TensorRT pre-flight checks")


@main.command("build")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--engine",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Engine path [default: MODEL with .engine].",
)
@click.option(
    "--shapes",
    multiple=True,
    help="Optimization profile of a dynamic input, NAME:MIN,OPT,MAX (dims like 1x16; repeatable).",
)
@click.option(
    "--timing-cache",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TensorRT's tactic timing cache: read if it exists, updated after the build (faster rebuilds).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing engine.")
def build_command(model, engine, shapes, timing_cache, force):
    """Build a TensorRT engine from a quantized MODEL (needs TensorRT and the plugin library)."""
    console.configure()
    try:
        if not model.is_file():
            raise QCompileError(f"model not found: {model}")
        engine = engine or model.with_suffix(".engine")
        _build_engine(model, engine, force, _parse_shapes(shapes), timing_cache)
    except QCompileError as exc:
        _fail(exc)


@main.command("compare")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--engine",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The engine built from MODEL.",
)
@click.option(
    "--calib",
    default="random",
    show_default=True,
    help="Samples: a calibration .npz, a folder of them, or 'random'.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="How many samples to compare on.",
)
@click.option(
    "--plugins",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The plugin library [default: $QC_PLUGIN_LIB or the build folders].",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The report whose per-output tolerances apply [default: MODEL's .report.json beside it].",
)
@click.option(
    "--rtol",
    type=click.FloatRange(min=0),
    default=None,
    help="Relative tolerance per output element [default: the report's, else 0.01].",
)
@click.option(
    "--atol",
    type=click.FloatRange(min=0),
    default=None,
    help="Absolute tolerance per element [default: the report's (0.01 x the output's RMS), else 0.01].",
)
def compare_command(model, engine, calib, samples, plugins, report, rtol, atol):
    """Run the TensorRT ENGINE and onnxruntime on MODEL's standard-ONNX lowering (Polygraphy); exit 1 if they
    differ."""
    console.configure()
    from qcompile.trt_compare import compare_engine

    try:
        ok = compare_engine(
            model,
            engine,
            calib=calib,
            samples=samples,
            plugin_library=plugins,
            report=report,
            rtol=rtol,
            atol=atol,
        )
    except QCompileError as exc:
        _fail(exc)
    click.echo(f"{engine}: {'agrees with' if ok else 'DIFFERS from'} onnxruntime on {model}")
    sys.exit(0 if ok else 1)


cli_tools.register(main)

if __name__ == "__main__":
    main()

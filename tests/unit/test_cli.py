"""The command line: success, and every kind of bad input gives one line, exit code 2 and no file."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import tiny_models
from qcompile.cli import main


@pytest.fixture
def workdir(tmp_path):
    onnx.save(tiny_models.mlp(), tmp_path / "mlp.onnx")
    np.savez(tmp_path / "calib.npz", **tiny_models.calibration())
    return tmp_path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _outputs(folder):
    return sorted(
        p.name
        for p in folder.iterdir()
        if p.name not in ("mlp.onnx", "calib.npz", "bad.npz", "junk.onnx", "trunc.onnx")
    )


def test_compile_writes_model_report_and_recipe(workdir):
    result = run(workdir / "mlp.onnx", "--precision", "w8a8", "--calib", workdir / "calib.npz", "-q")
    assert result.exit_code == 0, result.output
    assert "cosine mean" in result.output
    assert _outputs(workdir) == ["mlp.q.onnx", "mlp.q.recipe.json", "mlp.q.report.html", "mlp.q.report.json"]


def test_existing_output_needs_force(workdir):
    assert run(workdir / "mlp.onnx", "-p", "w4a16", "-q").exit_code == 0
    result = run(workdir / "mlp.onnx", "-p", "w4a16", "-q")
    assert result.exit_code == 2 and "--force" in result.stderr
    assert run(workdir / "mlp.onnx", "-p", "w4a16", "-q", "--force").exit_code == 0


def _bad_calib(folder, **arrays):
    np.savez(folder / "bad.npz", **arrays)
    return folder / "bad.npz"


@pytest.mark.parametrize(
    "case, expect",
    [
        ("missing", "model not found"),
        ("not_onnx", "not a readable ONNX model"),
        ("truncated", "not a readable ONNX model"),
        ("no_layers", "no quantizable layer"),
        ("unknown_preset", "valid: w8a8, fp8, w4a16, w4a8"),
        ("calib_name", "is not a model input"),
        ("calib_shape", "input 'x': calibration shape [4, 3, 7], expected [samples, ?, 256]"),
        ("calib_dtype", "input 'x': calibration dtype float64, model expects float32"),
        ("same_output", "is an input file"),
        ("no_calib", "cannot generate calibration data"),
        ("bad_override", "is not NAME=PRECISION"),
    ],
)
def test_bad_input(workdir, case, expect):
    model = workdir / "mlp.onnx"
    args = [model, "-p", "w8a8", "--calib", workdir / "calib.npz"]
    if case == "missing":
        args[0] = workdir / "nope.onnx"
    elif case == "not_onnx":
        (workdir / "junk.onnx").write_text("hello, I am not a model")
        args[0] = workdir / "junk.onnx"
    elif case == "truncated":
        (workdir / "trunc.onnx").write_bytes(model.read_bytes()[:300])
        args[0] = workdir / "trunc.onnx"
    elif case == "no_layers":
        onnx.save(tiny_models.no_weights(), workdir / "junk.onnx")
        args = [workdir / "junk.onnx", "-p", "w4a16"]
    elif case == "unknown_preset":
        args[2] = "w3a7"
    elif case == "calib_name":
        args[4] = _bad_calib(workdir, y=np.zeros((4, 2, 256), np.float32))
    elif case == "calib_shape":
        args[4] = _bad_calib(workdir, x=np.zeros((4, 3, 7), np.float32))
    elif case == "calib_dtype":
        args[4] = _bad_calib(workdir, x=np.zeros((4, 2, 256), np.float64))
    elif case == "same_output":
        args += ["-o", model]
    elif case == "no_calib":
        args = args[:3]
    elif case == "bad_override":
        args += ["--override", "fc1"]
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert expect in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output
    assert _outputs(workdir) == []


def test_console_script_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "qcompile.cli", str(tmp_path / "none.onnx")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip().splitlines()[-1] == f"qcompile: error: model not found: {tmp_path / 'none.onnx'}"
    )
    assert "Traceback" not in proc.stderr


def test_a_console_whose_reader_left_does_not_stop_the_compile(workdir):
    """`qcompile ... 2>&1 | head -1`: every write after the first line meets a closed pipe."""
    read, write = os.pipe()
    os.close(read)
    args = [workdir / "mlp.onnx", "-p", "w8a8", "--calib", workdir / "calib.npz"]
    proc = subprocess.run([sys.executable, "-m", "qcompile.cli", *map(str, args)], stdout=write, stderr=write)
    os.close(write)
    assert proc.returncode == 0
    assert _outputs(workdir) == ["mlp.q.onnx", "mlp.q.recipe.json", "mlp.q.report.html", "mlp.q.report.json"]


def test_print_python_is_runnable(workdir):
    result = run(workdir / "mlp.onnx", "-p", "w4a16", "--group-size", "64", "--print-python")
    assert result.exit_code == 0
    namespace = {}
    exec(compile(result.output, "<generated>", "exec"), namespace)  # noqa: S102 - our own output
    assert (workdir / "mlp.q.onnx").is_file()


def test_engine_without_tensorrt_fails_cleanly_but_keeps_outputs(workdir):
    pytest.importorskip("numpy")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed: this test is about its absence")
    except ImportError:
        pass
    result = run(workdir / "mlp.onnx", "-p", "w4a16", "-q", "--engine", workdir / "mlp.engine")
    assert result.exit_code == 2, result.output
    assert "TensorRT is not installed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert _outputs(workdir) == ["mlp.q.onnx", "mlp.q.recipe.json", "mlp.q.report.html", "mlp.q.report.json"]


def test_check_command_flags_a_broken_graph(workdir):
    assert (
        run(
            workdir / "mlp.onnx", "-p", "w8a8", "--algorithm", "rtn", "--calib", workdir / "calib.npz", "-q"
        ).exit_code
        == 0
    )
    ok = run("check", workdir / "mlp.q.onnx")
    assert ok.exit_code == 0 and "passes" in ok.output
    model = onnx.load(str(workdir / "mlp.q.onnx"))
    for init in model.graph.initializer:
        if init.name.endswith("_scale") and init.dims:
            init.CopyFrom(onnx.numpy_helper.from_array(-onnx.numpy_helper.to_array(init), init.name))
            break
    onnx.save(model, workdir / "broken.onnx")
    bad = run("check", workdir / "broken.onnx")
    assert bad.exit_code == 2 and "[scale]" in bad.output, bad.output


def test_auto_precision_from_the_command_line(workdir):
    result = run(
        workdir / "mlp.onnx",
        "-p",
        "auto",
        "--avg-bits",
        "6",
        "--sensitivity",
        "hessian",
        "--calib",
        workdir / "calib.npz",
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert "average bits per weight" in result.output
    assert (workdir / "mlp.q.plan.json").is_file() and not (workdir / "mlp.q.mixed").exists()
    page = (workdir / "mlp.q.report.html").read_text()
    assert page.count("data:image/png;base64,") == 2  # depth figure and the plan's format map
    too_low = run(
        workdir / "mlp.onnx", "-p", "auto", "--avg-bits", "2", "--calib", workdir / "calib.npz", "--force"
    )
    assert too_low.exit_code == 2 and "minimum" in too_low.stderr, too_low.stderr


def test_build_command_checks_its_arguments(workdir):
    assert run("build", workdir / "nope.onnx").exit_code == 2
    bad = run("build", workdir / "mlp.onnx", "--shapes", "x:1x256")
    assert bad.exit_code == 2 and "NAME:MIN,OPT,MAX" in bad.stderr, bad.stderr


@pytest.mark.parametrize("args", [["--no-such-option"], ["-p"], ["compile"], ["--group-size", "7"]])
def test_usage_errors_are_one_line_exit_2(workdir, args):
    result = run(*([workdir / "mlp.onnx"] if args != ["compile"] else []), *args)
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("qcompile: error:"), (
        result.stderr
    )
    assert _outputs(workdir) == []


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("wrong_type.json", b'{"precision": 5}', "is not a string"),
        ("number.json", b'{"group_size": "abc"}', "is not a number"),
        ("list.json", b'{"exclude": 7}', "is not a list of strings"),
        ("pairs.json", b'{"overrides": [1, 2]}', "NAME = PRECISION"),
        ("latin1.json", b'\xff\xfe{"precision": "w8a8"}', "not UTF-8"),
        ("deep.json", b"[" * 100000 + b"]" * 100000, "nested too deeply"),
        ("deep.toml", b"a = " + b"[" * 100000 + b"]" * 100000, "nested too deeply"),
        ("toml_list.toml", b"precision = [1, 2]\n", "is not a string"),
    ],
)
def test_bad_recipe_files_are_one_line_exit_2(workdir, name, content, message):
    (workdir / name).write_bytes(content)
    result = run(workdir / "mlp.onnx", "--recipe", workdir / name, "-q")
    assert result.exit_code == 2, (result.output, result.exception)
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr
    assert _outputs(workdir) == [name]

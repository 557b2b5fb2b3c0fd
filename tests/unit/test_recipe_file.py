"""One recipe for every option: each `qcompile compile` option that changes what is computed has a
recipe-file key; the file's values are defaults that flags override; "none" values have a TOML
spelling; --print-python works in every mode."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import tiny_models
from qcompile import recipe_file
from qcompile.cli import compile_command, main
from qcompile.recipe import Recipe

# where to write, how to print: not part of what is computed, so not recipe keys
NOT_RECIPE = {
    "model",
    "recipe_file",
    "output",
    "report_path",
    "report_dir",
    "engine",
    "force",
    "print_python",
    "quiet",
    "verbose",
}
FLAG_TO_KEY = {"override": "overrides", "plan_path": "plan"}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def workdir(tmp_path):
    onnx.save(tiny_models.mlp(), tmp_path / "mlp.onnx")
    np.savez(tmp_path / "calib.npz", **tiny_models.calibration())
    return tmp_path


def _recipe(folder, text, name="r.toml"):
    (folder / name).write_text(text)
    return folder / name


def _python(result) -> str:
    assert result.exit_code == 0, result.output
    return result.output


def test_every_option_has_a_recipe_key():
    keys = (
        {f.name for f in Recipe.__dataclass_fields__.values()}
        | set(recipe_file.AUTO_KEYS)
        | set(recipe_file.RUN_KEYS)
    )
    options = {p.name for p in compile_command.params} - NOT_RECIPE
    assert {FLAG_TO_KEY.get(o, o) for o in options} - keys == set()


def test_cli_algorithm_wins_and_the_file_options_follow_it(workdir):
    # the file names no algorithm: its options belong to the one chosen on the command line
    recipe = _recipe(workdir, 'precision = "w8a8"\nalgorithm_options = {alpha = "search"}\n')
    result = run(
        workdir / "mlp.onnx",
        "--recipe",
        recipe,
        "--algorithm",
        "smoothquant",
        "--calib",
        workdir / "calib.npz",
        "-q",
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((workdir / "mlp.q.recipe.json").read_text())
    assert saved["algorithm"] == "smoothquant" and saved["algorithm_options"] == {"alpha": "search"}
    report = json.loads((workdir / "mlp.q.report.json").read_text())
    alphas = [layer["details"]["smoothquant"]["alpha"] for layer in report["layers"]]
    assert any(a != 0.5 for a in alphas), alphas  # searched (fc1 picks 0.65 here), not the fixed default


def test_none_values_have_a_spelling():
    from qcompile.algorithms import make_options

    assert make_options("smoothquant", {"alpha": "search"}).alpha is None
    assert Recipe(scale_constraint="preset").scale_constraint is None


def test_options_of_the_files_algorithm_do_not_leak_into_another(workdir):
    recipe = _recipe(
        workdir, 'precision = "w4a16"\nalgorithm = "gptq"\nalgorithm_options = {act_order = true}\n'
    )
    code = _python(run(workdir / "mlp.onnx", "--recipe", recipe, "--algorithm", "awq", "--print-python"))
    assert "algorithm='awq'" in code and "algorithm_options={}" in code
    kept = _python(run(workdir / "mlp.onnx", "--recipe", recipe, "--print-python"))
    assert "algorithm='gptq'" in kept and "'act_order': True" in kept


def test_flags_override_file_values_and_extend_its_lists(workdir):
    recipe = _recipe(
        workdir,
        'precision = "w4a16"\ngroup_size = 64\nexclude = ["fc2"]\n'
        'scale_constraint = "preset"\n[run]\nverify = false\ncalib = "calib.npz"\n',
    )
    code = _python(run(workdir / "mlp.onnx", "--recipe", recipe, "--print-python"))
    assert "group_size=64" in code and "verify=False" in code and "scale_constraint=None" in code
    assert repr(str(workdir / "calib.npz")) in code  # relative to the recipe file's folder
    code = _python(
        run(
            workdir / "mlp.onnx",
            "--recipe",
            recipe,
            "--group-size",
            "32",
            "--verify",
            "--exclude",
            "fc1",
            "--calib",
            "random",
            "--print-python",
        )
    )
    assert "group_size=32" in code and "verify=" not in code and "exclude=['fc2', 'fc1']" in code
    assert "'random'" in code


def test_auto_section_and_flags(workdir):
    recipe = _recipe(
        workdir,
        'precision = "auto"\n[auto]\navg_bits = 6\nsensitivity = "hessian"\n'
        'formats = ["int4", "int8", "fp16"]\nsweep = [5, 8]\nguard = false\n'
        '[overrides]\nfc2 = "int8"\n',
    )
    code = _python(
        run(
            workdir / "mlp.onnx",
            "--recipe",
            recipe,
            "--calib",
            workdir / "calib.npz",
            "--sensitivity",
            "zd",
            "--print-python",
        )
    )
    assert "avg_bits=6" in code and "method='zd'" in code and "guard=False" in code
    assert "sweep=(5.0, 8.0)" in code and "overrides=[('fc2', 'int8')]" in code
    assert "formats=['int4', 'int8', 'fp16']" in code


def test_print_python_in_auto_mode_runs(workdir):
    code = _python(
        run(
            workdir / "mlp.onnx",
            "-p",
            "auto",
            "--avg-bits",
            "6",
            "--calib",
            workdir / "calib.npz",
            "--no-guard",
            "--print-python",
        )
    )
    assert not (workdir / "mlp.q.onnx").exists()
    exec(compile(code, "<generated>", "exec"), {})  # noqa: S102 - our own output
    assert (workdir / "mlp.q.onnx").is_file() and (workdir / "mlp.q.plan.json").is_file()


def test_print_python_with_an_engine(workdir):
    code = _python(
        run(
            workdir / "mlp.onnx",
            "-p",
            "w4a16",
            "--engine",
            workdir / "m.engine",
            "--shapes",
            "x:1x256,4x256,8x256",
            "--print-python",
        )
    )
    assert "build_engine(" in code and "'x': ((1, 256), (4, 256), (8, 256))" in code
    compile(code, "<generated>", "exec")  # valid Python


@pytest.mark.parametrize(
    "text, expect",
    [
        ("[auto]\nbudget = 4\n", "unknown [auto] keys ['budget']"),
        ('[run]\ncalibration = "c.npz"\n', "unknown [run] keys ['calibration']"),
        ('precison = "w8a8"\n', "unknown recipe keys ['precison']"),
        (
            'algorithm = "smoothquant"\nalgorithm_options = {alpha = "seek"}\n',
            "alpha must be in [0, 1] or 'search'",
        ),
    ],
)
def test_bad_recipe_files(workdir, text, expect):
    result = run(workdir / "mlp.onnx", "--recipe", _recipe(workdir, text), "--print-python")
    assert result.exit_code == 2 and expect in result.stderr, result.stderr


def test_verify_timeout_from_flag_file_and_print_python(workdir):
    code = _python(run(workdir / "mlp.onnx", "-p", "w4a16", "--verify-timeout", "30", "--print-python"))
    assert "verify_timeout=30.0" in code
    code = _python(run(workdir / "mlp.onnx", "-p", "w4a16", "--verify-timeout", "0", "--print-python"))
    assert "verify_timeout=None" in code  # 0 means no limit
    assert "verify_timeout=" not in _python(run(workdir / "mlp.onnx", "-p", "w4a16", "--print-python"))
    bad = _recipe(workdir, '[run]\nverify_timeout = "soon"\n')
    result = run(workdir / "mlp.onnx", "--recipe", bad, "-p", "w4a16")
    assert result.exit_code == 2 and "verify_timeout must be a number of seconds" in result.output
    assert "Traceback" not in result.output and not (workdir / "mlp.q.onnx").exists()


def test_target_arch_from_flag_file_and_print_python(workdir):
    """--target-arch / target_arch: validated with one line (exit 2), written by --print-python and into
    the saved recipe; "sm90" packs the QcW4A16Gemm weights the sm_90a path takes in layout 3."""
    bad = run(workdir / "mlp.onnx", "-p", "w4a16", "--target-arch", "sm80", "--print-python")
    assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "unknown target arch 'sm80'; known: any, sm90" in bad.stderr
    bad_file = run(workdir / "mlp.onnx", "--recipe", _recipe(workdir, "target_arch = 90\n"), "--print-python")
    assert bad_file.exit_code == 2 and "recipe key 'target_arch'" in bad_file.stderr, bad_file.stderr
    assert "target_arch='any'" in _python(run(workdir / "mlp.onnx", "-p", "w4a16", "--print-python"))
    code = _python(run(workdir / "mlp.onnx", "-p", "w4a16", "--target-arch", "sm90", "--print-python"))
    assert "target_arch='sm90'" in code
    code = _python(
        run(workdir / "mlp.onnx", "--recipe", _recipe(workdir, 'target_arch = "sm90"\n'), "--print-python")
    )
    assert "target_arch='sm90'" in code
    args = ["-p", "w4a16", "--int4-plugin", "--group-size", "64", "--calib", workdir / "calib.npz"]
    done = run(workdir / "mlp.onnx", *args, "--target-arch", "sm90", "--no-verify", "-q")
    assert done.exit_code == 0, done.output
    assert json.loads((workdir / "mlp.q.recipe.json").read_text())["target_arch"] == "sm90"
    nodes = [n for n in onnx.load(workdir / "mlp.q.onnx").graph.node if n.op_type == "QcW4A16Gemm"]
    layouts = {a.i for n in nodes for a in n.attribute if a.name == "layout_version"}
    assert len(nodes) == 2 and layouts == {3}
    check = run("check", workdir / "mlp.q.onnx")
    assert check.exit_code == 0, check.output
    args[4] = "32"  # the sm_90a path declines groups of 32: int4_v2, and the report says why
    done = run(workdir / "mlp.onnx", *args, "--target-arch", "sm90", "--no-verify", "-q", "--force")
    assert done.exit_code == 0, done.output
    layers = json.loads((workdir / "mlp.q.report.json").read_text())["layers"]
    assert {layer["details"]["layout"] for layer in layers} == {
        "layout_version 2: int4_sm90 layout: group size 32 is not one of [64, 128]"
    }

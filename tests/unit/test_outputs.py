"""Every output path is decided and checked before any work; staged files appear only on success."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest

import qcompile
import tiny_models
from qcompile.errors import OutputError
from qcompile.outputs import Staging, plan_outputs, sidecar


def test_sidecar_names_follow_out():
    paths = plan_outputs("/tmp/m.q.onnx")
    assert [p.name for p in paths.all()] == [
        "m.q.onnx",
        "m.q.onnx.data",
        "m.q.recipe.json",
        "m.q.report.json",
        "m.q.report.html",
        "m.q.plan.json",
    ]
    assert sidecar("x/model.bin", ".recipe.json").name == "model.bin.recipe.json"


@pytest.fixture
def folder(tmp_path):
    onnx.save(
        tiny_models.mlp(),
        tmp_path / "m.onnx",
        save_as_external_data=True,
        location="m.onnx.data",
        size_threshold=0,
    )
    return tmp_path


@pytest.mark.parametrize(
    "case, message",
    [
        ("report_is_output", "the same file"),
        ("report_is_input", "is an input file"),
        ("output_is_input_data", "is an input file"),
        ("report_is_recipe", "the same file"),
        ("output_parent_is_file", "is not a folder"),
        ("report_folder_missing", "does not exist"),
        ("recipe_exists", "--force"),
    ],
)
def test_refused_before_any_work(folder, case, message):
    model, out = folder / "m.onnx", folder / "q.onnx"
    report = None
    if case == "report_is_output":
        report = out
    elif case == "report_is_input":
        report = model
    elif case == "output_is_input_data":
        out = folder / "m.onnx.data"
    elif case == "report_is_recipe":
        report = folder / "q.recipe.json"
    elif case == "output_parent_is_file":
        out = folder / "m.onnx" / "q.onnx"
    elif case == "report_folder_missing":
        report = folder / "nowhere" / "r.json"
    elif case == "recipe_exists":
        (folder / "q.recipe.json").write_text("{}")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(OutputError, match=message):
        qcompile.compile(model, "w4a16", None, output=out, report_path=report, force=case != "recipe_exists")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_force_never_overwrites_an_input(folder):
    with pytest.raises(OutputError, match="is an input file"):
        qcompile.compile(
            folder / "m.onnx",
            "w4a16",
            None,
            output=folder / "q.onnx",
            report_path=folder / "m.onnx",
            force=True,
        )


def test_hard_link_to_the_input_is_an_input(folder):
    os.link(folder / "m.onnx", folder / "alias.onnx")
    with pytest.raises(OutputError, match="is an input file"):
        plan_outputs(folder / "alias.onnx", inputs=[folder / "m.onnx"], force=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_refused(folder):
    ro = folder / "ro"
    ro.mkdir(mode=0o500)
    with pytest.raises(OutputError, match="not writable"):
        plan_outputs(ro / "q.onnx")


def test_failure_during_the_compile_leaves_nothing(folder, monkeypatch):
    """A failure after the model was staged (here: in verification) leaves no file and no folder."""
    from qcompile import pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("verification exploded")

    monkeypatch.setattr(pipeline, "_verify", broken)
    before = sorted(os.listdir(folder))
    with pytest.raises(RuntimeError):
        qcompile.compile(
            folder / "m.onnx", "w4a16", None, output=folder / "q.onnx", report_path=folder / "q.json"
        )
    assert sorted(os.listdir(folder)) == before


def test_interrupt_leaves_nothing(folder, monkeypatch):
    from qcompile import pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_verify", interrupted)
    before = sorted(os.listdir(folder))
    with pytest.raises(KeyboardInterrupt):
        qcompile.compile(folder / "m.onnx", "w4a16", None, output=folder / "q.onnx")
    assert sorted(os.listdir(folder)) == before


def test_planted_symlink_is_not_followed(tmp_path):
    """A symlink planted where a sidecar goes is replaced, not written through (with --force)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    onnx.save(tiny_models.mlp(), tmp_path / "m.onnx")
    os.symlink(victim, tmp_path / "q.recipe.json")
    qcompile.compile(tmp_path / "m.onnx", "w4a16", None, output=tmp_path / "q.onnx", force=True)
    assert victim.read_text() == "precious"
    assert not (tmp_path / "q.recipe.json").is_symlink()


def test_staging_commit_moves_data_before_graph_and_cleans_up(tmp_path, monkeypatch):
    order = []
    real_replace = os.replace
    monkeypatch.setattr(
        os, "replace", lambda src, dst: (order.append(os.path.basename(dst)), real_replace(src, dst))
    )
    with Staging() as staging:
        staging.temp_for(tmp_path / "a.onnx").write_bytes(b"graph")
        staging.temp_for(tmp_path / "a.onnx.data").write_bytes(b"data")
        staging.temp_for(tmp_path / "a.recipe.json").write_text("{}")
        assert [n.startswith(".a.onnx.") for n in os.listdir(tmp_path)] == [True]
        staging.commit()
    assert order[-1] == "a.onnx" and order.index("a.onnx.data") < order.index("a.onnx")
    assert sorted(os.listdir(tmp_path)) == ["a.onnx", "a.onnx.data", "a.recipe.json"]
    assert (tmp_path / "a.onnx.data").read_bytes() == b"data"


def test_staging_without_commit_removes_everything(tmp_path):
    with pytest.raises(ValueError):
        with Staging() as staging:
            staging.temp_for(tmp_path / "x.onnx").write_bytes(np.zeros(10).tobytes())
            raise ValueError
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("signum, code, line", [("SIGINT", 130, "interrupted"), ("SIGTERM", 2, "terminated")])
def test_signal_during_compile_exits_cleanly(tmp_path, monkeypatch, signum, code, line):
    """A signal while the staged model is verified: one line, the documented exit code, nothing written."""
    import signal

    from click.testing import CliRunner

    from qcompile import pipeline
    from qcompile.cli import main

    onnx.save(tiny_models.mlp(), tmp_path / "m.onnx")
    monkeypatch.setattr(pipeline, "_verify", lambda *a, **k: os.kill(os.getpid(), getattr(signal, signum)))
    before = signal.getsignal(signal.SIGTERM)
    result = CliRunner().invoke(main, [str(tmp_path / "m.onnx"), "-p", "w4a16", "-q"])
    assert result.exit_code == code, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and line in result.stderr, result.stderr
    assert os.listdir(tmp_path) == ["m.onnx"]
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_signal_during_the_renames_waits_for_the_last(tmp_path, monkeypatch, signum):
    """The signal lands between two renames: every output still arrives, none is left half-committed."""
    import signal

    real_replace = os.replace

    def replace_then_signal(src, dst):
        real_replace(src, dst)
        os.kill(os.getpid(), getattr(signal, signum))

    monkeypatch.setattr(os, "replace", replace_then_signal)
    before = signal.getsignal(signal.SIGINT)
    with Staging() as staging:
        staging.temp_for(tmp_path / "a.onnx").write_bytes(b"graph")
        staging.temp_for(tmp_path / "a.onnx.data").write_bytes(b"data")
        staging.commit()
    assert sorted(os.listdir(tmp_path)) == ["a.onnx", "a.onnx.data"]
    assert signal.getsignal(signal.SIGINT) is before


def _disk_full(*args, **kwargs):
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("streamed", [False, True])
def test_disk_full_while_saving_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, streamed):
    """The disk fills up half-way through the model's bytes (graph file or streamed external data)."""
    from click.testing import CliRunner

    from qcompile import pipeline, stream_save
    from qcompile.cli import main

    onnx.save(tiny_models.mlp(), tmp_path / "m.onnx")
    if streamed:
        monkeypatch.setattr(pipeline, "STREAM_BYTES", 0)
        real_write = stream_save._write_tensor
        written = []

        def write_then_fill(value, data, *args):
            if written:
                data.write(b"\0" * 100)
                _disk_full()
            written.append(real_write(value, data, *args))

        monkeypatch.setattr(stream_save, "_write_tensor", write_then_fill)
    else:
        real_save = pipeline.save_model

        def save_then_fill(model, out, **kwargs):
            staged = real_save(model, out, **kwargs)
            staged[0].write_bytes(staged[0].read_bytes()[:100])
            _disk_full()

        monkeypatch.setattr(pipeline, "save_model", save_then_fill)
    result = CliRunner().invoke(main, [str(tmp_path / "m.onnx"), "-p", "w4a16", "-q"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == ["qcompile: error: cannot write: No space left on device"]
    assert os.listdir(tmp_path) == ["m.onnx"]


def test_interrupt_after_the_outputs_were_written_says_they_are_kept(tmp_path, monkeypatch):
    """Ctrl-C while the report table is printed: the outputs are complete; the last line says so."""
    import signal

    from click.testing import CliRunner

    from qcompile.cli import main
    from qcompile.report import Report

    onnx.save(tiny_models.mlp(), tmp_path / "m.onnx")
    monkeypatch.setattr(Report, "table", lambda self: os.kill(os.getpid(), signal.SIGINT))
    result = CliRunner().invoke(main, [str(tmp_path / "m.onnx"), "-p", "w4a16", "--algorithm", "rtn", "-q"])
    assert result.exit_code == 130, result.output
    assert result.stderr.strip().splitlines() == [
        f"qcompile: interrupted; the outputs were complete before the stop and are kept (4 files, "
        f"{tmp_path / 'm.q.onnx'})"
    ]
    assert sorted(os.listdir(tmp_path)) == [
        "m.onnx",
        "m.q.onnx",
        "m.q.recipe.json",
        "m.q.report.html",
        "m.q.report.json",
    ]

"""What the CLI prints while it works: bars on a terminal, one line per finished stage elsewhere,
nothing with -q, and the libraries' log messages only with -v."""

from __future__ import annotations

import io
import logging

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import tiny_models
from qcompile import console
from qcompile.cli import main


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def _restore_logging():
    root, own = logging.getLogger(), logging.getLogger("qcompile")
    levels = root.level, own.level
    yield
    for h in [h for h in root.handlers if getattr(h, console._MARK, False)]:
        root.removeHandler(h)
    root.setLevel(levels[0])
    own.setLevel(levels[1])
    logging.captureWarnings(False)


def _drive(progress):
    for block in range(2):  # a stage that starts over (block-wise calibration)
        for i in range(4):
            progress("calibrate", i + 1, 4)
    for i in range(3):
        progress("quantize", i + 1, 3)


def test_terminal_gets_bars_with_rate_and_time_left():
    stream = _Terminal()
    progress = console.configure(stream=stream)
    _drive(progress)
    logging.getLogger("qcompile.pipeline").info("a line between bars")
    progress.close()
    text = stream.getvalue()
    assert "\r" in text and "calibrate" in text and "quantize" in text
    assert "3/3" in text and "it/s" in text and "<00:00" in text  # count, rate, time left
    assert "a line between bars" in text


def test_pipe_gets_one_line_per_finished_run():
    stream = io.StringIO()
    progress = console.configure(stream=stream)
    _drive(progress)
    lines = stream.getvalue().splitlines()
    stages = [line.split(" in ")[0].strip() for line in lines]
    assert stages == ["calibrate: 4/4", "calibrate: 4/4", "quantize: 3/3"]
    assert all(line.endswith("/s") for line in lines) and "\r" not in stream.getvalue()


def test_quiet_means_no_progress_and_no_info():
    stream = io.StringIO()
    assert console.configure(quiet=True, stream=stream) is None
    logging.getLogger("qcompile.pipeline").info("hidden")
    logging.getLogger("qcompile.pipeline").warning("shown")
    assert stream.getvalue() == "shown\n"


@pytest.mark.parametrize("verbose", [0, 1])
def test_library_messages_only_with_verbose(verbose):
    stream = io.StringIO()
    console.configure(verbose=verbose, stream=stream)
    logging.getLogger("onnx_ir.passes.common.unused_removal").info("Removed 13 unused nodes")
    logging.getLogger("qcompile.pipeline").info("own line")
    import warnings

    warnings.warn("a library warning", UserWarning, stacklevel=1)
    text = stream.getvalue()
    assert "own line" in text
    assert ("Removed 13 unused nodes" in text) == bool(verbose)
    assert ("a library warning" in text) == bool(verbose)


def test_cli_run_shows_stage_lines_and_no_library_messages(tmp_path):
    onnx.save(tiny_models.mlp(), tmp_path / "mlp.onnx")
    np.savez(tmp_path / "calib.npz", **tiny_models.calibration())
    args = [str(tmp_path / "mlp.onnx"), "-p", "w8a8", "--calib", str(tmp_path / "calib.npz")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "calibrate: " in result.stderr and "quantize: " in result.stderr and "verify: " in result.stderr
    assert "unused nodes" not in result.stderr and "[onnx" not in result.stderr
    quiet = CliRunner().invoke(main, [*args, "-q", "--force"])
    assert quiet.exit_code == 0 and quiet.stderr == ""

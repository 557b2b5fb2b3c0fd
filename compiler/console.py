"""What the CLI prints while it works: progress per stage and log lines (the library only logs and
calls a progress callback; this module, used by cli.py alone, decides what reaches the terminal).

On a terminal each stage gets a tqdm bar (count, rate, time left); elsewhere (CI, a log file)
each finished run of a stage prints one line. qcompile's own INFO lines are shown unless quiet;
the libraries' messages (onnx-ir's "Removed N unused nodes", Python warnings, onnxruntime's session
warnings: see ort_runner) only with --verbose. A console whose reader goes away (`qcompile ... | head`)
stops receiving output; the command still finishes its work (ReaderMayLeave).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TextIO

_MARK = "_qcompile_console"  # set on the handler this module installs, so a second call replaces it


class ReaderMayLeave:
    """stdout or stderr for one command: when its pipe's reader has gone, what is written from then on goes
    to /dev/null, so that a compile whose log was cut short (`2>&1 | head -1`) still writes its outputs
    instead of stopping at its next line of output."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, self._stream.fileno())  # what the stream still buffers is flushed there too
        os.close(null)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class StageProgress:
    """The `progress(stage, done, total)` callback the CLI hands to compile() and friends.

    A stage whose count goes down has started over (block-wise calibration runs once per block).
    On a terminal one bar is live at a time: a finished run keeps its line, an interrupted one
    (quantize between two blocks' calibration) is cleared and picks up where it stopped."""

    def __init__(self, stream: TextIO, tty: bool):
        self.stream, self.tty = stream, tty
        self.bar = None
        self.bar_stage = ""
        self.runs: dict[str, tuple[int, int, float]] = {}  # stage -> (done, total, started)

    def __call__(self, stage: str, done: int, total: int) -> None:
        last = self.runs.get(stage)
        if last is None or done < last[0] or total != last[1]:
            last = self.runs[stage] = (0, total, time.perf_counter())
        self.runs[stage] = (done, total, last[2])
        if self.tty:
            self._draw(stage, last[0], done, total)
        elif done >= total and last[0] < total:
            elapsed = time.perf_counter() - last[2]
            rate = f", {done / elapsed:.1f}/s" if elapsed > 0 else ""
            self.stream.write(f"  {stage}: {done}/{total} in {elapsed:.1f} s{rate}\n")
            self.stream.flush()

    def _draw(self, stage: str, before: int, done: int, total: int) -> None:
        if self.bar is None or stage != self.bar_stage or done < self.bar.n or total != self.bar.total:
            self._close_bar()
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=before,
                desc=f"  {stage}",
                file=self.stream,
                leave=True,
                dynamic_ncols=True,
                mininterval=0.1,
            )
            self.bar_stage = stage
        self.bar.update(done - self.bar.n)
        if done >= total:  # finished: its line stays, later log lines go below it
            self._close_bar()

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.leave = self.bar.n >= self.bar.total
            self.bar.close()
            self.bar = None

    def write(self, line: str) -> None:
        """A log line that does not tear the bar apart."""
        if self.bar is not None:
            from tqdm import tqdm

            tqdm.write(line, file=self.stream)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        self._close_bar()


class _Handler(logging.Handler):
    def __init__(self, progress: StageProgress):
        super().__init__()
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if record.name != "qcompile" and not record.name.startswith("qcompile."):
                line = f"[{record.name}] {line}"
            self.progress.write(line)
        except Exception:
            self.handleError(record)


def configure(
    *, quiet: bool = False, verbose: int = 0, stream: TextIO | None = None, tty: bool | None = None
) -> StageProgress | None:
    """Set up logging for one CLI command; returns the progress callback (None when quiet)."""
    stream = stream or sys.stderr
    tty = stream.isatty() if tty is None else tty
    progress = StageProgress(stream, tty)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
    handler = _Handler(progress)
    setattr(handler, _MARK, True)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.ERROR)  # the libraries' threshold
    own = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.getLogger("qcompile").setLevel(own)
    logging.captureWarnings(True)  # Python warnings of the libraries go to the "py.warnings" logger
    return None if quiet else progress

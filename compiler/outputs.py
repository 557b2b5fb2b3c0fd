"""Every path qcompile writes, decided in one place and checked before any work; atomic staging.

For `-o m.q.onnx` ("OUT" is the output path without its ".onnx" suffix): the graph m.q.onnx, its
weights m.q.onnx.data (large models only), the recipe m.q.recipe.json, the report m.q.report.json
and m.q.report.html, the mixed-precision plan m.q.plan.json and figures folder m.q.mixed/.

Files are written into a private hidden staging folder next to their destination (unique name,
mode 0700) and renamed into place by `Staging.commit()` once everything, verification included,
has succeeded; leaving the block any other way (error, Ctrl-C, SIGTERM) removes them all. Ctrl-C or
SIGTERM during the renames themselves waits until the last one is done: the outputs appear together.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import shutil
import signal
import tempfile
import threading
from pathlib import Path

from qcompile.errors import OutputError

logger = logging.getLogger(__name__)
COMMITTED: list[Path] = []  # every file this process has moved into place (the CLI's last words use it)


@dataclasses.dataclass(frozen=True)
class OutputPaths:
    model: Path
    data: Path
    recipe: Path
    report_json: Path
    report_html: Path
    plan: Path
    figures: Path | None = None

    def all(self) -> list[Path]:
        return [p for p in dataclasses.astuple(self) if p is not None]


def stem(output: Path) -> Path:
    """OUT: the output path without its ".onnx" suffix."""
    return output.with_name(output.name.removesuffix(".onnx"))


def sidecar(output: str | os.PathLike, suffix: str) -> Path:
    """OUT + suffix, e.g. sidecar("m.q.onnx", ".report.json") == Path("m.q.report.json")."""
    out = stem(Path(output))
    return out.with_name(out.name + suffix)


def plan_outputs(
    output: str | os.PathLike,
    *,
    report: str | os.PathLike | None = None,
    inputs: list[str | os.PathLike] = (),
    force: bool = False,
    figures: str | os.PathLike | None = None,
) -> OutputPaths:
    """The paths of one compile, refused (OutputError) before any work when two coincide, one is an
    input file, one exists without `force`, or a parent folder is missing, a file or not writable."""
    model = Path(output)
    paths = OutputPaths(
        model=model,
        data=model.with_name(model.name + ".data"),
        recipe=sidecar(model, ".recipe.json"),
        report_json=Path(report) if report is not None else sidecar(model, ".report.json"),
        report_html=sidecar(model, ".report.html"),
        plan=sidecar(model, ".plan.json"),
        figures=Path(figures) if figures is not None else None,
    )
    seen: dict[str, Path] = {}
    for path in paths.all():
        key = os.path.realpath(path)
        if key in seen:
            raise OutputError(
                f"two outputs would be the same file: {seen[key]} and {path}; choose other paths"
            )
        seen[key] = path
    for path in paths.all():
        check_path(path, inputs, force, folder=path == paths.figures)
    return paths


def check_path(
    path: str | os.PathLike,
    inputs: list[str | os.PathLike] = (),
    force: bool = False,
    *,
    folder: bool = False,
) -> None:
    """Refuse an output path that is an input, exists without `force`, or has no writable parent."""
    path = Path(path)
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise OutputError(f"output {path} is an input file ({source}); choose another path")
    if os.path.lexists(path):
        if not folder and path.is_dir():
            raise OutputError(f"output {path} is a folder")
        if folder and not path.is_dir():
            raise OutputError(f"output folder {path} is a file")
        if not force:
            raise OutputError(f"{path} exists; pass --force to overwrite it")
    parent = path.parent
    if not parent.exists():
        raise OutputError(f"output folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {parent} is not writable")


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # hard links
    except OSError:
        return False


class Staging:
    """`with Staging() as st: tmp = st.temp_for(final); write tmp...; st.commit()`."""

    def __init__(self):
        self._folders: dict[Path, Path] = {}  # destination folder -> its staging folder
        self._staged: dict[Path, Path] = {}  # final path -> temp path
        self._committed = False

    def __enter__(self) -> Staging:
        return self

    def temp_for(self, final: str | os.PathLike) -> Path:
        """A new empty file that will become `final`: same name, in a unique folder next to it (so a
        model's external-data location, relative to the graph file, is right before and after)."""
        final = Path(final)
        parent = final.parent.resolve()
        if parent not in self._folders:
            try:
                self._folders[parent] = Path(
                    tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".qcompile", dir=parent)
                )
            except OSError as exc:
                raise OutputError(f"cannot write in {final.parent}: {exc.strerror}") from None
        temp = self._folders[parent] / final.name
        if final in self._staged:
            raise OutputError(f"{final} is staged twice")
        fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o666)
        os.close(fd)
        self._staged[final] = temp
        return temp

    def discard(self, final: str | os.PathLike) -> None:
        """Drop a staged file that turned out not to be needed."""
        Path(self._staged.pop(Path(final))).unlink(missing_ok=True)

    def commit(self) -> list[Path]:
        """Rename every staged file into place, model graphs last (their .data before them)."""

        def graph_last(p: Path) -> bool:
            return p.suffix == ".onnx" or p.with_name(p.name + ".data") in self._staged

        order = sorted(self._staged, key=graph_last)
        with _signals_held():
            for final in order:
                os.replace(self._staged[final], final)
            COMMITTED.extend(order)
        self._committed = True
        self._cleanup()
        return order

    def _cleanup(self) -> None:
        for folder in self._folders.values():
            shutil.rmtree(folder, ignore_errors=True)
        self._folders.clear()

    def __exit__(self, *exc) -> None:
        self._cleanup()


# what a full, read-only or failing disk raises while outputs or temporary files are written
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


@contextlib.contextmanager
def disk_errors():
    """A full or failing disk is the user's to fix: one line (exit 2). Staging blocks inside have
    removed their partial files by the time it arrives here."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        raise OutputError(f"cannot write{where}: {exc.strerror or os.strerror(exc.errno)}") from None


@contextlib.contextmanager
def _signals_held():
    """SIGINT and SIGTERM are noted, not acted on, inside the block; after it the run goes on (its
    outputs are complete) with a warning. Handlers can only be swapped on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in held}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if caught:
        logger.warning(
            "%s arrived while the outputs were being moved into place: they are complete",
            signal.Signals(caught[0]).name,
        )


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` through a unique temp file (no symlink followed), renamed into place."""
    with Staging() as staging:
        staging.temp_for(path).write_text(text)
        staging.commit()
    return Path(path)

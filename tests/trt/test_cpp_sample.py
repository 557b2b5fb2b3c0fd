"""samples/cpp: the TensorRT-free .npy reader/writer against numpy (the runner itself needs TensorRT)."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "cpp"
pytestmark = pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")


@pytest.fixture(scope="module")
def npy_copy(tmp_path_factory):
    build = tmp_path_factory.mktemp("sample_build")
    for cmd in (
        ["cmake", "-S", str(SAMPLE), "-B", str(build)],
        ["cmake", "--build", str(build), "--target", "npy_copy"],
    ):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    return build / "npy_copy"


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
        np.array([1.5, -2.25, 65504, 6e-8], np.float16),
        np.arange(-3, 3, dtype=np.int64).reshape(3, 2),
        np.array(42, np.int32),
        np.zeros((0, 5), np.float32),
    ],
    ids=["float32-3d", "float16-1d", "int64-2d", "int32-scalar", "empty"],
)
def test_npy_round_trip_is_exact(npy_copy, tmp_path, array):
    src, dst = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, array)
    done = subprocess.run([str(npy_copy), str(src), str(dst)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    back = np.load(dst)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == array.tobytes()  # bit-exact: a copy must not change a byte


def test_npy_rejects_unsupported_and_fortran_arrays(npy_copy, tmp_path):
    for name, array in (
        ("u8", np.zeros(3, np.uint8)),
        ("fortran", np.asfortranarray(np.ones((2, 3), np.float32))),
    ):
        np.save(tmp_path / f"{name}.npy", array)
        done = subprocess.run(
            [str(npy_copy), str(tmp_path / f"{name}.npy"), str(tmp_path / "o.npy")],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 1
        assert "not supported" in done.stderr, done.stderr


@pytest.fixture(scope="module")
def runner_check(npy_copy):
    build = npy_copy.parent
    done = subprocess.run(
        ["cmake", "--build", str(build), "--target", "qc_runner_check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return build / "qc_runner_check"


def _check(runner_check, *args):
    return subprocess.run([str(runner_check), *map(str, args)], capture_output=True, text=True)


def test_runner_arguments_parse(runner_check, tmp_path):
    engine, x = tmp_path / "m.engine", tmp_path / "x.npy"
    engine.write_bytes(b"plan")
    np.save(x, np.zeros(3, np.float32))
    done = _check(
        runner_check, "--engine", engine, "--input", f"x={x}", "--output-dir", tmp_path, "--allow-host-code"
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"engine={engine}" in done.stdout
        and f"input x={x}" in done.stdout
        and "allow_host_code=1" in done.stdout
    )


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "--engine is required"),
        (("--engine",), "--engine needs a value"),
        (("--engine", "{engine}", "--bogus"), "unknown argument --bogus"),
        (("--engine", "{engine}", "--input", "x"), "--input expects NAME=file.npy, got x"),
        (("--engine", "{engine}", "--input", "=a.npy"), "--input expects NAME=file.npy"),
        (("--engine", "{engine}", "--input", "x={x}", "--input", "x={x}"), "--input x given twice"),
        (("--engine", "{tmp}/none.engine"), "engine file not found"),
        (("--engine", "{engine}", "--input", "x={tmp}/none.npy"), "input file for 'x' not found"),
        (("--engine", "{engine}", "--output-dir", "{tmp}/none"), "output folder not found"),
        (("--engine", "{engine}", "--plugins", "{tmp}/none.so"), "plugin library not found"),
        (("--engine", "{engine}", "--plugins", "{x}"), "cannot load the plugin library"),
    ],
)
def test_runner_bad_arguments_are_one_line_exit_2(runner_check, tmp_path, args, message):
    engine, x = tmp_path / "m.engine", tmp_path / "x.npy"
    engine.write_bytes(b"plan")
    np.save(x, np.zeros(3, np.float32))
    done = _check(runner_check, *(a.format(engine=engine, x=x, tmp=tmp_path) for a in args))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qc_run_engine: ") and message in lines[0], done.stderr


def test_runner_refuses_a_library_without_get_creators(runner_check, tmp_path):
    source, library = tmp_path / "empty.c", tmp_path / "libempty.so"
    source.write_text("int qc_nothing(void) { return 0; }\n")
    if shutil.which("cc") is None:
        pytest.skip("no C compiler to build a library without getCreators")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    done = _check(runner_check, "--engine", engine, "--plugins", library)
    assert done.returncode == 2 and "does not export getCreators" in done.stderr

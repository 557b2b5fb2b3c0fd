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
    for cmd in (["cmake", "-S", str(SAMPLE), "-B", str(build)], ["cmake", "--build", str(build), "--target", "npy_copy"]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    return build / "npy_copy"


@pytest.mark.parametrize("array", [
    np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
    np.array([1.5, -2.25, 65504, 6e-8], np.float16),
    np.arange(-3, 3, dtype=np.int64).reshape(3, 2),
    np.array(42, np.int32),
    np.zeros((0, 5), np.float32),
], ids=["float32-3d", "float16-1d", "int64-2d", "int32-scalar", "empty"])
def test_npy_round_trip_is_exact(npy_copy, tmp_path, array):
    src, dst = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, array)
    done = subprocess.run([str(npy_copy), str(src), str(dst)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    back = np.load(dst)
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == array.tobytes()  # bit-exact: a copy must not change a byte


def test_npy_rejects_unsupported_and_fortran_arrays(npy_copy, tmp_path):
    for name, array in (("u8", np.zeros(3, np.uint8)), ("fortran", np.asfortranarray(np.ones((2, 3), np.float32)))):
        np.save(tmp_path / f"{name}.npy", array)
        done = subprocess.run([str(npy_copy), str(tmp_path / f"{name}.npy"), str(tmp_path / "o.npy")],
                              capture_output=True, text=True)
        assert done.returncode == 1
        assert ("not supported" in done.stderr), done.stderr

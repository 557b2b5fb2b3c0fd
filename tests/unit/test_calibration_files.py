"""Hostile or degenerate calibration files: refused with one clear message, never a memory bomb."""

from __future__ import annotations

import io
import tracemalloc
import zipfile

import numpy as np
import pytest

from qcompile import calibration as calib
from qcompile.calibration import InputSpec, load_calibration
from qcompile.errors import CalibrationError

X = InputSpec("x", np.dtype(np.float32), (None, 8))


def _npy_header(shape, dtype="<f4") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def test_header_declaring_a_terabyte_is_refused_without_allocating(tmp_path):
    """A ~200-byte file whose header declares 10^12 elements."""
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", _npy_header((10**6, 10**6)) + b"\0" * 16)
    assert path.stat().st_size < 400
    tracemalloc.start()
    with pytest.raises(CalibrationError, match="declares shape"):
        load_calibration(path, [X])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 << 20, peak


def test_names_are_checked_before_anything_is_decompressed(tmp_path, monkeypatch):
    """An unexpected member is refused before a byte of any member is read (a zip bomb stays shut)."""
    path = tmp_path / "names.npz"
    np.savez_compressed(path, x=np.zeros((2, 8), np.float32), junk=np.zeros(1 << 20, np.float32))
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(
        zipfile.ZipFile, "open", lambda self, *a, **k: (opened.append(a), real_open(self, *a, **k))[1]
    )
    with pytest.raises(CalibrationError, match="'junk' is not a model input"):
        load_calibration(path, [X])
    assert opened == []


@pytest.mark.parametrize(
    "case, message",
    [
        ("member without .npy", "is not a .npy array"),
        ("bare .npy renamed", "bare .npy"),
        ("object array", "Python objects"),
        ("truncated member", "declares shape"),
    ],
)
def test_malformed_files(tmp_path, case, message):
    path = tmp_path / "c.npz"
    if case == "member without .npy":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("x", b"hello")
    elif case == "bare .npy renamed":
        np.save(tmp_path / "c.npy", np.zeros((2, 8), np.float32))
        (tmp_path / "c.npy").rename(path)
    elif case == "object array":
        np.savez(path, x=np.array([{"a": 1}], dtype=object))
    elif case == "truncated member":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("x.npy", _npy_header((4, 8)) + b"\0" * 20)
    with pytest.raises(CalibrationError, match=message):
        load_calibration(path, [X])


def test_too_many_samples_are_refused(tmp_path):
    x = np.random.default_rng(0).standard_normal((calib.MAX_SAMPLES + 1, 1, 8)).astype(np.float32)
    np.savez(tmp_path / "many.npz", x=x)
    with pytest.raises(CalibrationError, match="at most"):
        load_calibration(tmp_path / "many.npz", [X])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad):
    x = np.ones((4, 2, 8), np.float32)
    x[2, 1, 3] = bad
    with pytest.raises(CalibrationError, match="NaN or infinity"):
        load_calibration({"x": x}, [X])


@pytest.mark.parametrize("value", [0.0, 3.5])
def test_constant_data_is_refused(value):
    with pytest.raises(CalibrationError, match="one constant value"):
        load_calibration({"x": np.full((4, 2, 8), value, np.float32)}, [X])


def test_valid_file_round_trips(tmp_path):
    x = np.random.default_rng(0).standard_normal((3, 2, 8)).astype(np.float32)
    np.savez_compressed(tmp_path / "ok.npz", x=np.asfortranarray(x))
    samples = load_calibration(tmp_path / "ok.npz", [X])
    np.testing.assert_array_equal(np.stack([s["x"] for s in samples]), x)

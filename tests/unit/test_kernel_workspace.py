"""plugins/tests/workspace_test.cpp (also a ctest of plugins/): the kernels' workspace functions are
non-decreasing in M, so the TensorRT plugin's one reservation for a profile's max M covers every
M of the profile without dropping split-K. Built here with the host compiler (no CUDA needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def test_workspace_covers_every_m_of_a_profile(tmp_path):
    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if cxx is None:
        pytest.fail("no C++ compiler on PATH: cannot build plugins/tests/workspace_test.cpp")
    exe = tmp_path / "workspace_test"
    kernels = ("w6a16", "w4a16", "w4a8")
    sources = [PLUGINS / "tests" / "workspace_test.cpp"] + [PLUGINS / d / f"{d}_check.cpp" for d in kernels]
    includes = [f"-I{PLUGINS / d}" for d in ("common", "ref", *kernels)]
    cmd = [cxx, "-O1", "-std=c++17", "-o", str(exe), *includes]
    build = subprocess.run(cmd + [str(s) for s in sources], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "workspace_test: ok" in run.stdout

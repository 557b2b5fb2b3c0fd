"""The C++ plugin harness (plugins/trt/harness) on every emitted plugin node of harness_cases.py.

It needs TensorRT's headers (not its libraries) to be built: configure plugins/ with
-DQC_BUILD_TRT_PLUGINS=ON -DTENSORRT_ROOT=... and build qc_trt_plugins and qc_trt_harness. Without
them the test skips. Set QC_TRT_HARNESS to the harness binary if it is not in a default build dir.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qcompile import trt_build

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _harness() -> Path | None:
    given = os.environ.get("QC_TRT_HARNESS")
    if given:
        return Path(given)
    for folder in trt_build._DEFAULT_BUILD_DIRS:
        if (ROOT / folder / "qc_trt_harness").is_file():
            return ROOT / folder / "qc_trt_harness"
    return None


def test_every_emitted_plugin_node_through_the_tensorrt_interfaces(tmp_path):
    harness = _harness()
    if harness is None:
        pytest.skip(
            "the TensorRT plugin harness is not built (needs TensorRT's headers: configure plugins/ with "
            "-DQC_BUILD_TRT_PLUGINS=ON -DTENSORRT_ROOT=..., or set QC_TRT_HARNESS)"
        )
    library = trt_build.find_plugin_library(
        os.environ.get("QC_PLUGIN_LIB") or (harness.parent / "libqc_trt_plugins.so")
    )
    cases = tmp_path / "cases.txt"
    subprocess.run([sys.executable, str(HERE / "harness_cases.py"), str(cases)], check=True)
    n_cases = sum(line.startswith("case ") for line in cases.read_text().splitlines())
    done = subprocess.run(
        [str(harness), str(library), str(cases)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f"{n_cases} cases" in done.stdout and ", 0 failed" in done.stdout
    static = harness.parent / "qc_trt_static_harness"  # the REGISTER_TENSORRT_PLUGIN path, built beside it
    assert static.is_file(), f"{static} is built with the harness"
    done = subprocess.run([str(static), str(cases)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f"{n_cases} cases" in done.stdout and ", 0 failed" in done.stdout


def test_cases_cover_every_listed_attribute_value(tmp_path):
    sys.path.insert(0, str(HERE))
    try:
        import harness_cases
    finally:
        sys.path.remove(str(HERE))
    harness_cases.write_cases(tmp_path / "cases.txt")
    text = (tmp_path / "cases.txt").read_text()
    from qcompile.plugin_specs import load_specs

    for op, spec in load_specs().plugins.items():
        for name, attr in spec.attributes.items():
            for value in attr.values or ():
                assert f"{name}={value}" in text, (op, name, value)
    assert "case " in text and "QcW4A8Gemm" in text

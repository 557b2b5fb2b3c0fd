"""The C++ plugin cores: the spec-table generator, and their ctest (built with cmake, no CUDA)."""

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORES = ROOT / "plugins" / "cores"
SPEC_JSON = ROOT / "compiler" / "plugin_specs.json"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_spec_header", CORES / "gen_spec_header.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_table_holds_every_plugin_attribute_and_input():
    data = json.loads(SPEC_JSON.read_text())
    header = _generator().generate(data)
    assert f'kNamespace = "{data["namespace"]}"' in header
    assert f"kLayoutVersion = {data['layout_version']};" in header
    for op, plugin in data["plugins"].items():
        assert (
            f'inline constexpr PluginSpec k{op} = {{"{op}", "{plugin["version"]}", "{plugin["kernel"]}"'
            in header
        )
        for name, attr in plugin["attributes"].items():
            kind = {"int": "kInt", "string": "kString"}[attr["type"]]
            row = f'{{"{name}", AttrType::{kind}, {"true" if "default" in attr else "false"}, '
            assert row in header, f"{op}.{name} missing from the generated table"
            for value in attr.get("values", []):
                assert (f'"{value}"' if attr["type"] == "string" else str(value)) in header
            if "default" in attr:
                default = f'"{attr["default"]}"' if attr["type"] == "string" else f'{attr["default"]}, ""'
                assert row + ("0, " if attr["type"] == "string" else "") + default in header
        for tensor in plugin["inputs"]:
            assert f'{{"{tensor["name"]}", DType::' in header
            assert (
                f"k{op}_{tensor['name']}_shape[] = "
                f"{{{', '.join(json.dumps(str(d)) for d in tensor['shape'])}}}" in header
            )


def test_generator_follows_a_changed_spec():
    data = json.loads(SPEC_JSON.read_text())
    data["plugins"]["QcW4A16Gemm"]["attributes"]["split_k"] = {
        "type": "int",
        "values": [1, 2, 4],
        "default": 1,
    }
    header = _generator().generate(data)
    assert '{"split_k", AttrType::kInt, true, 1, "", kQcW4A16Gemm_split_k_values, nullptr, 3}' in header
    assert "kQcW4A16Gemm_attributes, 7," in header


@pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("ctest") is None, reason="cmake is not installed"
)
def test_cores_ctest(tmp_path):
    build = tmp_path / "build"
    run = lambda *cmd: subprocess.run(cmd, capture_output=True, text=True, timeout=300)  # noqa: E731
    configure = run("cmake", "-S", str(CORES), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release")
    assert configure.returncode == 0, configure.stdout + configure.stderr
    compiled = run("cmake", "--build", str(build), "-j2")
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    tested = run("ctest", "--test-dir", str(build), "--output-on-failure")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "100% tests passed" in tested.stdout
    kernel_checks = [ROOT / "plugins" / d / f"{d}_check.cpp" for d in ("w6a16", "w4a16", "w4a8")]
    if all(path.is_file() for path in kernel_checks):  # the kernels' host-side checks are there
        assert "qc_kernel_bindings_test" in tested.stdout

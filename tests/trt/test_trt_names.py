"""Every TensorRT Python name compiler/trt_build.py uses exists in the TensorRT bindings sources.

The names are extracted statically (ast) from trt_build.py: attribute chains rooted at `trt`,
attributes used on the TensorRT objects it creates (builder, network, parser, ...), keyword
arguments of their calls and the methods its ILogger / IProgressMonitor subclasses override. Each
must appear as a quoted Python name in the pybind11 sources (python/src of the NVIDIA/TensorRT
repository). Set QC_TRT_BINDINGS to one or more python/src folders separated by os.pathsep (for
example of release/10.0 and release/11.1); without it the check is skipped.
"""

import ast
import os
import re
from pathlib import Path

import pytest

from qcompile import trt_build

# Local names in trt_build.py that hold TensorRT objects (or values the bindings return).
TRT_OBJECTS = {"builder", "network", "config", "registry", "t"}
# The constructor the subclasses override is Python's, not a TensorRT name.
OWN = {"__init__"}


def trt_names(source: str) -> set[str]:
    tree = ast.parse(source)
    names: set[str] = set()

    def chain(node):  # trt.A.B -> ["trt", "A", "B"]; None when not rooted at a plain name
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Call):  # config.get_timing_cache().serialize
            inner = chain(node.func)
            return inner + parts[::-1] if inner else None
        return [node.id] + parts[::-1] if isinstance(node, ast.Name) else None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts = chain(node)
            if parts and parts[0] in TRT_OBJECTS | {"trt"}:
                names.update(parts[1:])
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            parts = chain(node.func)
            if parts and parts[0] in TRT_OBJECTS:
                names.update(k.arg for k in node.keywords if k.arg)
        if isinstance(node, ast.ClassDef) and any((chain(b) or [""])[0] == "trt" for b in node.bases):
            names.update(f.name for f in node.body if isinstance(f, ast.FunctionDef))
    return names - OWN


def binding_names(src: Path) -> set[str]:
    text = "\n".join(p.read_text(errors="replace") for p in src.rglob("*.cpp"))
    return set(re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"', text))


def test_extraction_sees_the_names_trt_build_uses():
    names = trt_names(Path(trt_build.__file__).read_text())
    # A sample from each kind of use: enum chains, object methods, keywords, overridden methods.
    assert {
        "STRONGLY_TYPED",
        "WORKSPACE",
        "get_plugin_registry",
        "load_library",
        "plugins_to_serialize",
        "num_inputs",
        "phase_start",
    } <= names
    assert "steps" not in names and "__init__" not in names
    assert "add" not in names  # a Polygraphy Profile's method, not TensorRT's


def _binding_dirs():
    value = os.environ.get("QC_TRT_BINDINGS", "")
    return [Path(p) for p in value.split(os.pathsep) if p]


@pytest.mark.skipif(not _binding_dirs(), reason="QC_TRT_BINDINGS (TensorRT python/src folders) is not set")
def test_every_name_exists_in_the_bindings():
    names = trt_names(Path(trt_build.__file__).read_text())
    for src in _binding_dirs():
        assert src.is_dir(), f"QC_TRT_BINDINGS names a missing folder {src}"
        missing = sorted(names - binding_names(src))
        assert not missing, f"not in the TensorRT bindings at {src}: {missing}"


def test_a_misspelled_name_is_reported(tmp_path):
    (tmp_path / "pyCore.cpp").write_text('.def("create_network", f).value("STRONGLY_TYPED", x)')
    source = (
        "def f(trt, builder):\n    builder.create_netwrk(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)\n"
    )
    names = trt_names(source)
    assert names - binding_names(tmp_path) == {"create_netwrk", "NetworkDefinitionCreationFlag"}

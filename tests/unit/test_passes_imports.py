"""passes/ work on onnx-ir graphs: no pass imports the `onnx` protobuf package (pyproject's ruff
rule TID251 says the same; this test holds without ruff installed)."""

from __future__ import annotations

import ast
from pathlib import Path

PASSES = Path(__file__).resolve().parents[2] / "passes"


def _onnx_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level == 0
            else []
        )
        found += [n for n in names if n == "onnx" or n.startswith("onnx.")]
    return found


def test_the_check_sees_onnx_imports():
    source = "import onnx\nfrom onnx import helper\ndef f():\n    import onnx.numpy_helper\n"
    assert _onnx_imports(source) == ["onnx", "onnx", "onnx.numpy_helper"]
    assert _onnx_imports("import onnx_ir as ir\nfrom onnx_ir import tensor\nfrom . import onnx\n") == []


def test_passes_do_not_import_onnx():
    offenders = {p.name: _onnx_imports(p.read_text()) for p in sorted(PASSES.glob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}

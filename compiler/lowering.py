"""`qcompile lower`: a quantized model with plugin nodes -> standard ONNX that onnxruntime runs.

The plugin nodes are decoded from the same packed bytes the kernels read (passes/lower_plugins.py),
exactly as compile() measures them for the report, so a user's own evaluation sees the same numbers.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx_ir as ir

from qcompile.model_io import check_output_path, load_model, save_model

logger = logging.getLogger(__name__)


def lower_file(model: str | Path, output: str | Path, *, force: bool = False) -> list[Path]:
    """Write the standard-ONNX lowering of `model` to `output`; returns the files written."""
    from qcompile.passes.lower_plugins import LowerPluginNodes
    from qcompile.plugin_specs import load_specs

    ir_model, source = load_model(model)
    out = Path(output)
    inputs = [source, *_external_files(ir_model, source)]
    check_output_path(out, inputs, force)
    check_output_path(out.with_name(out.name + ".data"), inputs, force=True)
    plugins = sum(1 for node in ir_model.graph if node.domain == load_specs().namespace)
    if not LowerPluginNodes()(ir_model).modified:
        logger.warning("%s has no qcompile plugin node (standard ONNX already): written unchanged", source)
    else:
        logger.info("lowered %d plugin nodes to standard ONNX", plugins)
    return _write(ir_model, out)


def _external_files(model: ir.Model, source: Path) -> list[Path]:
    files = {Path(v.const_value.base_dir) / v.const_value.location for v in model.graph.initializers.values()
             if isinstance(v.const_value, ir.ExternalTensor)}
    return sorted(files)


def _write(model: ir.Model, out: Path) -> list[Path]:
    """Atomic write (the model's .data, when large, beside it)."""
    return save_model(model, out)

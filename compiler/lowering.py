"""`qcompile lower`: a quantized model with plugin nodes -> standard ONNX that onnxruntime runs.

The plugin nodes are decoded from the same packed bytes the kernels read (passes/lower_plugins.py),
exactly as compile() measures them for the report, so a user's own evaluation sees the same numbers.
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnx_ir as ir

from qcompile.model_io import initializer_bytes, load_model, model_files, save_model
from qcompile.outputs import Staging, check_path

logger = logging.getLogger(__name__)


def lower_file(model: str | Path, output: str | Path, *, force: bool = False) -> list[Path]:
    """Write the standard-ONNX lowering of `model` to `output`; returns the files written. Refused
    before any work: an output that is the model or one of its external-data files, or exists
    without `force`."""
    from qcompile.passes.lower_plugins import LowerPluginNodes
    from qcompile.plugin_specs import load_specs

    out = Path(output)
    inputs = model_files(model) if Path(model).is_file() else []
    check_path(out, inputs, force)
    check_path(out.with_name(out.name + ".data"), inputs, force=True)
    ir_model, source = load_model(model)
    plugins = sum(1 for node in ir_model.graph if node.domain == load_specs().namespace)
    if not LowerPluginNodes()(ir_model).modified:
        logger.warning("%s has no qcompile plugin node (standard ONNX already): written unchanged", source)
    else:
        logger.info("lowered %d plugin nodes to standard ONNX", plugins)
    return _write(ir_model, out)


def _write(model: ir.Model, out: Path) -> list[Path]:
    """Staged and renamed into place; large models tensor by tensor into `out.name + '.data'`, as
    compile() saves them."""
    from qcompile.pipeline import STREAM_BYTES
    from qcompile.stream_save import save_streaming

    with Staging() as staging:
        save = save_streaming if initializer_bytes(model) > STREAM_BYTES else save_model
        save(model, out, staging=staging)
        return staging.commit()

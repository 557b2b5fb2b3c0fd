"""`qcompile compare MODEL.q.onnx --engine MODEL.engine`: the TensorRT engine against the
standard-ONNX lowering of the same model run by onnxruntime, on calibration samples, through
Polygraphy's runners and comparator. Needs TensorRT (and a GPU); without it, one line naming what
to install (exit 2). Never run in this project's environment (no TensorRT here).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from qcompile.errors import MissingDependencyError, ModelError

log = logging.getLogger(__name__)

# float16 engine outputs against float32 onnxruntime outputs of the same quantized weights: the
# two sum K products in different orders and precisions, so elementwise agreement is loose;
# 1e-2 relative and absolute, as the report's verification does not hold either side exact.
DEFAULT_RTOL = 1e-2
DEFAULT_ATOL = 1e-2


def _polygraphy():
    try:
        from polygraphy.backend.common import BytesFromPath
        from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
        from polygraphy.backend.trt import EngineFromBytes, LoadPlugins, TrtRunner
        from polygraphy.comparator import Comparator, CompareFunc
    except ImportError as exc:
        raise MissingDependencyError("Polygraphy is not installed: pip install polygraphy") from exc
    return (
        BytesFromPath,
        OnnxrtRunner,
        SessionFromOnnx,
        EngineFromBytes,
        LoadPlugins,
        TrtRunner,
        Comparator,
        CompareFunc,
    )


def compare_engine(
    model: str | os.PathLike,
    engine: str | os.PathLike,
    *,
    calib: str = "random",
    samples: int = 8,
    plugin_library: str | os.PathLike | None = None,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
) -> bool:
    """True when every output of every sample agrees within rtol/atol (Polygraphy's simple compare)."""
    from qcompile import calibration, trt_build
    from qcompile.model_io import load_model
    from qcompile.passes.lower_plugins import LowerPluginNodes
    from qcompile.pipeline import input_specs

    model, engine = Path(model), Path(engine)
    for path, what in ((model, "model"), (engine, "engine")):
        if not path.is_file():
            raise ModelError(f"{what} {path} does not exist")
    library = trt_build.find_plugin_library(plugin_library)
    trt_build.import_tensorrt()  # one line naming what to install when it is missing
    (
        BytesFromPath,
        OnnxrtRunner,
        SessionFromOnnx,
        EngineFromBytes,
        LoadPlugins,
        TrtRunner,
        Comparator,
        CompareFunc,
    ) = _polygraphy()

    ir_model, _ = load_model(model)
    data = calibration.load_calibration(calib, input_specs(ir_model))[:samples]
    LowerPluginNodes()(ir_model)
    import onnx_ir as ir

    lowered = ir.serde.serialize_model(ir_model).SerializeToString()
    engine_bytes = BytesFromPath(str(engine))
    if library is not None:
        engine_bytes = LoadPlugins(plugins=[str(library)], obj=engine_bytes)
    runners = [
        TrtRunner(EngineFromBytes(engine_bytes)),
        OnnxrtRunner(SessionFromOnnx(lowered, providers=["CPUExecutionProvider"])),
    ]
    feeds = list(data)
    results = Comparator.run(runners, data_loader=feeds)
    ok = bool(Comparator.compare_accuracy(results, compare_func=CompareFunc.simple(rtol=rtol, atol=atol)))
    log.info("engine %s vs onnxruntime on %d samples: %s", engine, len(feeds), "agree" if ok else "DIFFER")
    return ok

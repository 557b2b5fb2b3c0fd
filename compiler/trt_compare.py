"""`qcompile compare MODEL.q.onnx --engine MODEL.engine`: the TensorRT engine against the
standard-ONNX lowering of the same model run by onnxruntime, on calibration samples, through
Polygraphy's runners and comparator, with the per-output tolerances of the model's report
(`MODEL.q.report.json`, see report.ENGINE_RTOL). Needs TensorRT (and a GPU); without it, one line
naming what to install (exit 2). Never run in this project's environment (no TensorRT here).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from qcompile.errors import MissingDependencyError, ModelError, QCompileError
from qcompile.report import ENGINE_RTOL

log = logging.getLogger(__name__)

# Without a report there is no output scale to relate an absolute tolerance to.
FALLBACK_ATOL = 1e-2

Tolerances = tuple[dict[str, float], dict[str, float]]


def report_tolerances(model: str | os.PathLike, report: str | os.PathLike | None = None) -> Tolerances | None:
    """({output: rtol}, {output: atol}) from the model's report; None when it has none."""
    from qcompile.outputs import sidecar

    path = Path(report) if report is not None else sidecar(model, ".report.json")
    if not path.is_file():
        if report is not None:
            raise QCompileError(f"report {path} does not exist")
        return None
    try:
        entries = json.loads(path.read_text(encoding="utf-8")).get("accuracy") or []
        rtol = {e["name"]: float(e["engine_rtol"]) for e in entries if "engine_atol" in e}
        atol = {e["name"]: float(e["engine_atol"]) for e in entries if "engine_atol" in e}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise QCompileError(f"report {path} is not a qcompile report: {exc}") from None
    return (rtol, atol) if atol else None


def _polygraphy():
    from qcompile.trt_build import POLYGRAPHY_MISSING

    try:
        from polygraphy.backend.common import BytesFromPath
        from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx
        from polygraphy.backend.trt import EngineFromBytes, TrtRunner
        from polygraphy.comparator import Comparator, CompareFunc
    except ImportError as exc:
        raise MissingDependencyError(POLYGRAPHY_MISSING) from exc
    return BytesFromPath, OnnxrtRunner, SessionFromOnnx, EngineFromBytes, TrtRunner, Comparator, CompareFunc


def compare_engine(
    model: str | os.PathLike,
    engine: str | os.PathLike,
    *,
    calib: str = "random",
    samples: int = 8,
    plugin_library: str | os.PathLike | None = None,
    report: str | os.PathLike | None = None,
    rtol: float | None = None,
    atol: float | None = None,
) -> bool:
    """True when every output of every sample agrees within its tolerances (Polygraphy's simple
    compare): rtol / atol when given, else the report's per-output ones, else ENGINE_RTOL and
    FALLBACK_ATOL."""
    from qcompile import calibration, trt_build
    from qcompile.model_io import load_model
    from qcompile.passes.lower_plugins import LowerPluginNodes
    from qcompile.pipeline import input_specs

    model, engine = Path(model), Path(engine)
    for path, what in ((model, "model"), (engine, "engine")):
        if not path.is_file():
            raise ModelError(f"{what} {path} does not exist")
    tolerances = report_tolerances(model, report)
    rtols, atols = tolerances or ({}, {})
    library = trt_build.find_plugin_library(plugin_library)
    trt = trt_build.import_tensorrt()  # one line naming what to install when it is missing
    BytesFromPath, OnnxrtRunner, SessionFromOnnx, EngineFromBytes, TrtRunner, Comparator, CompareFunc = (
        _polygraphy()
    )
    if library is not None:  # before the engine is deserialized: it names the plugins' creators
        trt_build.load_plugin_library(trt, library)

    ir_model, _ = load_model(model)
    data = calibration.load_calibration(calib, input_specs(ir_model))[:samples]
    LowerPluginNodes()(ir_model)
    import onnx_ir as ir

    lowered = ir.serde.serialize_model(ir_model).SerializeToString()
    runners = [
        TrtRunner(EngineFromBytes(BytesFromPath(str(engine)))),
        OnnxrtRunner(SessionFromOnnx(lowered, providers=["CPUExecutionProvider"])),
    ]
    compare = CompareFunc.simple(
        rtol=rtol if rtol is not None else {"": ENGINE_RTOL, **rtols},
        atol=atol if atol is not None else {"": FALLBACK_ATOL, **atols},
    )
    results = Comparator.run(runners, data_loader=list(data))
    ok = bool(Comparator.compare_accuracy(results, compare_func=compare))
    source = "given" if rtol is not None and atol is not None else "the report's" if tolerances else "default"
    log.info(
        "engine %s vs onnxruntime on %d samples (%s tolerances): %s",
        engine,
        len(data),
        source,
        "agree" if ok else "DIFFER",
    )
    return ok

"""Run models with onnxruntime: the original (with extra observed outputs) and the lowered one."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from qcompile.model_io import EXTERNAL_DATA_THRESHOLD, initializer_bytes


def _providers() -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def _has_fp8(proto: onnx.ModelProto) -> bool:
    fp8 = {onnx.TensorProto.FLOAT8E4M3FN, onnx.TensorProto.FLOAT8E5M2}
    return any(t.data_type in fp8 for t in proto.graph.initializer)


class OrtModel:
    """An onnxruntime session over a model file, optionally exposing intermediate tensors."""

    def __init__(self, path: Path, *, extra_outputs: list[str] = (), optimize: bool | None = None):
        import onnxruntime as ort

        self._tmp = Path(tempfile.mkdtemp(prefix="qcompile-ort-"))
        proto = onnx.load(str(path), load_external_data=False)
        for name in extra_outputs:
            proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
        for location in {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"}:
            link = self._tmp / location
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink((path.parent / location).resolve(), link)
        model_path = self._tmp / "model.onnx"
        onnx.save(proto, str(model_path))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if optimize is None:
            optimize = not _has_fp8(proto)  # onnxruntime's optimizer mis-fuses FP8 Q/DQ (DESIGN.md)
        if not optimize:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.session = ort.InferenceSession(str(model_path), options, providers=_providers())
        self.output_names = [o.name for o in self.session.get_outputs()][: len(proto.graph.output) - len(extra_outputs)]

    @classmethod
    def from_ir(cls, model: ir.Model, **kwargs) -> OrtModel:
        folder = Path(tempfile.mkdtemp(prefix="qcompile-model-"))
        try:
            path = folder / "model.onnx"
            large = initializer_bytes(model) > EXTERNAL_DATA_THRESHOLD
            ir.save(model, path, external_data="model.onnx.data" if large else None)
            return cls(path, **kwargs)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def run(self, sample: dict[str, np.ndarray], names: list[str] | None = None) -> list[np.ndarray]:
        return self.session.run(names if names is not None else self.output_names, sample)

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

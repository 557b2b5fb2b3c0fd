"""Run models with onnxruntime: the original (with extra observed outputs) and the lowered one."""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from qcompile.errors import ModelError
from qcompile.model_io import save_model


def _providers() -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


def session_options(optimize: bool = True):
    """CPU session options for measuring a quantized model as TensorRT would run it.

    onnxruntime's optimizer fuses `DequantizeLinear(int4 block) -> MatMul` into MatMulNBits and, by
    default, computes it with activations rounded to int8 (accuracy level 4): that is not what a
    weight-only engine does, so level 1 (float32 activations) is set. `optimize=False` is for FP8
    Q/DQ models, which the optimizer mis-fuses (DESIGN.md)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # onnxruntime's warnings only when the caller's logging asks for the libraries' messages (qcompile -v)
    options.log_severity_level = 2 if logging.getLogger("onnxruntime").isEnabledFor(logging.INFO) else 3
    options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "1")
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return options


def _has_fp8(proto: onnx.ModelProto) -> bool:
    fp8 = {onnx.TensorProto.FLOAT8E4M3FN, onnx.TensorProto.FLOAT8E5M2}
    return any(t.data_type in fp8 for t in proto.graph.initializer)


def _internalize_small_tensors(proto: onnx.ModelProto, folder: Path) -> None:
    """onnxruntime cannot shape-infer from external shape constants: keep non-float and tiny ones inline."""
    from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data

    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    for tensor in proto.graph.initializer:
        if uses_external_data(tensor) and (tensor.data_type not in floats or np.prod(tensor.dims) <= 1024):
            load_external_data_for_tensor(tensor, str(folder))
            tensor.data_location = onnx.TensorProto.DEFAULT
            del tensor.external_data[:]


class OrtModel:
    """An onnxruntime session over a model file.

    extra_outputs: intermediate tensors it can also return (graph inputs are served from the
    sample itself); swappable: initializers that become graph inputs with their stored value as
    default, so a run can feed a replacement (a quantized weight) without rebuilding the model.
    """

    def __init__(
        self,
        path: Path,
        *,
        extra_outputs: list[str] = (),
        swappable: list[str] = (),
        optimize: bool | None = None,
        proto: onnx.ModelProto | None = None,
    ):
        """`proto`: run this model instead of the file's (its external data still read next to `path`)."""
        import onnxruntime as ort

        proto = onnx.load(str(path), load_external_data=False) if proto is None else proto
        self.graph_inputs = {i.name for i in proto.graph.input}
        self.output_names = [o.name for o in proto.graph.output]
        for name in extra_outputs:
            if name not in self.graph_inputs:
                proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
        initializers = {t.name: t for t in proto.graph.initializer}
        for name in swappable:
            tensor = initializers[name]
            proto.graph.input.append(
                onnx.helper.make_tensor_value_info(name, tensor.data_type, list(tensor.dims))
            )
        _internalize_small_tensors(proto, path.parent)
        options = session_options(not _has_fp8(proto) if optimize is None else optimize)
        # Loaded from bytes, the model's external data is found in its own folder (no copies).
        options.add_session_config_entry(
            "session.model_external_initializers_file_folder_path", str(path.parent)
        )
        self.session = ort.InferenceSession(proto.SerializeToString(), options, providers=_providers())

    @classmethod
    def from_ir(cls, model: ir.Model, **kwargs) -> OrtModel:
        folder = Path(tempfile.mkdtemp(prefix="qcompile-model-"))
        try:
            path = folder / "model.onnx"
            save_model(model, path, check=False)
            return cls(path, **kwargs)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def run(
        self,
        sample: dict[str, np.ndarray],
        names: list[str] | None = None,
        weights: dict[str, np.ndarray] | None = None,
        options=None,
    ) -> list[np.ndarray]:
        """The named tensors (default: the model's outputs) for one sample; `weights` feeds swappables,
        `options` are onnxruntime RunOptions."""
        names = self.output_names if names is None else names
        fetch = [n for n in names if n not in self.graph_inputs]
        fetched = iter(self.session.run(fetch, {**sample, **(weights or {})}, options) if fetch else [])
        return [sample[n] if n in self.graph_inputs else next(fetched) for n in names]

    def close(self) -> None:
        self.session = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def ort_errors() -> tuple[type[Exception], ...]:
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return tuple(v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception))


def ort_message(exc: Exception) -> str:
    """onnxruntime's message without its status prefix and C++ source location."""
    import re

    from qcompile.validate import one_line

    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", one_line(exc))
    return re.sub(r"/onnxruntime_src/\S+ [^(]*\([^)]*\)\S* ", "", text)


@contextlib.contextmanager
def user_model_errors(what: str):
    """onnxruntime failing on the user's model or data is a problem the user fixes: one line, exit 2."""
    try:
        yield
    except ort_errors() as exc:
        raise ModelError(f"onnxruntime cannot run {what}: {ort_message(exc)}") from None

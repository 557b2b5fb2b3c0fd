"""One onnxruntime session over the original model for the sensitivity methods: it exposes chosen
intermediate tensors and lets chosen weight initializers be replaced per run (each becomes a
graph input with the initializer as its default), so trying a quantized weight is a feed, not a
model build."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from qcompile.passes.canonicalize import Layer


class WeightSwapRunner:
    def __init__(self, path: Path, *, extra_outputs: list[str] = (), swappable: list[Layer] = ()):
        import onnx
        import onnxruntime as ort

        from qcompile.ort_runner import _internalize_small_tensors, _providers

        proto = onnx.load(str(path), load_external_data=False)
        graph_inputs = {i.name for i in proto.graph.input}
        self.output_names = [o.name for o in proto.graph.output]
        for name in extra_outputs:
            if name not in graph_inputs:
                proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
        inits = {t.name: t for t in proto.graph.initializer}
        for layer in swappable:
            tensor = inits[layer.source.name]
            proto.graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
        _internalize_small_tensors(proto, path.parent)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(path.parent))
        self.session = ort.InferenceSession(proto.SerializeToString(), options, providers=_providers())
        self.graph_inputs = graph_inputs

    def run(self, sample: dict[str, np.ndarray], names: list[str] | None = None,
            weights: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
        names = self.output_names if names is None else names
        fetch = [n for n in names if n not in self.graph_inputs]
        fetched = iter(self.session.run(fetch, {**sample, **(weights or {})}) if fetch else [])
        return [sample[n] if n in self.graph_inputs else next(fetched) for n in names]


def stream(runner: WeightSwapRunner, names: list[str], samples, consume: Callable[[str, np.ndarray], None],
           *, chunk: int = 64, progress: Callable[[int, int], None] | None = None) -> None:
    """Run every sample, fetching at most `chunk` tensors per run, and hand each tensor to `consume`."""
    names = list(dict.fromkeys(names))
    chunks = [names[i:i + chunk] for i in range(0, len(names), chunk)]
    total, done = len(chunks) * len(samples), 0
    for part in chunks:
        for sample in samples:
            for name, value in zip(part, runner.run(sample, part)):
                consume(name, value)
            done += 1
            if progress:
                progress(done, total)


def source_layout(layer: Layer, w_nk: np.ndarray) -> np.ndarray:
    """Inverse of Layer.weight_nk: a [N, K] weight back into the initializer's layout and dtype."""
    operand = w_nk.T if layer.layout == "kn" else w_nk.reshape(layer.operand_shape)
    for node in reversed(layer.chain):
        if node.op_type == "Transpose":
            perm = node.attributes.get_ints("perm", None) or list(reversed(range(operand.ndim)))
            operand = np.transpose(operand, np.argsort(perm))
    dtype = np.dtype(layer.source.const_value.dtype.numpy())
    return np.ascontiguousarray(operand.astype(dtype))

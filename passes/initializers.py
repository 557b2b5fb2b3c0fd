"""Adding a constant to a graph: one initializer under a name not yet taken."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir


def unique_name(graph: ir.Graph, base: str) -> str:
    name, i = base, 0
    while name in graph.initializers:
        i += 1
        name = f"{base}_{i}"
    return name


def add_initializer(
    graph: ir.Graph, name: str, array: np.ndarray, dtype: ir.DataType | None = None
) -> ir.Value:
    """Register `array` as an initializer named `name` (suffixed `_1`, `_2`... if taken)."""
    name = unique_name(graph, name)
    tensor = ir.tensor(np.asarray(array), dtype=dtype, name=name)
    value = ir.Value(
        name=name, const_value=tensor, shape=ir.Shape(tensor.shape), type=ir.TensorType(tensor.dtype)
    )
    graph.register_initializer(value)
    return value

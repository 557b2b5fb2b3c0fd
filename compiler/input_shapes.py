"""Shapes for random inputs when the model leaves some dimensions unknown (symbolic or no shape).

A dimension the model does not fix is guessed: 1 for the first (batch), the K of a GEMM whose
activation the input feeds directly for the last, 16 otherwise. `guessed` says when such a guess
was made, so a failed run on those inputs is reported as what it is rather than as an error.
"""

from __future__ import annotations

import dataclasses

import onnx_ir as ir

from qcompile.calibration import InputSpec


def _gemm_k(model: ir.Model) -> dict[str, int]:
    """Input name -> K of a MatMul or Gemm that takes it directly as its activation."""
    ks: dict[str, int] = {}
    for node in model.graph:
        if node.op_type not in ("MatMul", "Gemm") or len(node.inputs) < 2 or node.inputs[0] is None:
            continue
        weight = node.inputs[1]
        if weight is None or weight.const_value is None or len(weight.const_value.shape) < 2:
            continue
        shape = weight.const_value.shape
        trans_b = node.op_type == "Gemm" and node.attributes.get_int("transB", 0)
        trans_a = node.op_type == "Gemm" and node.attributes.get_int("transA", 0)
        if not trans_a:
            ks.setdefault(node.inputs[0].name, int(shape[-1] if trans_b else shape[-2]))
    return ks


def random_specs(model: ir.Model, specs: list[InputSpec]) -> tuple[list[InputSpec], bool]:
    """`specs` with every unknown dimension filled in; True when any had to be guessed."""
    ks = _gemm_k(model)
    out, guessed = [], False
    for spec in specs:
        shape = spec.shape
        if shape is None:
            shape = (None, ks[spec.name]) if spec.name in ks else (None,)
            guessed = guessed or spec.name not in ks
        elif shape and shape[-1] is None and spec.name in ks:
            shape = (*shape[:-1], ks[spec.name])
        guessed = guessed or any(d is None for d in shape[1:])
        out.append(dataclasses.replace(spec, shape=shape))
    return out, guessed

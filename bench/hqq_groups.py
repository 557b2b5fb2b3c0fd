"""HQQ's block size on SmolLM2, weights only: every MatMul weight of the fp32 model replaced by its
dequantized 4-bit version, scored by the bench's perplexity (bench/tasks.py), so only the weights
differ between rows. onnxruntime's HQQ at block 128 (K = 576 padded to 640) and at block 64, and
qcompile's `hqq` at the groups it uses (64 where K = 576, which 128 does not divide; 128 elsewhere)
and at 128 with a 64-wide last group where 128 does not divide K (`qc128`: the grouping onnxruntime
uses, which qcompile's formats cannot emit), each with its mean squared weight error.

    python -m bench.hqq_groups [--rows ort128,ort64,qc,qc128]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def _ort(w: np.ndarray, block: int) -> np.ndarray:
    import torch
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        HQQWeightOnlyQuantConfig,
        HQQWeightOnlyQuantizer,
    )

    quantizer = HQQWeightOnlyQuantizer(HQQWeightOnlyQuantConfig(block_size=block))
    n, k = w.shape
    q, s, z = quantizer.quantize_internal(torch.from_numpy(w), bits=4, group_size=block)
    padded = q.shape[1]
    deq = (q.numpy().reshape(n, -1, block) - z.numpy()[..., None]) * s.numpy()[..., None]
    return deq.reshape(n, padded)[:, :k]


def _hqq(w: np.ndarray, group: int) -> np.ndarray:
    from qcompile.algorithms.hqq import hqq
    from qcompile.formats import get_format
    from qcompile.quantizer import WeightSpec

    spec = WeightSpec(get_format("int4"), "group", group, offsets=True, scale_dtype="float16")
    return hqq(np.ascontiguousarray(w), spec)[0].dequantize()


def _qcompile(w: np.ndarray) -> np.ndarray:
    return _hqq(w, 128 if w.shape[1] % 128 == 0 else 64)


def _qcompile_ragged(w: np.ndarray, group: int = 128) -> np.ndarray:
    """qcompile's `hqq` at `group` with a shorter last group where `group` does not divide K."""
    whole = w.shape[1] - w.shape[1] % group
    parts = [_hqq(w[:, :whole], group)] if whole else []
    if whole < w.shape[1]:
        parts.append(_hqq(w[:, whole:], w.shape[1] - whole))
    return np.concatenate(parts, axis=1)


ROWS = {
    "ort128": lambda w: _ort(w, 128),
    "ort64": lambda w: _ort(w, 64),
    "qc": _qcompile,
    "qc128": _qcompile_ragged,
}


def main(argv=None) -> int:
    import onnx
    from onnx import numpy_helper

    from bench.tasks import SmolLM2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default=",".join(ROWS))
    args = parser.parse_args(argv)
    task = SmolLM2()
    print(f"fp32  perplexity {task.baseline():.3f}", flush=True)
    for row in args.rows.split(","):
        model = onnx.load(task.model)
        weights = {i.name: i for i in model.graph.initializer}
        errors = []
        for node in model.graph.node:
            if node.op_type == "MatMul" and node.input[1] in weights:
                tensor = weights[node.input[1]]
                w = numpy_helper.to_array(tensor).astype(np.float32).T.copy()  # [N, K]
                deq = ROWS[row](w).astype(np.float32)
                errors.append(float(((deq - w) ** 2).mean()))
                tensor.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(deq.T), tensor.name))
        out = Path(task.out) / f"hqq_groups_{row}.onnx"
        onnx.save(model, out, save_as_external_data=True, location=out.name + ".data")
        print(
            f"{row:<7} perplexity {task.score(out):.3f}  mean weight MSE {np.mean(errors):.3e}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

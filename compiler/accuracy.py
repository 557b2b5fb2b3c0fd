"""Accuracy of a quantized model against the original: both run by onnxruntime on the same samples."""

from __future__ import annotations

import numpy as np

from qcompile.report import ENGINE_ATOL_PER_RMS, OutputAccuracy


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    if denom == 0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(a @ b / denom)


def compare_outputs(
    names: list[str], reference: list[list[np.ndarray]], quantized: list[list[np.ndarray]]
) -> list[OutputAccuracy]:
    """Per output: cosine per sample (mean and min), max and mean absolute error over all samples,
    the quantized output's RMS and the tolerances an engine of it is compared with."""
    results = []
    for i, name in enumerate(names):
        cos = [cosine(r[i], q[i]) for r, q in zip(reference, quantized)]
        errs = [
            np.abs(np.asarray(r[i], np.float64) - np.asarray(q[i], np.float64))
            for r, q in zip(reference, quantized)
        ]
        total = sum(e.size for e in errs)
        squares = sum(float(np.sum(np.square(q[i], dtype=np.float64))) for q in quantized)
        rms = float(np.sqrt(squares / max(total, 1)))
        results.append(
            OutputAccuracy(
                name=name,
                cosine_mean=float(np.mean(cos)),
                cosine_min=float(np.min(cos)),
                max_abs_error=float(max(e.max(initial=0.0) for e in errs)),
                mean_abs_error=float(sum(e.sum() for e in errs) / max(total, 1)),
                rms=rms,
                engine_atol=ENGINE_ATOL_PER_RMS * rms,
            )
        )
    return results

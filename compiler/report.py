"""The report: per layer what was chosen and what it cost, for the model what onnxruntime measured."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path


@dataclasses.dataclass
class LayerReport:
    name: str
    op: str
    shape: tuple[int, int]  # (N, K): output and input channels
    precision: str
    weight_format: str | None = None
    granularity: str | None = None
    bits_per_weight: float | None = None
    weight_sqnr_db: float | None = None
    activation_format: str | None = None
    emitted_as: str | None = None
    reason: str | None = None  # why the layer was left unquantized
    details: dict = dataclasses.field(default_factory=dict)

    @property
    def quantized(self) -> bool:
        return self.reason is None

    def cells(self, num) -> tuple[str, ...]:
        """The table cells every view shows (name to activation format); `num(x, digits)` formats numbers."""
        return (
            self.name,
            self.op,
            f"{self.shape[0]}x{self.shape[1]}",
            self.weight_format or self.precision,
            self.granularity or "-",
            num(self.bits_per_weight, 3),
            num(self.weight_sqnr_db, 1),
            self.activation_format or "-",
        )

    def outcome(self) -> str:
        return self.emitted_as if self.quantized else f"kept: {self.reason}"


# A TensorRT engine of the quantized model against its standard-ONNX lowering run by onnxruntime
# (`qcompile compare`): both read the same quantized weights, but the engine rounds activations
# and outputs to float16 (2^-11 relative) and sums in another order. An element near zero of a
# sum of K products carries the rounding of the whole sum, so the absolute part of the tolerance
# scales with the output's RMS, not with the element: |engine - onnxruntime| <= atol + rtol * |onnxruntime|.
ENGINE_RTOL = 1e-2
ENGINE_ATOL_PER_RMS = 1e-2


@dataclasses.dataclass
class OutputAccuracy:
    name: str
    cosine_mean: float
    cosine_min: float
    max_abs_error: float
    mean_abs_error: float
    rms: float = 0.0  # of the quantized model's output over the samples
    engine_rtol: float = ENGINE_RTOL
    engine_atol: float = 0.0  # ENGINE_ATOL_PER_RMS * rms


@dataclasses.dataclass
class BlockError:
    """Error of a block's output (original vs quantized model, each fed its own previous blocks)."""

    block: int
    value: str
    cosine_mean: float
    cosine_min: float
    relative_mse: float  # sum((ref - q)^2) / sum(ref^2) over the evaluation samples


@dataclasses.dataclass
class Report:
    model: str
    recipe: dict
    layers: list[LayerReport]
    size_before: int
    size_after: int
    accuracy: list[OutputAccuracy]
    eval_samples: int
    eval_source: str  # "held-back calibration samples" or a warning about random data
    notes: list[str] = dataclasses.field(default_factory=list)
    timings: dict = dataclasses.field(default_factory=dict)
    blocks: list[BlockError] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return _clean(dataclasses.asdict(self))

    def write_json(self, path: Path) -> None:
        from qcompile.outputs import write_text_atomic

        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def table(self) -> str:
        rows = [("layer", "op", "N x K", "format", "gran.", "bits/w", "SQNR dB", "act", "as / reason")]
        for lr in self.layers:
            rows.append((*lr.cells(_num), lr.outcome()))
        widths = [min(max(len(r[i]) for r in rows), 48) for i in range(len(rows[0]))]
        lines = ["  ".join(c[:48].ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        quantized = [lr for lr in self.layers if lr.quantized]
        lines += [
            "",
            f"layers quantized: {len(quantized)} of {len(self.layers)}",
            f"size: {_mb(self.size_before)} -> {_mb(self.size_after)} "
            f"({self.size_before / max(self.size_after, 1):.2f}x smaller)",
        ]
        if self.accuracy:
            lines.append(
                f"accuracy against the original on {self.eval_samples} {self.eval_source} (onnxruntime, CPU):"
            )
            for acc in self.accuracy:
                lines.append(
                    f"  {acc.name}: cosine mean {acc.cosine_mean:.5f} min {acc.cosine_min:.5f}, "
                    f"max |err| {acc.max_abs_error:.4g}, mean |err| {acc.mean_abs_error:.4g}"
                )
        if self.blocks:
            lines.append(
                "error at the end of each block (original vs quantized, each fed its own earlier blocks):"
            )
            lines += [
                f"  block {b.block} ({b.value}): cosine {b.cosine_mean:.5f}, relative MSE "
                f"{b.relative_mse:.3g}"
                for b in self.blocks
            ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _num(x, digits):
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:.{digits}f}"


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def _clean(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item"):
        return _clean(obj.item())
    return obj

"""The mixed-precision plan: a format per layer, saved as hand-editable JSON, turned into a Recipe
whose overrides name every layer exactly.

{"avg_bits": 4.5, "method": "hessian", "group_size": 128, "formats": [...],
 "layers": {"name": {"format": "int4", "bits": 4.25, "params": 147456, "source": "search",
                     "sensitivity": {"hessian": ..., "lim": ...}, "predicted_error": {"int4": ...}}}}
Only "format" is read back per layer (a candidate name like int4 or any preset like w8a8); bits
and params are recomputed from the model when one is given (`refresh`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from qcompile.errors import RecipeError
from qcompile.mixed.candidates import format_of, preset_of
from qcompile.recipe import SKIP, Recipe

VERSION = 1


@dataclasses.dataclass
class LayerPlan:
    format: str
    bits: float
    params: int
    source: str = "search"  # "search" or "override"
    sensitivity: dict = dataclasses.field(default_factory=dict)
    predicted_error: dict = dataclasses.field(default_factory=dict)

    @property
    def preset(self) -> str:
        return preset_of(self.format)


@dataclasses.dataclass
class Plan:
    avg_bits: float
    method: str
    layers: dict[str, LayerPlan]
    group_size: int = 128
    formats: tuple[str, ...] = ()
    predicted_error: float | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    details: dict = dataclasses.field(default_factory=dict)

    @property
    def average_bits(self) -> float:
        total = sum(lp.params for lp in self.layers.values())
        return sum(lp.params * lp.bits for lp in self.layers.values()) / max(total, 1)

    def to_recipe(self, base: Recipe | None = None) -> Recipe:
        """`base` (group size, holdout, algorithm...) with one exact-name override per layer; layers
        the plan does not name stay in high precision."""
        base = base or Recipe(group_size=self.group_size)
        if base.group_size != self.group_size:
            raise RecipeError(f"plan was made for group size {self.group_size}, recipe has {base.group_size}")
        options = {
            **base.to_dict(),
            "precision": SKIP,
            "exclude": [],
            "overrides": {name: lp.preset for name, lp in self.layers.items()},
        }
        return Recipe.from_dict(options)

    def refresh(self, infos) -> list[str]:
        """Recompute bits and params from the model's layers; returns warnings (unknown names)."""
        from qcompile.mixed.candidates import preset_bits

        known = {i.name: i for i in infos}
        warnings = [
            f"plan names layer {name!r}, which the model does not have"
            for name in self.layers
            if name not in known
        ]
        for name, lp in self.layers.items():
            if name in known:
                bits, reason = preset_bits(known[name].layer, lp.preset, self.group_size)
                if bits is None:
                    warnings.append(
                        f"{name}: {lp.format} is not possible ({reason}); it stays in high precision"
                    )
                    bits = 16.0
                lp.bits, lp.params = bits, known[name].params
        return warnings

    def to_dict(self) -> dict:
        return {
            "version": VERSION,
            "avg_bits": self.avg_bits,
            "achieved_bits": round(self.average_bits, 6),
            "method": self.method,
            "group_size": self.group_size,
            "formats": list(self.formats),
            "predicted_error": self.predicted_error,
            "notes": self.notes,
            "details": self.details,
            "layers": {name: dataclasses.asdict(lp) for name, lp in self.layers.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        try:
            layers = {}
            for name, entry in data["layers"].items():
                fmt = entry["format"]
                preset_of(fmt)
                layers[name] = LayerPlan(
                    fmt,
                    float(entry.get("bits", 0.0)),
                    int(entry.get("params", 0)),
                    entry.get("source", "search"),
                    dict(entry.get("sensitivity", {})),
                    dict(entry.get("predicted_error", {})),
                )
            return cls(
                float(data["avg_bits"]),
                str(data.get("method", "manual")),
                layers,
                int(data.get("group_size", 128)),
                tuple(data.get("formats", ())),
                data.get("predicted_error"),
                list(data.get("notes", [])),
                dict(data.get("details", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RecipeError(
                f"plan is malformed ({type(exc).__name__}: {exc}); expected "
                '{"avg_bits": ..., "layers": {name: {"format": ...}}}'
            ) from None

    def to_json(self) -> str:
        return json.dumps(_finite(self.to_dict()), indent=2) + "\n"

    def save(self, path: str | Path) -> Path:
        from qcompile.outputs import write_text_atomic

        return write_text_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise RecipeError(f"cannot read plan {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise RecipeError(f"plan {path} is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def table(self) -> str:
        methods = sorted({m for lp in self.layers.values() for m in lp.sensitivity})
        rows = [("layer", "params", "format", "bits", *methods)]
        for name, lp in self.layers.items():
            rows.append(
                (
                    name,
                    str(lp.params),
                    lp.format + (" (override)" if lp.source == "override" else ""),
                    f"{lp.bits:.3f}",
                    *(_g(lp.sensitivity.get(m)) for m in methods),
                )
            )
        widths = [min(max(len(r[i]) for r in rows), 56) for i in range(len(rows[0]))]
        lines = ["  ".join(c[:56].ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        counts = {}
        for lp in self.layers.values():
            counts[format_of(lp.preset)] = counts.get(format_of(lp.preset), 0) + lp.params
        total = max(sum(counts.values()), 1)
        mix = ", ".join(f"{f} {100 * p / total:.1f}%" for f, p in sorted(counts.items()))
        lines += [
            "",
            f"average bits per weight: {self.average_bits:.4f} (budget {self.avg_bits:g}; "
            f"method {self.method}); parameters by format: {mix}",
        ]
        return "\n".join(lines)


def _g(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def _finite(obj):
    import math

    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj

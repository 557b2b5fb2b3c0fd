"""The two real-model tasks the benchmark scripts measure: the model file, its calibration data,
and the metric (onnxruntime on the CPU), built once under bench/out/<key>/."""

from __future__ import annotations

import shutil
from pathlib import Path

OUT = Path("bench/out")


def with_tokenizer(model: Path, write_tokenizer) -> Path:
    """A copy of `model` (and its external data) in a folder of its own with a tokenizer.json beside it,
    as Hugging Face exports ship one: compiled without data, qcompile calibrates on its own text."""
    folder = model.parent / "with_tokenizer"
    copy = folder / model.name
    if not copy.exists():
        folder.mkdir(exist_ok=True)
        write_tokenizer(folder / "tokenizer.json")
        data = model.with_name(model.name + ".data")
        if data.exists():
            shutil.copyfile(data, folder / data.name)
        shutil.copyfile(model, copy)
    return copy


class MiniLM:
    key, name, metric, higher_is_better = "minilm", "all-MiniLM-L6-v2", "mean embedding cosine", True

    def __init__(self, eval_text: str = "eval"):
        from bench.models import minilm

        self.m = minilm
        self.out = OUT / self.key
        self.out.mkdir(parents=True, exist_ok=True)
        self.model = self.out / "minilm.onnx"
        if not self.model.exists():
            minilm.build_minilm_onnx(self.model)
        self.calib = minilm.make_calibration_npz(self.out / "calib.npz")
        self.feeds = minilm.tokenize(minilm.SENTENCES_EVAL if eval_text == "eval" else _sentences(eval_text))
        self.reference = self._embed(self.model, True)

    def _embed(self, path: Path, optimize: bool):
        from bench.common import run_onnx

        return run_onnx(path, self.feeds, optimize)[0]

    def score(self, path: Path, optimize: bool = False) -> float:
        """Mean cosine against fp32 (graph optimizations off by default: FP8 Q/DQ needs it)."""
        return self.m.embedding_cosine(self.reference, self._embed(path, optimize))

    def baseline(self) -> float:
        return 1.0

    def with_tokenizer(self) -> Path:
        tokenizer = self.m.model_dir() / "tokenizer.json"
        return with_tokenizer(self.model, lambda path: shutil.copyfile(tokenizer, path))


class SmolLM2:
    key, name, metric, higher_is_better = (
        "smollm2",
        "SmolLM2-135M-Instruct (Q4_1 GGUF weights)",
        "perplexity",
        False,
    )

    def __init__(
        self,
        calib_samples: int = 32,
        eval_windows: int | None = None,
        calib_name: str = "calib.npz",
        eval_text: str = "eval",
    ):
        from bench.models import smollm2

        self.m = smollm2
        self.out = OUT / self.key
        self.out.mkdir(parents=True, exist_ok=True)
        self.model = self.out / "smollm2.onnx"
        if not self.model.exists():
            smollm2.build_smollm2_onnx(self.model)
        tokenizer = smollm2.load_tokenizer()
        self.calib = smollm2.calibration_npz(self.out / calib_name, calib_samples, 128, tokenizer)
        text = (smollm2.TEXTS_DIR / f"{eval_text}.txt").read_text(encoding="utf-8")
        self.windows = smollm2.make_windows(text, 128, eval_windows, tokenizer)

    def score(self, path: Path, optimize: bool = False) -> float:
        return self.m.perplexity(path, self.windows, self.m.session_options(optimize))

    def baseline(self) -> float:
        return self.score(self.model, True)

    def with_tokenizer(self) -> Path:
        return with_tokenizer(self.model, lambda path: self.m.load_tokenizer().save(str(path)))


def _sentences(eval_text: str) -> list[str]:
    """The sentences of bench/texts/<eval_text>.txt (a third text, distinct from calibration and eval)."""
    import re

    text = (Path(__file__).parent / "texts" / f"{eval_text}.txt").read_text(encoding="utf-8")
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.split()) >= 4]


def lowered(path: Path) -> Path:
    """The standard-ONNX lowering of a model with qcompile plugin nodes (what onnxruntime can run)."""
    import onnx_ir as ir

    from qcompile.passes.lower_plugins import LowerPluginNodes

    model = ir.load(path)
    LowerPluginNodes()(model)
    out = path.with_name(path.stem + ".lowered.onnx")
    external = path.with_name(path.name + ".data").exists()
    ir.save(model, out, external_data=out.name + ".data" if external else None)
    return out

"""all-MiniLM-L6-v2: mean sentence-embedding cosine, original vs quantized, on held-out sentences.

qcompile's presets next to onnxruntime's quantize_static (QDQ, per-channel INT8 weights, MinMax,
MatMul only), all calibrated on the same sentences by this one script.

    python -m bench.accuracy_minilm [--presets fp8,w8a8,w4a16,w4a8] [--markdown]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import qcompile
from bench.common import ort_quantize_static, run_onnx
from bench.models import minilm
from qcompile.recipe import Recipe

OUT = Path("bench/out/minilm")


def evaluate(path: Path, feeds, reference, optimize=True) -> float:
    return minilm.embedding_cosine(reference, run_onnx(path, feeds, optimize)[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="fp8,w8a8,w4a16,w4a8,w6a16,wfp4a8")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    model = OUT / "minilm.onnx"
    if not model.exists():
        minilm.build_minilm_onnx(model)
    calib_path = minilm.make_calibration_npz(OUT / "calib.npz")
    with np.load(calib_path) as data:
        calib = {k: data[k] for k in data.files}
    feeds = minilm.tokenize(minilm.SENTENCES_EVAL)
    reference = run_onnx(model, feeds)[0]
    rows = []
    for preset in args.presets.split(","):
        t0 = time.perf_counter()
        out = OUT / f"minilm.{preset}.onnx"
        recipe = Recipe(preset, holdout=0.0)
        qcompile.compile(model, recipe, calib_path, output=out, force=True, verify=False)
        if preset in ("w6a16", "wfp4a8"):
            out = _lowered(out)
        rows.append((f"qcompile {preset}", evaluate(out, feeds, reference, optimize="fp8" not in preset and "a8" != preset[-2:]),
                     time.perf_counter() - t0))
    for symmetric in (True, False):
        t0 = time.perf_counter()
        out = OUT / f"minilm.ort_static_{'sym' if symmetric else 'asym'}.onnx"
        ort_quantize_static(model, out, calib, symmetric_activations=symmetric)
        name = f"onnxruntime quantize_static ({'int8 symmetric' if symmetric else 'uint8 asymmetric'} activations)"
        rows.append((name, evaluate(out, feeds, reference), time.perf_counter() - t0))
    _print(rows, args.markdown, len(minilm.SENTENCES_EVAL))
    return 0


def _lowered(path: Path) -> Path:
    import onnx_ir as ir

    from qcompile.passes.lower_plugins import LowerPluginNodes

    model = ir.load(path)
    LowerPluginNodes()(model)
    out = path.with_name(path.stem + ".lowered.onnx")
    ir.save(model, out)
    return out


def _print(rows, markdown: bool, n: int) -> None:
    print(f"all-MiniLM-L6-v2, mean embedding cosine vs fp32 on {n} held-out sentences (onnxruntime CPU)")
    if markdown:
        print("| method | mean cosine | time (s) |\n|---|---|---|")
        for name, cos, secs in rows:
            print(f"| {name} | {cos:.5f} | {secs:.1f} |")
    else:
        for name, cos, secs in rows:
            print(f"  {name:<70} {cos:.5f}  ({secs:.1f} s)")


if __name__ == "__main__":
    raise SystemExit(main())

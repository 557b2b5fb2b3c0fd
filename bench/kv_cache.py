"""SmolLM2 exported with its KV cache (Optimum's layout): qcompile's presets run as a user runs them
(the command line, so the measured defaults apply), with a calibration file that holds only
`input_ids` (qcompile completes the mask, positions and pasts) or with none (qcompile generates
its own; `:text`, a tokenizer.json beside a copy of the model: qcompile's own text), scored on
prefill and on decode.

    python -m bench.kv_cache [--rows w4a16,w4a16:nocalib,w8a8,w8a8:nocalib,w8a8:text,fp8] [--windows 8]

Perplexity on bench/texts/eval.txt: windows of 128 tokens; prefill scores the last 64 predictions
of one pass over a window; decode runs its first 64 tokens in one pass, then one token per step
through the cache, and scores the same 64 predictions (bench/models/smollm2_kv.py).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench.models import smollm2, smollm2_kv
from bench.tasks import OUT, lowered, with_tokenizer

PREFILL = 64
QCOMPILE = [
    sys.executable,
    "-c",
    "import sys; from qcompile.cli import main; sys.argv[0] = 'qcompile'; main()",
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="w4a16,w4a16:nocalib,w8a8,w8a8:nocalib,fp8")
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--calib-samples", type=int, default=32)
    args = parser.parse_args(argv)

    out = OUT / "smollm2"
    out.mkdir(parents=True, exist_ok=True)
    model = out / "smollm2_kv.onnx"
    if not model.exists():
        smollm2_kv.build_smollm2_kv_onnx(model)
    tokenizer = smollm2.load_tokenizer()
    calib = smollm2.calibration_npz(out / "calib.npz", args.calib_samples, 128, tokenizer)
    text = (smollm2.TEXTS_DIR / "eval.txt").read_text(encoding="utf-8")
    windows = smollm2.make_windows(text, 128, args.windows, tokenizer)
    print(f"{model}: {len(windows)} windows of 128 tokens, decode after {PREFILL}; calibration {calib}")
    print(f"  {'row':<34} {'prefill ppl':>12} {'decode ppl':>11}  compile s")
    start = time.perf_counter()
    base = smollm2_kv.perplexities(model, windows, PREFILL)
    print(
        f"  {'fp32':<34} {base[0]:>12.3f} {base[1]:>11.3f}  ({time.perf_counter() - start:.0f} s to score)",
        flush=True,
    )
    for row in args.rows.split(","):
        precision, *flags = row.split(":")
        path = out / f"kv.{row.replace(':', '_')}.onnx"
        command = [
            *QCOMPILE,
            str(with_tokenizer(model, lambda p: tokenizer.save(str(p))) if "text" in flags else model),
            "--precision",
            precision,
            "-o",
            str(path),
            "--force",
            "-q",
            "--no-verify",
        ]
        without_data = "nocalib" in flags or "text" in flags
        if not without_data:
            command += ["--calib", str(calib)]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            print(f"  {row:<34} failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
            continue
        scored = lowered(path) if _has_plugins(path) else path
        prefill, decode = smollm2_kv.perplexities(scored, windows, PREFILL, smollm2.session_options(False))
        source = "without data" if without_data else "input_ids file"
        label = f"{precision} {source}{', text' if 'text' in flags else ''}"
        print(f"  {label:<34} {prefill:>12.3f} {decode:>11.3f}  {seconds:.0f}", flush=True)
    return 0


def _has_plugins(path: Path) -> bool:
    import onnx

    return any(n.domain == "qcompile" for n in onnx.load(str(path), load_external_data=False).graph.node)


if __name__ == "__main__":
    sys.exit(main())

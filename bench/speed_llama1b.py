"""w4a16 on a LLaMA-shaped model of about 1B parameters (random weights, external data):
wall time and peak RSS of `qcompile --precision w4a16` next to onnxruntime's
MatMulNBitsQuantizer (RTN, block 128) on the same model, each in its own child process.

    python -m bench.speed_llama1b [--dir /tmp/qc-llama1b] [--layers 16] [--algo rtn|gptq]

The model is generated once into --dir (about 4.4 GB; never commit it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.common import timed_child


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/qc-llama1b"))
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--algo", default="rtn", help="qcompile weight algorithm (rtn or gptq)")
    parser.add_argument("--skip-ort", action="store_true")
    parser.add_argument("--ort-timeout", type=int, default=None, help="stop onnxruntime's quantizer after this many s")
    args = parser.parse_args(argv)
    model = args.dir / "llama1b.onnx"
    if not model.exists():
        wall, rss, rc = timed_child([sys.executable, "bench/models/llama1b.py", str(args.dir), "--layers", str(args.layers)])
        if rc:
            return rc
        print(f"generated {model} in {wall:.0f} s")
    weight_bytes = (args.dir / "llama1b.onnx.data").stat().st_size
    print(f"fp32 weights: {weight_bytes / 1e9:.2f} GB")

    out = args.dir / f"llama1b.w4a16.{args.algo}.onnx"
    cmd = ["qcompile", str(model), "--precision", "w4a16", "-o", str(out), "--force", "-q"]
    if args.algo != "rtn":
        cmd += ["--calib", str(args.dir / "llama_calib.npz"), "--algorithm", args.algo]
    rows = [(f"qcompile w4a16 ({args.algo}, with verification run)", *timed_child(cmd)),
            (f"qcompile w4a16 ({args.algo}, --no-verify)", *timed_child(cmd + ["--no-verify"]))]
    if not args.skip_ort:
        algo = args.algo.upper()
        ort_out = args.dir / f"llama1b.ort_{args.algo}.onnx"
        code = ("import sys; from pathlib import Path; import numpy as np; from bench.common import ort_matmulnbits; "
                "calib = dict(np.load(sys.argv[3])); "
                "ort_matmulnbits(Path(sys.argv[1]), Path(sys.argv[2]), algo=sys.argv[4], block_size=128, calib=calib)")
        limit = ["timeout", str(args.ort_timeout)] if args.ort_timeout else []
        rows.append((f"onnxruntime MatMulNBitsQuantizer ({algo}, block 128)",
                     *timed_child([*limit, sys.executable, "-c", code, str(model), str(ort_out),
                                   str(args.dir / "llama_calib.npz"), algo])))
    print(f"{'tool':<58} {'wall s':>8} {'peak RSS GB':>12} {'RSS / fp32 weights':>19}")
    for name, wall, rss, rc in rows:
        status = "" if rc == 0 else "  (stopped by --ort-timeout)" if rc == 124 else f"  (exit {rc})"
        print(f"{name:<58} {wall:>8.1f} {rss / 1e9:>12.2f} {rss / weight_bytes:>19.2f}{status}")
    if not args.skip_ort and all(r[3] == 0 for r in rows):
        for ours in rows[:-1]:
            print(f"{ours[0]} / onnxruntime: time {ours[1] / rows[-1][1]:.2f}x, peak RSS {ours[2] / rows[-1][2]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""qcompile against onnxruntime's MatMulNBitsQuantizer on a LLaMA-shaped model of 1B or 7B
parameters (random weights, fp32 external data): wall time and peak RSS of each tool, each in
its own child process, in one run, and their ratios.

    python -m bench.large_models [--size 1b|7b] [--dir /tmp/qc-llama1b] [--opset 21]
                                 [--rows rtn,rtn-no-verify,gptq,gptq-sequential,w4a8,ort-rtn,ort-rtn-cap20g]
                                 [--calib-samples 16 --calib-seq 256]

The model is generated once into --dir (1B: 3.8 GB; 7B: 27 GB; never commit it). Peak RSS is
the child's ru_maxrss (resource.getrusage(RUSAGE_CHILDREN) of a wrapper process); CPU seconds
(user + system) are printed too, as wall time on a shared machine depends on the other jobs.
Ratios are onnxruntime's figure over qcompile's for time (above 1: qcompile faster) and
qcompile's over onnxruntime's for memory (below 1: qcompile leaner).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from bench.common import measured_child, timed_child

# this interpreter's qcompile (a bare `qcompile` on PATH may be another checkout's install)
QCOMPILE = [
    sys.executable,
    "-c",
    "import sys; from qcompile.cli import main; sys.argv[0] = 'qcompile'; main()",
]
ORT = (
    "import sys; from pathlib import Path; from bench.common import ort_matmulnbits; "
    "ort_matmulnbits(Path(sys.argv[1]), Path(sys.argv[2]), algo='RTN', block_size=128)"
)


def _rows(model: Path, folder: Path, calib: Path) -> dict[str, tuple[str, list[str]]]:
    def qc(name, *extra, precision="w4a16"):
        out = folder / f"q.{name}.onnx"
        return [*QCOMPILE, str(model), "--precision", precision, "-o", str(out), "--force", "-q", *extra]

    return {
        "rtn": ("qcompile w4a16 RTN (default verification)", qc("rtn", "--algorithm", "rtn")),
        "rtn-no-verify": (
            "qcompile w4a16 RTN --no-verify",
            qc("rtn-nv", "--algorithm", "rtn", "--no-verify"),
        ),
        "gptq": (
            "qcompile w4a16 GPTQ (calibration file, verification)",
            qc("gptq", "--algorithm", "gptq", "--calib", str(calib)),
        ),
        "w4a8": (
            "qcompile w4a8 (calibration file, verification)",
            qc("w4a8", "--calib", str(calib), precision="w4a8"),
        ),
        "gptq-sequential": (
            "qcompile w4a16 GPTQ --sequential",
            qc("gptq-seq", "--algorithm", "gptq", "--calib", str(calib), "--sequential"),
        ),
        "ort-rtn": (
            "onnxruntime MatMulNBitsQuantizer (RTN, block 128)",
            [sys.executable, "-c", ORT, str(model), str(folder / "ort.rtn.onnx")],
        ),
        # on a shared machine a model larger than memory must fail inside a cap, not invoke the OOM killer
        "ort-rtn-cap20g": (
            "onnxruntime MatMulNBitsQuantizer (RTN, block 128), 20 GiB address-space cap",
            [
                "prlimit",
                f"--as={20 << 30}",
                sys.executable,
                "-c",
                ORT,
                str(model),
                str(folder / "ort.rtn.onnx"),
            ],
        ),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["1b", "7b"], default="1b")
    parser.add_argument("--dir", type=Path, default=None, help="default: /tmp/qc-llama<size>")
    parser.add_argument("--opset", type=int, default=21)
    parser.add_argument("--rows", default="rtn,rtn-no-verify,ort-rtn")
    parser.add_argument("--calib-samples", type=int, default=16)
    parser.add_argument("--calib-seq", type=int, default=256)
    args = parser.parse_args(argv)
    folder = args.dir or Path(f"/tmp/qc-llama{args.size}")
    model = folder / "llama.onnx"
    if not model.exists():
        wall, _, rc = timed_child(
            [
                sys.executable,
                "bench/models/llama1b.py",
                str(folder),
                "--size",
                args.size,
                "--opset",
                str(args.opset),
                "--name",
                "llama",
            ]
        )
        if rc:
            return rc
        print(f"generated {model} in {wall:.0f} s")
    weight_bytes = (folder / "llama.onnx.data").stat().st_size
    calib = folder / f"calib_{args.calib_samples}x{args.calib_seq}.npz"
    rng = np.random.default_rng(0)
    np.savez(calib, input_ids=rng.integers(0, 32000, (args.calib_samples, 1, args.calib_seq), dtype=np.int64))
    print(
        f"fp32 weights: {weight_bytes / 1e9:.2f} GB; "
        f"calibration {args.calib_samples} x {args.calib_seq} tokens"
    )

    table = _rows(model, folder, calib)
    results = []
    for key in args.rows.split(","):
        name, cmd = table[key]
        wall, rss, rc, cpu = measured_child(cmd)
        results.append((key, name, wall, rss, rc, cpu))
        status = "" if rc == 0 else f" (exit {rc})"
        print(f"  {name}: {wall:.1f} s ({cpu:.1f} s CPU), {rss / 1e9:.2f} GB{status}", flush=True)
    ort = next((r for r in results if r[0].startswith("ort-rtn") and r[4] == 0), None)
    print(
        "\n| tool | wall s | CPU s | peak RSS GB | RSS / fp32 weights | speed vs onnxruntime (wall, CPU) "
        "| RSS vs onnxruntime |"
    )
    print("|---|---|---|---|---|---|---|")
    for key, name, wall, rss, rc, cpu in results:
        status = "" if rc == 0 else f" (exit {rc})"
        ours = ort and not key.startswith("ort-rtn")
        speed = f"{ort[2] / wall:.2f}x, {ort[5] / cpu:.2f}x" if ours else "-"
        memory = f"{rss / ort[3]:.2f}x" if ours else "-"
        print(
            f"| {name}{status} | {wall:.1f} | {cpu:.1f} | {rss / 1e9:.2f} | {rss / weight_bytes:.2f} "
            f"| {speed} | {memory} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark of the qcompile GEMM kernels (libqc_kernels.so) against torch.matmul FP16 (cuBLAS)
and, for W4A8, torch._scaled_mm FP8, in the same run. Needs a CUDA GPU and torch.

Each timed call follows a 256 MB write that flushes L2; CUDA events; median of --iters runs.
"Limit" is the speedup a weight-bandwidth-bound kernel could reach over the baseline (ratio of
weight bytes incl. scales): FP6 per channel ~2.67x, INT4 g128 ~3.88x vs FP16, 4-bit vs FP8 ~1.97x.

    python bench/kernels_bench.py [--kernels w6a16,w6a16_v2,w4a16,w4a16_v2,w4a8] [--ms 1,16,128]
                                  [--shapes 4096x4096] [--markdown]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "gpu"))
import kernel_abi as abi  # noqa: E402

SHAPES = [(4096, 4096), (11008, 4096), (4096, 11008), (8192, 8192), (28672, 8192)]
GROUP = 128


def timed(fn, flush, iters: int) -> float:
    """Median milliseconds of fn() with L2 flushed before every call."""
    import torch

    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        flush.zero_()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def check(status: int):
    if status != abi.OK:
        raise RuntimeError(f"kernel returned status {status}")


def bench_shape(lib, kernel: str, m: int, n: int, k: int, flush, iters: int) -> dict:
    import torch

    dev = "cuda"
    x = torch.randn(m, k, dtype=torch.float16, device=dev)
    y = torch.empty(m, n, dtype=torch.float16, device=dev)
    w16 = torch.randn(n, k, dtype=torch.float16, device=dev)
    base = timed(lambda: torch.matmul(x, w16.T), flush, iters)
    row = dict(kernel=kernel, M=m, N=n, K=k, fp16_ms=base)
    rand_u8 = lambda *s: torch.randint(0, 256, s, dtype=torch.uint8, device=dev)  # noqa: E731
    if kernel in ("w6a16", "w6a16_v2"):  # layout 1 (fp6_4+2) or 2 (fp6_v2): random bytes suit both
        lo4, hi2 = rand_u8(n, k // 2), rand_u8(n, k // 4)
        scales = torch.rand(n, device=dev).half() * 0.01
        ws = torch.empty(max(lib.qc_w6a16_workspace_size(m, n, k), 16), dtype=torch.uint8, device=dev)
        layout = 2 if kernel == "w6a16_v2" else 1
        fn = lambda: check(abi.w6a16(lib, x, lo4, hi2, scales, y, "fp6_e3m2", ws, layout))  # noqa: E731
        weight_bytes = n * k * 0.75 + n * 2
    elif kernel in ("w4a16", "w4a16_v2"):  # layout 1 (nibble) or 2 (int4_v2): random bytes suit both
        w4 = rand_u8(n, k // 2)
        scales = torch.rand(n, k // GROUP, device=dev).half() * 0.01
        ws = torch.empty(max(lib.qc_w4a16_workspace_size(m, n, k, GROUP), 16), dtype=torch.uint8, device=dev)
        layout = 2 if kernel == "w4a16_v2" else 1
        fn = lambda: check(abi.w4a16(lib, x, w4, scales, None, y, GROUP, "int4", ws, layout))  # noqa: E731
        weight_bytes = n * k * 0.5 + n * (k // GROUP) * 2
    else:
        w4 = rand_u8(n, k // 2)
        exps = torch.randint(-4, 1, (n, k // GROUP), dtype=torch.int8, device=dev)
        cscale = torch.rand(n, device=dev) * 0.01
        act_scale = (x.float().abs().max() / 448).reshape(1)
        ws = torch.empty(
            max(lib.qc_w4a8_workspace_size(m, n, k, GROUP, 0), 16), dtype=torch.uint8, device=dev
        )
        fn = lambda: check(
            abi.w4a8(lib, x, w4, exps, cscale, act_scale, y, GROUP, "fp4_e2m1", "per_tensor", ws)
        )  # noqa: E731
        weight_bytes = n * k * 0.5 + n * (k // GROUP) + n * 4
        row["fp8_ms"] = scaled_mm_ms(m, n, k, flush, iters)
        row["fp8_fast_ms"] = scaled_mm_ms(m, n, k, flush, iters, fast_accum=True)
    row["ms"] = timed(fn, flush, iters)
    row["speedup"] = base / row["ms"]
    row["limit"] = n * k * 2 / weight_bytes
    row["of_limit"] = row["speedup"] / row["limit"]
    row["GB/s"] = weight_bytes / row["ms"] / 1e6
    if "fp8_ms" in row and row["fp8_ms"] is not None:
        row["vs_fp8"] = row["fp8_ms"] / row["ms"]
        if row.get("fp8_fast_ms") is not None:
            row["vs_fp8_fast"] = row["fp8_fast_ms"] / row["ms"]
        row["fp8_limit"] = n * k / weight_bytes
    return row


def scaled_mm_ms(m: int, n: int, k: int, flush, iters: int, fast_accum: bool = False) -> float | None:
    """torch._scaled_mm FP8 (M padded to 16, which it needs), optionally with fast accumulation;
    None where unsupported."""
    import torch

    dev = "cuda"
    mp = max(16, (m + 15) // 16 * 16)
    a = torch.randn(mp, k, device=dev).to(torch.float8_e4m3fn)
    b = torch.randn(n, k, device=dev).to(torch.float8_e4m3fn)
    one = torch.ones((), device=dev)
    try:
        fn = lambda: torch._scaled_mm(
            a,
            b.T,
            scale_a=one,
            scale_b=one,
            out_dtype=torch.float16,  # noqa: E731
            use_fast_accum=fast_accum,
        )
        fn()
    except RuntimeError:
        return None
    return timed(fn, flush, iters)


def copy_bandwidth(buf, iters: int) -> float:
    """GB/s of a device-to-device copy of half of `buf` into the other half (bytes read + written)."""
    half = buf.numel() // 2
    src, dst = buf[:half], buf[half : 2 * half]
    ms = timed(lambda: dst.copy_(src), buf[:1], iters)
    return 2 * half / ms / 1e6


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kernels", default="w6a16,w6a16_v2,w4a16,w4a16_v2,w4a8")
    parser.add_argument("--ms", default="1,2,4,8,16,32,64,128,512")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--shapes", default=",".join(f"{n}x{k}" for n, k in SHAPES), help="NxK,NxK,...")
    parser.add_argument(
        "--lib", type=Path, default=None, help="libqc_kernels.so (default: kernel_abi.library_path())"
    )
    parser.add_argument("--markdown", action="store_true", help="print a table for BENCHMARKS.md")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("kernels_bench: no CUDA device", file=sys.stderr)
        return 2
    lib = abi.load(args.lib)
    major, minor = torch.cuda.get_device_capability()
    kernels = [k for k in args.kernels.split(",") if k != "w4a8" or major * 10 + minor >= 89]
    flush = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    rows = [
        bench_shape(lib, kern, m, n, k, flush, args.iters)
        for kern in kernels
        for n, k in shapes
        for m in (int(v) for v in args.ms.split(","))
    ]
    ceiling = copy_bandwidth(flush, args.iters)
    gpu = torch.cuda.get_device_name()
    cols = [
        "kernel",
        "M",
        "N",
        "K",
        "fp16_ms",
        "ms",
        "speedup",
        "limit",
        "of_limit",
        "GB/s",
        "of_copy_bw",
        "fp8_ms",
        "vs_fp8",
        "fp8_fast_ms",
        "vs_fp8_fast",
        "fp8_limit",
    ]
    for r in rows:
        r["of_copy_bw"] = r["GB/s"] / ceiling
    fmt = lambda v: "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))  # noqa: E731
    if args.markdown:
        print(
            f"GPU: {gpu}; torch {torch.__version__}; L2 flushed before each call; median of {args.iters}; "
            f"measured device-to-device copy bandwidth (the ceiling of GB/s; of_copy_bw = GB/s over it): "
            f"{ceiling:.0f} GB/s\n"
        )
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for r in rows:
            print("| " + " | ".join(fmt(r.get(c)) for c in cols) + " |")
    else:
        print(f"GPU: {gpu}; device-to-device copy bandwidth {ceiling:.0f} GB/s")
        print("  ".join(f"{c:>9}" for c in cols))
        for r in rows:
            print("  ".join(f"{fmt(r.get(c)):>9}" for c in cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())

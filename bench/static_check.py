"""Static check of the CUDA kernels of plugins/ (no GPU needed): compiles each kernel source per
architecture with nvcc -cubin (the flags of plugins/CMakeLists.txt), then per GEMM kernel prints
registers, spills, shared memory per CTA, the main loop's SASS instructions per weight, and the
pipeline instructions present (LDGSTS/LDSM on sm_80/89; UTMALDG and HGMMA/QGMMA on sm_90a).

Main loop: the backward branch of the kernel whose body holds the most MMA instructions (on a tie,
the shortest). In the pipelined kernels (plugins/common/pipeline.cuh) that is one stage (128 k; 64 k
for W6A16): its wait and barriers, the cp.async of a later stage, the next stage's group parameters,
the activation rearrangement pass (which only some warps run, so the count overstates it for MF <
4), the fragment loads, dequantization and MMAs. Weights per iteration and thread: each MMA's A
operand (16 x k weights, k from the SASS shape: HMMA.16816 -> 16, QMMA.16832 -> 32) over the warp's
32 threads, divided by the token fragments MF that reuse it (the template argument of
qc_*_kernel<MF, ...>); for the sm_90a CUTLASS kernels (plugins/sm90) each wgmma's A operand
(HGMMA.64xNx16 / QGMMA.64xNx32: 64 x k weights, converted once per CTA tile whatever the token tile
N) over the warpgroup's 128 threads. Instructions per weight = SASS instructions in the loop body
(NOPs excluded) / weights per iteration and thread. The CUTLASS kernels' shared memory is dynamic:
the table gives the mainloop's pipeline buffers (stages x (weight + activation + scale tiles), the
stage count read from the kernel's name).

Usage: python bench/static_check.py [--arch 80 89 90a] [--no-cutlass] [--jobs N] [--markdown OUT.md]
       [--define NAME=VALUE]
Needs nvcc, and cuobjdump + nvdisasm (on PATH, or the pip wheels nvidia-cuda-cuobjdump and
nvidia-cuda-nvdisasm: `pip install -e '.[kernels-static]'`); the sm_90a CUTLASS kernels need the
nvidia-cutlass wheel's headers ($QC_CUTLASS_DIR, else `import cutlass_library`) and a few minutes of
nvcc each; --no-cutlass leaves them out.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
INCLUDES = ["common", "ref", "w6a16", "w4a16", "w4a8", "sm90"]
# (source, architectures it is built for: W4A8 needs FP8 MMA, sm_89+)
SOURCES = {
    "w6a16/w6a16.cu": ("80", "89", "90a"),
    "w4a16/w4a16.cu": ("80", "89", "90a"),
    "w4a8/w4a8.cu": ("89", "90a"),
}
# CUTLASS SM90 mixed-input GEMMs (plugins/sm90): sm_90a only.
CUTLASS_SOURCES = {
    "sm90/qc_sm90_w4a16.cu": ("90a",),
    "sm90/qc_sm90_w4a16_shuffled.cu": ("90a",),
    "sm90/qc_sm90_w4a8.cu": ("90a",),
}
MMA = re.compile(r"\b([HQI]G?MMA)\.(\d+(?:x\d+x\d+)?)")
LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
BRA = re.compile(r"\bBRA\s+(?:`\(\.L_x_\d+\)|0x([0-9a-f]+))")
PIPELINE = ("LDGSTS", "LDSM", "UTMALDG", "HGMMA", "QGMMA", "LDGDEPBAR", "DEPBAR")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    try:
        import nvidia.cu13  # the pip wheels' namespace package

        for base in nvidia.cu13.__path__:
            path = Path(base) / "bin" / name
            if path.exists():
                return str(path)
    except ImportError:
        pass
    sys.exit(f"static_check: {name} not found (install nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm)")


def cutlass_dir() -> Path | None:
    """CUTLASS's source tree, found as plugins/CMakeLists.txt finds it."""
    if os.environ.get("QC_CUTLASS_DIR"):
        return Path(os.environ["QC_CUTLASS_DIR"])
    try:
        import cutlass_library
    except ImportError:
        return None
    root = Path(cutlass_library.__file__).parent / "source"
    return root if (root / "include" / "cutlass" / "cutlass.h").exists() else None


def compile_cubin(source: str, arch: str, out: Path, defines: list[str]) -> str:
    cmd = ["nvcc", "-cubin", f"-arch=sm_{arch}", "-O3", "-std=c++17", "-lineinfo", "-Xptxas", "-v"]
    cmd += [f"-D{d}" for d in defines]
    cmd += ["-o", str(out)]
    if source in CUTLASS_SOURCES:
        root = cutlass_dir()
        cmd += ["-DNDEBUG", "--expt-relaxed-constexpr"]
        cmd += ["-isystem", str(root / "include"), "-isystem", str(root / "tools" / "util" / "include")]
    cmd += [f"-I{PLUGINS / d}" for d in INCLUDES] + [str(PLUGINS / source)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"static_check: nvcc failed on {source} sm_{arch}:\n{done.stderr}")
    return done.stderr


def ptxas_info(log: str) -> dict[str, dict]:
    """Per mangled function: registers, spill bytes (stores + loads), static shared memory."""
    info, name = {}, None
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '(\S+)'", line) or re.search(r"properties for (\S+)", line)
        if m:
            name = m.group(1)
            info.setdefault(name, {"regs": 0, "spill": 0, "smem": 0})
        if name is None:
            continue
        if m := re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line):
            info[name]["spill"] = int(m.group(1)) + int(m.group(2))
        if m := re.search(r"Used (\d+) registers", line):
            info[name]["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            info[name]["smem"] = int(s.group(1)) if s else 0
    return info


def sass_functions(cubin: Path) -> dict[str, list[tuple[int, str]]]:
    env = dict(os.environ, PATH=f"{Path(tool('nvdisasm')).parent}:{os.environ.get('PATH', '')}")
    text = subprocess.run(
        [tool("cuobjdump"), "-sass", str(cubin)], capture_output=True, text=True, env=env, check=True
    ).stdout
    funcs, name = {}, None
    for line in text.splitlines():
        if m := re.search(r"Function : (\S+)", line):
            name = m.group(1)
            funcs[name] = []
        elif name and (m := LINE.search(line)):
            funcs[name].append((int(m.group(1), 16), m.group(2)))
    return funcs


def main_loop(instrs: list[tuple[int, str]], innermost: bool = False) -> tuple[list[str], list[str]]:
    """The loop body (instructions) holding the most MMAs, and its MMA instructions; innermost: the
    shortest loop holding any (CUTLASS's persistent kernels nest the K loop in a tile loop)."""
    best, best_key = [], (0, 0)
    for addr, ins in instrs:
        m = BRA.search(ins)
        if not m or m.group(1) is None or int(m.group(1), 16) > addr:
            continue
        start = int(m.group(1), 16)
        body = [i for a, i in instrs if start <= a <= addr and not i.startswith("NOP")]
        mmas = [i for i in body if MMA.search(i)]
        key = (len(mmas) > 0, -len(body)) if innermost else (len(mmas), -len(body))
        if key > best_key:
            best, best_key = body, key
    return best, [i for i in best if MMA.search(i)]


def weights_per_thread(mmas: list[str], mf: int) -> float:
    total = 0
    for ins in mmas:
        shape = MMA.search(ins).group(2)  # e.g. 16816: m16 n8 k16; 16832: k32; 1688: k8
        if "x" in shape:  # wgmma, e.g. 64x16x16: a warpgroup's 64 x k weights over 128 threads
            m, _, k = (int(v) for v in shape.split("x"))
            total += m * k / 128
            continue
        k = int(shape[3:]) if shape.startswith("168") else int(shape[-2:])
        total += 16 * k / 32
    return total / mf


def variant(name: str) -> str:
    """The weight operator of an instantiation: fp6_v2 (E3M2 / E2M3), int4_v2, zero points, FP4."""
    if m := re.search(r"W6(V2)?OpILb(\d)E", name):  # W6Op / W6V2Op<E2M3>: ILb0E E3M2, ILb1E E2M3
        return (" fp6_v2" if m.group(1) else "") + (" e2m3" if m.group(2) == "1" else " e3m2")
    label = " int4_v2" if ("V2Loader" in name or "V2Op" in name) else ""
    label += " zeros" if re.search(r"W4(?:V2)?OpILb1E", name) else ""
    return label + (" fp4" if re.search(r"W4OpILb\dELb1E", name) else "")


def cutlass_row(name: str) -> dict:
    """Label and pipeline shared memory of a CUTLASS GemmUniversal instantiation, from its name:
    stages (MainloopSm90...MixedInputILi<stages>E), CTA tile (128 weights x T tokens x K), weight
    and activation types, scale and zero types (from the mainloop's element tuple)."""
    stages = int(re.search(r"MixedInputILi(\d+)E", name).group(1))
    # TileShape follows the schedule: Int<128>, Int<T> (or a back-reference to Int<128>), Int<K>
    after = re.sub(r"^N?S[0-9A-Z]*_IJ", "", name.split("KernelTmaWarpSpecializedCooperativeEEE", 1)[1])
    dims, pos = [], 0
    while len(dims) < 3 and (m := re.compile(r"N?S[0-9A-Z]*_(?:ILi(\d+)EEE)?").match(after, pos)):
        dims.append(int(m.group(1)) if m.group(1) else 128)
        pos = m.end()
    tokens, tile_k = dims[1], dims[2]
    fp8 = "float_e4m3" in name
    uint4 = "integer_subbyteILi4ELb0E" in name  # int4b_t is <4, true>, uint4b_t <4, false>
    scale_bytes = 8 if fp8 else 2  # Array<e4m3, 8> table per group, or one fp16
    stage = 128 * tile_k // 2 + tokens * tile_k * (1 if fp8 else 2) + 128 * scale_bytes * (2 if uint4 else 1)
    kind = "fp4 lut" if fp8 else ("uint4+zero" if uint4 else "int4")
    smem = f"{stages}x{stage}={stages * stage}"
    return {"label": f" {kind} {tokens}-token tile", "mf": tokens // 8, "smem": smem}


def kernel_rows(source: str, arch: str, tmp: Path, defines: list[str]) -> list[dict]:
    cubin = tmp / f"{Path(source).stem}_{arch}.cubin"
    return cubin_rows(source, arch, cubin, compile_cubin(source, arch, cubin, defines))


def cubin_rows(source: str, arch: str, cubin: Path, ptxas_log: str) -> list[dict]:
    info = ptxas_info(ptxas_log)
    rows = []
    for name, instrs in sass_functions(cubin).items():
        if any(helper in name for helper in ("reduce", "row_scale", "prep", "quantize_rows", "tables")):
            continue  # helper launches, not GEMM main loops
        cut = cutlass_row(name) if "GemmUniversal" in name else None
        mf = re.search(r"kernelILi(\d+)E", name)
        mf = int(mf.group(1)) if mf else 1
        body, mmas = main_loop(instrs, innermost=cut is not None)
        opcodes = [re.sub(r"^@!?U?P\w+\s+", "", i).split(" ")[0].split(".")[0] for _, i in instrs]
        counts = {p: opcodes.count(p) for p in PIPELINE if p in opcodes}
        w = weights_per_thread(mmas, 1 if cut else mf) if mmas else 0
        label = cut["label"] if cut else variant(name)
        ptxas = info.get(name, {"regs": "?", "spill": "?", "smem": "?"})
        rows.append(
            {
                "kernel": Path(source).stem + label,
                "arch": f"sm_{arch}",
                "mf": cut["mf"] if cut else mf,
                **ptxas,
                **({"smem": cut["smem"]} if cut else {}),
                "loop": len(body),
                "mma": len(mmas),
                "mma_kind": ",".join(sorted({MMA.search(i).group(0) for i in mmas})),
                "per_weight": len(body) / w if w else float("nan"),
                "pipeline": " ".join(f"{p}:{c}" for p, c in counts.items()) or "none",
            }
        )
    return sorted(rows, key=lambda r: r["mf"])


def table(rows: list[dict], nvcc_version: str) -> str:
    out = [
        f"Static check ({nvcc_version}; `python bench/static_check.py`): per GEMM kernel instantiation "
        "(MF = 8-token MMA fragments per warp), SASS of the main loop.",
        "",
        "| kernel | arch | MF | registers | spill bytes | smem/CTA | loop instrs | MMAs in loop | "
        "SASS instrs/weight | pipeline instrs (whole kernel) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['kernel']} | {r['arch']} | {r['mf']} | {r['regs']} | {r['spill']} | {r['smem']} | "
            f"{r['loop']} | {r['mma']} {r['mma_kind']} | {r['per_weight']:.2f} | {r['pipeline']} |"
        )
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", nargs="+", default=["80", "89", "90a"])
    ap.add_argument("--no-cutlass", action="store_true", help="leave out the sm_90a CUTLASS kernels")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel nvcc runs")
    ap.add_argument(
        "--define",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a preprocessor definition for every kernel, e.g. QC_PIPE_F16_LDSM=0 (direct fragment reads)",
    )
    ap.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = ap.parse_args()
    if not shutil.which("nvcc"):
        sys.exit("static_check: nvcc not on PATH")
    version = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout.splitlines()[-2]
    sources = dict(SOURCES)
    if not args.no_cutlass and "90a" in args.arch:
        if cutlass_dir() is None:
            print("static_check: CUTLASS not found (pip install nvidia-cutlass): sm90 kernels left out")
        else:
            sources.update(CUTLASS_SOURCES)
    jobs = [(src, arch) for src, archs in sources.items() for arch in args.arch if arch in archs]
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = pool.map(lambda job: kernel_rows(job[0], job[1], Path(tmp), args.define), jobs)
        rows = [row for result in results for row in result]
    text = table(rows, version + "".join(f", -D{d}" for d in args.define))
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

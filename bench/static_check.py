"""Static check of the CUDA kernels of plugins/ (no GPU needed): compiles each kernel source per
architecture with nvcc -cubin (the flags of plugins/CMakeLists.txt), then per GEMM kernel prints
registers, spills, shared memory per CTA, the main loop's SASS instructions per weight, and the
pipeline instructions present (LDGSTS/LDSM on sm_80/89; UTMALDG and HGMMA/QGMMA on sm_90a).

Main loop: the backward branch of the kernel whose body holds the most MMA instructions (on a tie,
the shortest). In the pipelined kernels (plugins/common/pipeline.cuh) that is one stage (128 k;
64 k for W6A16): its wait and barriers, the cp.async of a later stage, the next stage's group parameters, the
activation rearrangement pass (which only some warps run, so the count overstates it for
MF < 4), the fragment loads, dequantization and MMAs. Weights per iteration and thread: each MMA's
A operand (16 x k weights, k from the SASS shape: HMMA.16816 -> 16, QMMA.16832 -> 32) over the
warp's 32 threads, divided by the token fragments MF that reuse it (the template argument of
qc_*_kernel<MF, ...>). Instructions per
weight = SASS instructions in the loop body (NOPs excluded) / weights per iteration and thread.

Usage: python bench/static_check.py [--arch 80 89 90a] [--markdown OUT.md] [--define NAME=VALUE]
Needs nvcc, and cuobjdump + nvdisasm (on PATH, or the pip wheels nvidia-cuda-cuobjdump and
nvidia-cuda-nvdisasm: `pip install -e '.[kernels-static]'`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "plugins"
INCLUDES = ["common", "ref", "w6a16", "w4a16", "w4a8"]
# (source, architectures it is built for: W4A8 needs FP8 MMA, sm_89+)
SOURCES = {
    "w6a16/w6a16.cu": ("80", "89", "90a"),
    "w4a16/w4a16.cu": ("80", "89", "90a"),
    "w4a8/w4a8.cu": ("89", "90a"),
}
MMA = re.compile(r"\b([HQI]MMA)\.(\d+)")
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


def compile_cubin(source: str, arch: str, out: Path, defines: list[str]) -> str:
    cmd = ["nvcc", "-cubin", f"-arch=sm_{arch}", "-O3", "-std=c++17", "-lineinfo", "-Xptxas", "-v"]
    cmd += [f"-D{d}" for d in defines]
    cmd += ["-o", str(out)]
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


def main_loop(instrs: list[tuple[int, str]]) -> tuple[list[str], list[str]]:
    """The loop body (instructions) holding the most MMAs, and its MMA instructions."""
    best, best_key = [], (0, 0)
    for addr, ins in instrs:
        m = BRA.search(ins)
        if not m or m.group(1) is None or int(m.group(1), 16) > addr:
            continue
        start = int(m.group(1), 16)
        body = [i for a, i in instrs if start <= a <= addr and not i.startswith("NOP")]
        mmas = [i for i in body if MMA.search(i)]
        key = (len(mmas), -len(body))
        if key > best_key:
            best, best_key = body, key
    return best, [i for i in best if MMA.search(i)]


def weights_per_thread(mmas: list[str], mf: int) -> float:
    total = 0
    for ins in mmas:
        shape = MMA.search(ins).group(2)  # e.g. 16816: m16 n8 k16; 16832: k32; 1688: k8
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


def kernel_rows(source: str, arch: str, tmp: Path, defines: list[str]) -> list[dict]:
    cubin = tmp / f"{Path(source).stem}_{arch}.cubin"
    info = ptxas_info(compile_cubin(source, arch, cubin, defines))
    rows = []
    for name, instrs in sass_functions(cubin).items():
        if "reduce" in name or "row_scale" in name:
            continue  # helper launches, not GEMM main loops
        mf = re.search(r"kernelILi(\d+)E", name)
        mf = int(mf.group(1)) if mf else 1
        body, mmas = main_loop(instrs)
        opcodes = [re.sub(r"^@!?U?P\w+\s+", "", i).split(" ")[0].split(".")[0] for _, i in instrs]
        counts = {p: opcodes.count(p) for p in PIPELINE if p in opcodes}
        w = weights_per_thread(mmas, mf) if mmas else 0
        rows.append(
            {
                "kernel": Path(source).stem + variant(name),
                "arch": f"sm_{arch}",
                "mf": mf,
                **info.get(name, {"regs": "?", "spill": "?", "smem": "?"}),
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
    ap.add_argument("--markdown", type=Path, help="also write the table to this file")
    ap.add_argument(
        "--define",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a preprocessor definition for every kernel, e.g. QC_PIPE_F16_LDSM=0 (direct fragment reads)",
    )
    args = ap.parse_args()
    if not shutil.which("nvcc"):
        sys.exit("static_check: nvcc not on PATH")
    version = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout.splitlines()[-2]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for source, archs in SOURCES.items():
            for arch in (a for a in args.arch if a in archs):
                rows += kernel_rows(source, arch, Path(tmp), args.define)
    text = table(rows, version + "".join(f", -D{d}" for d in args.define))
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

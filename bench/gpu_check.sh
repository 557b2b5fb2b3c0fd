#!/usr/bin/env bash
# The one GPU script: what a session with a GPU runs first (about 8 minutes at most on an H100/H200).
#   1. builds plugins/ for the detected architecture (sm_90 -> 90a) into build/gpu_check-<arch>;
#   2. bench/static_check.py for that architecture (registers, spills, SASS per weight);
#   3. the correctness subset of tests/gpu (QC_GPU_SUBSET=1: every kernel and format, M in
#      {1, 16, 64, 512}, (N, K) in {(4096, 4096), (11008, 4096)}, odd and invalid shapes), <= 3 min;
#   4. bench/kernels_bench.py against torch.matmul FP16 and torch._scaled_mm FP8 (with and without
#      fast accumulation) on the kernels' README shapes, with the measured device-to-device copy
#      bandwidth as the ceiling.
# Writes one markdown file: $1, else $OUT/gpu_check.md when $OUT is set, else gpu_check.md.
# Exit status: 0 when the build and the correctness subset pass, 1 otherwise (the benchmark runs
# either way, its table says what it measured).
set -uo pipefail
cd "$(dirname "$0")/.."
report="${1:-${OUT:+$OUT/}gpu_check.md}"
py="${PYTHON:-python3}"
start=$(date +%s)
status=0
log="$(mktemp -d)"

# QC_GPU_ARCH overrides the detection (e.g. to exercise the script's build step without a GPU).
detect='import torch; M, m = torch.cuda.get_device_capability(); print(f"{M}{m}" + ("a" if (M, m) == (9, 0) else ""))'
arch="${QC_GPU_ARCH:-$("$py" -c "$detect" 2>/dev/null)}"
[ -n "$arch" ] || {
    echo "gpu_check: torch sees no CUDA device" >&2
    exit 2
}
build="build/gpu_check-$arch"
{
    echo "# gpu_check ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "GPU: $("$py" -c 'import torch; print(torch.cuda.get_device_name())' 2>/dev/null), sm_$arch; torch" \
         "$("$py" -c 'import torch; print(torch.__version__)'); $(nvcc --version | tail -2 | head -1)"
    echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
} >"$report"

# qcompile (formats, packing: numpy only) for the tests' references, without installing it.
if ! "$py" -c 'import qcompile' 2>/dev/null; then
    mkdir -p "$log/shim" && ln -s "$PWD/compiler" "$log/shim/qcompile"
    export PYTHONPATH="$log/shim${PYTHONPATH:+:$PYTHONPATH}"
fi

echo "== build sm_$arch"
if QC_CMAKE_ARGS="-DQC_CUDA_ARCHS=$arch" QC_BUILD_JOBS="$(nproc)" timeout 300 bash plugins/build.sh "$build" >"$log/build.txt" 2>&1; then
    printf '\n## Build\n\nsm_%s: ok (%s)\n' "$arch" "$build" >>"$report"
else
    status=1
    printf '\n## Build\n\nsm_%s: FAILED\n\n```\n%s\n```\n' "$arch" "$(tail -40 "$log/build.txt")" >>"$report"
    cat "$log/build.txt"
    echo "gpu_check: build failed; report in $report" >&2
    exit 1
fi
export QC_KERNEL_LIB="$PWD/$build/libqc_kernels.so"

echo "== static check (SASS of sm_$arch)"
# --no-cutlass: the sm_90a CUTLASS kernels take minutes of nvcc; their table is in BENCHMARKS.md.
if timeout 120 "$py" bench/static_check.py --arch "$arch" --no-cutlass >"$log/static.txt" 2>&1; then
    printf '\n## Static check\n\n' >>"$report"
    cat "$log/static.txt" >>"$report"
else
    printf '\n## Static check: not run\n\n```\n%s\n```\n' "$(tail -5 "$log/static.txt")" >>"$report"
fi

echo "== correctness subset (<= 180 s)"
QC_GPU_SUBSET=1 timeout 180 "$py" -m pytest -q -p no:cacheprovider tests/gpu -rfE >"$log/tests.txt" 2>&1
rc=$?
[ "$rc" -eq 0 ] || status=1
[ "$rc" -eq 124 ] && echo "gpu_check: correctness subset ran past 180 s" >>"$log/tests.txt"
{
    printf '\n## Correctness subset (QC_GPU_SUBSET=1 pytest tests/gpu): %s\n\n```\n' \
        "$([ "$rc" -eq 0 ] && echo passed || echo "FAILED (exit $rc)")"
    grep -E "^(FAILED|ERROR)|passed|failed|error|skipped" "$log/tests.txt" | tail -40 || tail -5 "$log/tests.txt"
    printf '```\n'
} >>"$report"
tail -15 "$log/tests.txt"

echo "== benchmark (<= 300 s)"
if timeout 300 "$py" bench/kernels_bench.py --markdown --ms 1,2,4,8,16,64,128,512 --iters 30 >"$log/bench.txt" 2>&1; then
    printf '\n## Benchmark (bench/kernels_bench.py)\n\n' >>"$report"
    cat "$log/bench.txt" >>"$report"
else
    status=1
    printf '\n## Benchmark: FAILED or timed out\n\n```\n%s\n```\n' "$(tail -30 "$log/bench.txt")" >>"$report"
fi
printf '\nTotal: %s s; exit status %s\n' "$(($(date +%s) - start))" "$status" >>"$report"
cat "$report"
rm -rf "$log"
exit "$status"

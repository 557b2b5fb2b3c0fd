#!/usr/bin/env bash
# Configure and build qc_ref (always) and qc_kernels (when nvcc is found); fails if anything
# fails to compile. Usage: plugins/build.sh [BUILD_DIR] (default plugins/build).
# Extra CMake options via QC_CMAKE_ARGS, e.g. QC_CMAKE_ARGS="-DQC_CUDA_ARCHS=90a"; parallel jobs
# QC_BUILD_JOBS (default 2; the sm_90a CUTLASS files take 1-2 minutes of nvcc each).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${1:-$here/build}"
# shellcheck disable=SC2086
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release ${QC_CMAKE_ARGS:-}
cmake --build "$build" -j"${QC_BUILD_JOBS:-2}"
(cd "$build" && ctest --output-on-failure)
if command -v nvcc >/dev/null 2>&1 && [ ! -f "$build/libqc_kernels.so" ]; then
  echo "build.sh: nvcc is on PATH but libqc_kernels.so was not built (CMake did not enable CUDA)" >&2
  exit 1
fi
echo "build.sh: built in $build: $(cd "$build" && ls lib*.so | tr '\n' ' ')"

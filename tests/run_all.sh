#!/usr/bin/env bash
# README's test command: installs what the tests need, builds the CUDA kernels (when nvcc is
# present) and the C++ plugin cores, then runs pytest (which also runs the cores' ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
# With nvcc, also CUTLASS's headers (the `kernels` extra) for the sm_90a path of the kernel build.
extras=test
if command -v nvcc >/dev/null 2>&1; then extras=test,kernels; fi
python3 -m pip install -q --root-user-action=ignore -e ".[$extras]"
if [ -x plugins/build.sh ] || [ -f plugins/build.sh ]; then
    bash plugins/build.sh "${QC_PLUGIN_BUILD_DIR:=build/plugins}"
    export QC_PLUGIN_BUILD_DIR  # tests/gpu/kernel_abi.py loads libqc_kernels.so from there
fi
python3 -m pytest -q tests "$@"

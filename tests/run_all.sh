#!/usr/bin/env bash
# README's test command: installs what the tests need, builds the CUDA kernels (when nvcc is
# present) and the C++ plugin cores, then runs pytest (which also runs the cores' ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --root-user-action=ignore -e '.[test]'
if [ -x plugins/build.sh ] || [ -f plugins/build.sh ]; then
    bash plugins/build.sh "${QC_PLUGIN_BUILD_DIR:=build/plugins}"
    export QC_PLUGIN_BUILD_DIR  # tests/gpu/kernel_abi.py loads libqc_kernels.so from there
fi
python3 -m pytest -q tests "$@"

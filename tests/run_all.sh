#!/usr/bin/env bash
# README's test command: installs what the tests need, builds the CUDA kernels (when nvcc is
# present) and the C++ plugin cores, then runs pytest (which also runs the cores' ctest).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --root-user-action=ignore -e '.[test]'
if [ -x plugins/build.sh ] || [ -f plugins/build.sh ]; then
    bash plugins/build.sh build/plugins
fi
python3 -m pytest -q tests "$@"

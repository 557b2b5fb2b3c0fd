"""ctypes binding of libqc_kernels.so (plugins/) for torch tensors; shared by tests/gpu and
bench/kernels_bench.py. Finds the library in $QC_KERNEL_LIB, else in $QC_PLUGIN_BUILD_DIR (the
folder tests/run_all.sh builds into, default build/plugins), else in plugins/build (the default of
plugins/build.sh)."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIB_NAME = "libqc_kernels.so"

OK, ERR_SHAPE, ERR_ALIGNMENT, ERR_FORMAT, ERR_UNSUPPORTED_ARCH, ERR_CUDA, ERR_WORKSPACE, ERR_NULL, ERR_ARG = (
    range(9)
)
FMT = {"fp6_e3m2": 0, "fp6_e2m3": 1, "int4": 2, "uint4": 3, "fp4_e2m1": 4}
ACT = {"per_tensor": 0, "per_token": 1}

_P, _I, _S = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t


def library_path() -> Path:
    if os.environ.get("QC_KERNEL_LIB"):
        return Path(os.environ["QC_KERNEL_LIB"])
    build = Path(os.environ.get("QC_PLUGIN_BUILD_DIR", ROOT / "build" / "plugins"))
    build = build if build.is_absolute() else ROOT / build
    for candidate in (build / LIB_NAME, ROOT / "plugins" / "build" / LIB_NAME):
        if candidate.exists():
            return candidate
    return build / LIB_NAME


def load(path: Path | None = None) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path or library_path()))
    lib.qc_w6a16_gemm.argtypes = [_P, _P, _P, _P, _P, _I, _I, _I, _I, _I, _P, _S, _P]
    lib.qc_w4a16_gemm.argtypes = [_P, _P, _P, _P, _P, _I, _I, _I, _I, _I, _I, _P, _S, _P]
    lib.qc_w4a8_gemm.argtypes = [_P, _P, _P, _P, _P, _P, _I, _I, _I, _I, _I, _I, _P, _S, _P]
    lib.qc_w6a16_workspace_size.argtypes = [_I, _I, _I]
    lib.qc_w4a16_workspace_size.argtypes = [_I, _I, _I, _I]
    lib.qc_w4a8_workspace_size.argtypes = [_I, _I, _I, _I, _I]
    for name in ("qc_w6a16_workspace_size", "qc_w4a16_workspace_size", "qc_w4a8_workspace_size"):
        getattr(lib, name).restype = _S
    return lib


def _p(t):
    return None if t is None else ctypes.c_void_p(t.data_ptr())


def _workspace(nbytes: int, device):
    import torch

    return torch.empty(max(nbytes, 16), dtype=torch.uint8, device=device)


def _stream():
    import torch

    return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)


def w6a16(lib, x, lo4, hi2, scales, y, fmt: str, workspace=None, layout: int = 1) -> int:
    """layout: 1 (fp6_4+2) or 2 (fp6_v2), the layout_version of the bytes in `lo4` / `hi2`."""
    m, k = x.shape
    n = y.shape[1]
    ws = workspace if workspace is not None else _workspace(lib.qc_w6a16_workspace_size(m, n, k), x.device)
    shape = (m, n, k, FMT[fmt], layout)
    return lib.qc_w6a16_gemm(
        _p(x), _p(lo4), _p(hi2), _p(scales), _p(y), *shape, _p(ws), ws.numel(), _stream()
    )


def _w4a16_call(gemm, size, x, w, scales, zeros, y, group: int, fmt: str, workspace, layout: int) -> int:
    """One W4A16 GEMM entry point (qc_w4a16_gemm or its sm_90a path); `size()` its workspace bytes."""
    m, k = x.shape
    n = y.shape[1]
    ws = workspace if workspace is not None else _workspace(size(m, n, k), x.device)
    shape = (m, n, k, group, FMT[fmt], layout)
    return gemm(_p(x), _p(w), _p(scales), _p(zeros), _p(y), *shape, _p(ws), ws.numel(), _stream())


def _w4a8_call(gemm, size, x, w, group_exp, channel_scale, act_scale, y, group, fmt, act, workspace) -> int:
    """One W4A8 GEMM entry point (qc_w4a8_gemm or its sm_90a path); `size()` its workspace bytes."""
    m, k = x.shape
    n = y.shape[1]
    ws = workspace if workspace is not None else _workspace(size(m, n, k), x.device)
    tensors = (x, w, group_exp, channel_scale, act_scale, y)
    shape = (m, n, k, group, FMT[fmt], ACT[act])
    return gemm(*map(_p, tensors), *shape, _p(ws), ws.numel(), _stream())


def w4a16(lib, x, w, scales, zeros, y, group: int, fmt: str, workspace=None, layout: int = 1) -> int:
    """layout: 1 (nibble), 2 (int4_v2) or 3 (int4_sm90), the layout_version of the bytes in `w`."""

    def size(m, n, k):
        return lib.qc_w4a16_workspace_size(m, n, k, group)

    return _w4a16_call(lib.qc_w4a16_gemm, size, x, w, scales, zeros, y, group, fmt, workspace, layout)


def w4a8(
    lib, x, w, group_exp, channel_scale, act_scale, y, group: int, fmt: str, act: str, workspace=None
) -> int:
    def size(m, n, k):
        return lib.qc_w4a8_workspace_size(m, n, k, group, ACT[act])

    args = (x, w, group_exp, channel_scale, act_scale, y, group, fmt, act, workspace)
    return _w4a8_call(lib.qc_w4a8_gemm, size, *args)


# sm_90a CUTLASS path (plugins/sm90): the same arguments as qc_w4a16_gemm / qc_w4a8_gemm; a call it
# does not take returns SM90_FALLBACK and writes nothing.
SM90_FALLBACK = -1


def _sm90_signatures(lib) -> None:
    lib.qc_sm90_available.argtypes = []
    lib.qc_sm90_w4a16_workspace_size.argtypes = [_I, _I, _I, _I, _I, _I]
    lib.qc_sm90_w4a16_workspace_size.restype = _S
    lib.qc_sm90_w4a8_workspace_size.argtypes = [_I, _I, _I, _I, _I, _I]
    lib.qc_sm90_w4a8_workspace_size.restype = _S
    lib.qc_sm90_w4a16_gemm.argtypes = lib.qc_w4a16_gemm.argtypes
    lib.qc_sm90_w4a8_gemm.argtypes = lib.qc_w4a8_gemm.argtypes


def sm90_available(lib) -> bool:
    _sm90_signatures(lib)
    return bool(lib.qc_sm90_available())


def sm90_w4a16(lib, x, w, scales, zeros, y, group: int, fmt: str, workspace=None, layout: int = 1) -> int:
    _sm90_signatures(lib)

    def size(m, n, k):
        return lib.qc_sm90_w4a16_workspace_size(m, n, k, group, FMT[fmt], zeros is not None)

    return _w4a16_call(lib.qc_sm90_w4a16_gemm, size, x, w, scales, zeros, y, group, fmt, workspace, layout)


def sm90_w4a8(
    lib, x, w, group_exp, channel_scale, act_scale, y, group: int, fmt: str, act: str, workspace=None
) -> int:
    _sm90_signatures(lib)

    def size(m, n, k):
        return lib.qc_sm90_w4a8_workspace_size(m, n, k, group, FMT[fmt], ACT[act])

    args = (x, w, group_exp, channel_scale, act_scale, y, group, fmt, act, workspace)
    return _w4a8_call(lib.qc_sm90_w4a8_gemm, size, *args)

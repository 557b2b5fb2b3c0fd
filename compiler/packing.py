"""Packed weight layouts (docs/LAYOUTS.md): what the kernels read, byte for byte.

Version 1 everywhere; version 2 for the 4-bit weights of QcW4A16Gemm (`int4_v2`).

Every function takes codes as `W[N, K]` (output channel major, K contiguous), one code per
uint8/int8 element as `qcompile.formats` produces them.
"""

from __future__ import annotations

import numpy as np

from qcompile.errors import LayoutError

LAYOUT_VERSION = 1
FP6_K_MULTIPLE = 64
INT4_V2_N_MULTIPLE = 16  # one warp tile: 16 output channels x 64 k = 512 bytes
INT4_V2_K_MULTIPLE = 64
INT4_V2_FORMATS = ("int4", "uint4")
# [N, K] viewed as [N/16, h, g, K/64, t, i, e1, e0] (n = 16 nt + 8 h + g, k = 64 kt + 16 t + 4 i +
# 2 e1 + e0) -> bytes [N/16, K/64, g, t, i, e0, e1] with h the nibble in each byte.
_V2_ORDER = (0, 3, 2, 4, 5, 7, 6, 1)


def _require(codes: np.ndarray, k_multiple: int, layout: str) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise LayoutError(f"{layout}: expected a 2-D [N, K] code array, got shape {codes.shape}")
    if codes.shape[1] % k_multiple:
        raise LayoutError(f"{layout}: K={codes.shape[1]} (dimension 1) must be a multiple of {k_multiple}")
    return _as_bytes(codes)


def _as_bytes(a: np.ndarray) -> np.ndarray:
    """uint8 with the same bits (int8-typed packed bytes are viewed, not converted)."""
    a = np.asarray(a)
    return a.view(np.uint8) if a.dtype == np.int8 else a.astype(np.uint8, copy=False)


def pack_nibbles(codes: np.ndarray) -> np.ndarray:
    """[N, K] 4-bit codes -> uint8 [N, K/2]; element 2j in the low nibble, 2j+1 in the high one."""
    c = _require(codes, 2, "nibble layout") & 0xF
    return (c[:, 0::2] | (c[:, 1::2] << 4)).astype(np.uint8)


def unpack_nibbles(packed: np.ndarray, signed: bool = False) -> np.ndarray:
    """uint8 or int8 bytes [N, K/2] -> [N, K] codes (int8 sign-extended when `signed`, else uint8)."""
    packed = _as_bytes(packed)
    out = np.empty((packed.shape[0], packed.shape[1] * 2), np.uint8)
    out[:, 0::2], out[:, 1::2] = packed & 0xF, packed >> 4
    if signed:
        return ((out.astype(np.int8) << 4) >> 4).astype(np.int8)
    return out


def pack_fp6(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[N, K] 6-bit codes -> (lo4 uint8 [N, K/2], hi2 uint8 [N, K/4]): FP6-LLM's 4+2 split."""
    c = _require(codes, FP6_K_MULTIPLE, "fp6_4+2 layout")
    if (c > 0x3F).any():
        raise LayoutError("fp6_4+2 layout: codes must be 6-bit (0..63)")
    lo4 = pack_nibbles(c & 0xF)
    hi = c >> 4
    hi2 = hi[:, 0::4] | (hi[:, 1::4] << 2) | (hi[:, 2::4] << 4) | (hi[:, 3::4] << 6)
    return lo4, hi2.astype(np.uint8)


def unpack_fp6(lo4: np.ndarray, hi2: np.ndarray) -> np.ndarray:
    """(lo4, hi2) -> uint8 [N, K] 6-bit codes."""
    lo = unpack_nibbles(lo4)
    hi2 = _as_bytes(hi2)
    if hi2.shape != (lo.shape[0], lo.shape[1] // 4):
        raise LayoutError(f"fp6_4+2 layout: hi2 shape {hi2.shape} does not match lo4 shape {lo4.shape}")
    hi = np.empty_like(lo)
    for i in range(4):
        hi[:, i::4] = (hi2 >> (2 * i)) & 0x3
    return (hi << 4) | lo


def int4_v2_problem(n: int, k: int, fmt_name: str) -> str:
    """Why an N x K weight of this format cannot take the int4_v2 layout ("" if it can)."""
    if fmt_name not in INT4_V2_FORMATS:
        return f"int4_v2 layout: format {fmt_name} is not one of {list(INT4_V2_FORMATS)}"
    if n % INT4_V2_N_MULTIPLE or k % INT4_V2_K_MULTIPLE:
        return (
            f"int4_v2 layout: N={n}, K={k} must be multiples of {INT4_V2_N_MULTIPLE} and {INT4_V2_K_MULTIPLE}"
        )
    return ""


def int4_v2_nibble_tiles(n: int, k: int) -> list[int]:
    """The shape of the unpacked nibbles in byte order, [N/16, K/64, g, t, i, e0, e1, h]."""
    return [n // 16, k // 64, 8, 4, 4, 2, 2, 2]


def int4_v2_inverse_order() -> list[int]:
    """The transpose from the unpacked bytes [N/16, K/64, g, t, i, e0, e1, h] back to [N, K] order."""
    return [int(a) for a in np.argsort(_V2_ORDER)]


def pack_int4_v2(codes: np.ndarray) -> np.ndarray:
    """[N, K] 4-bit codes -> uint8 [N, K/2] in the int4_v2 order (docs/LAYOUTS.md, version 2)."""
    c = _require(codes, INT4_V2_K_MULTIPLE, "int4_v2 layout") & 0xF
    n, k = c.shape
    if n % INT4_V2_N_MULTIPLE:
        raise LayoutError(f"int4_v2 layout: N={n} (dimension 0) must be a multiple of {INT4_V2_N_MULTIPLE}")
    t = c.reshape(n // 16, 2, 8, k // 64, 4, 4, 2, 2).transpose(_V2_ORDER)
    return (t[..., 0] | (t[..., 1] << 4)).astype(np.uint8).reshape(n, k // 2)


def unpack_int4_v2(packed: np.ndarray, signed: bool = False) -> np.ndarray:
    """int4_v2 bytes [N, K/2] -> [N, K] codes (int8 sign-extended when `signed`, else uint8)."""
    b = _as_bytes(packed)
    n, k = b.shape[0], b.shape[1] * 2
    if n % INT4_V2_N_MULTIPLE or k % INT4_V2_K_MULTIPLE:
        raise LayoutError(f"int4_v2 layout: packed shape {b.shape} is not [16 i, 32 j]")
    t = unpack_nibbles(b).reshape(int4_v2_nibble_tiles(n, k))
    out = t.transpose(int4_v2_inverse_order()).reshape(n, k)
    if signed:
        return ((out.astype(np.int8) << 4) >> 4).astype(np.int8)
    return np.ascontiguousarray(out)

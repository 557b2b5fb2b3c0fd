"""`int4_sm90` (QcW4A16Gemm `layout_version` 3, docs/LAYOUTS.md): INT4 / UINT4 weights in the order
CUTLASS's SM90 mixed-input GEMM reads with its fast converter (plugins/sm90).

CUTLASS's `compute_memory_reordering_atom<half_t, Layout<(1,1)>, Layout<(2,4):(4,1)>>` (its
example 55's `shuffle` option) tiled over [N, K] with `tile_to_shape`: 16 x 16 atoms of 256
nibbles, N-tiles fastest; inside an atom the 8 weights one wgmma thread holds (rows g and g + 8, k
2t, 2t + 1, 2t + 8, 2t + 9) are one contiguous 32-bit word, nibbles in the order [0,2,4,6,1,3,5,7]
of the fragment's registers. Element (n, k), n = 16 a + 8 m1 + g, k = 16 b + 8 k2 + 2 k1 + k0, is
nibble 256 (a + (N/16) b) + 32 g + 8 k1 + 4 k0 + 2 k2 + m1 of the byte stream (low nibble first).
"""

from __future__ import annotations

import numpy as np

from qcompile.errors import LayoutError
from qcompile.packing import unpack_nibbles

INT4_SM90_LAYOUT_VERSION = 3
INT4_SM90_N_MULTIPLE = 16
INT4_SM90_K_MULTIPLE = 16
INT4_SM90_FORMATS = ("int4", "uint4")
# [N, K] viewed as [a, m1, g, b, k2, k1, k0] -> nibble stream [b, a, g, k1, k0, k2, m1]
_ORDER = (3, 0, 2, 5, 6, 4, 1)


def _shape_problem(n: int, k: int) -> str:
    if n % INT4_SM90_N_MULTIPLE or k % INT4_SM90_K_MULTIPLE:
        multiples = f"{INT4_SM90_N_MULTIPLE} and {INT4_SM90_K_MULTIPLE}"
        return f"int4_sm90 layout: N={n}, K={k} must be multiples of {multiples}"
    return ""


def int4_sm90_problem(n: int, k: int, fmt_name: str) -> str:
    """Why an N x K weight of this format cannot take the int4_sm90 layout ("" if it can)."""
    if fmt_name not in INT4_SM90_FORMATS:
        return f"int4_sm90 layout: format {fmt_name} is not one of {list(INT4_SM90_FORMATS)}"
    return _shape_problem(n, k)


def _shape_check(n: int, k: int) -> None:
    if problem := _shape_problem(n, k):
        raise LayoutError(problem)


def pack_int4_sm90(codes: np.ndarray) -> np.ndarray:
    """[N, K] 4-bit codes -> uint8 [N, K/2] (the byte stream, in an [N, K/2] array)."""
    c = np.asarray(codes)
    if c.ndim != 2:
        raise LayoutError(f"int4_sm90 layout: expected a 2-D [N, K] code array, got shape {c.shape}")
    n, k = c.shape
    _shape_check(n, k)
    c = (c.view(np.uint8) if c.dtype == np.int8 else c.astype(np.uint8, copy=False)) & 0xF
    t = c.reshape(n // 16, 2, 8, k // 16, 2, 4, 2).transpose(_ORDER)
    return (t[..., 0] | (t[..., 1] << 4)).astype(np.uint8).reshape(n, k // 2)


def unpack_int4_sm90(packed: np.ndarray, signed: bool = False) -> np.ndarray:
    """int4_sm90 bytes [N, K/2] -> [N, K] codes (int8 sign-extended when `signed`, else uint8)."""
    b = np.asarray(packed)
    n, k = b.shape[0], b.shape[1] * 2
    _shape_check(n, k)
    t = unpack_nibbles(b).reshape(k // 16, n // 16, 8, 4, 2, 2, 2)  # [b, a, g, k1, k0, k2, m1]
    out = np.ascontiguousarray(t.transpose(np.argsort(_ORDER)).reshape(n, k))
    if signed:
        return ((out.astype(np.int8) << 4) >> 4).astype(np.int8)
    return out

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
# The group sizes the sm_90a path takes (plugins/sm90/qc_sm90_w4a16.cu `plan`); qc_w4a16_check_shape
# refuses layout 3 with any other, since no kernel would run it.
INT4_SM90_GROUP_SIZES = (64, 128)
# [N, K] viewed as [a, m1, g, b, k2, k1, k0] -> nibble stream [b, a, g, k1, k0, k2, m1]
_ORDER = (3, 0, 2, 5, 6, 4, 1)


def _shape_problem(n: int, k: int) -> str:
    if n % INT4_SM90_N_MULTIPLE or k % INT4_SM90_K_MULTIPLE:
        multiples = f"{INT4_SM90_N_MULTIPLE} and {INT4_SM90_K_MULTIPLE}"
        return f"int4_sm90 layout: N={n}, K={k} must be multiples of {multiples}"
    return ""


def int4_sm90_problem(n: int, k: int, fmt_name: str, group_size: int) -> str:
    """Why an N x K weight of this format and group size cannot take the int4_sm90 layout ("" if it
    can): exactly the weights the sm_90a path runs (INT4 / UINT4, N and K multiples of 16, group 64
    or 128; zero points only with UINT4, which every QcW4A16Gemm layout requires)."""
    if fmt_name not in INT4_SM90_FORMATS:
        return f"int4_sm90 layout: format {fmt_name} is not one of {list(INT4_SM90_FORMATS)}"
    if group_size not in INT4_SM90_GROUP_SIZES:
        return f"int4_sm90 layout: group size {group_size} is not one of {list(INT4_SM90_GROUP_SIZES)}"
    return _shape_problem(n, k)


def int4_sm90_nibble_tiles(n: int, k: int) -> list[int]:
    """The nibble stream of an [N, K] weight viewed as [K/16, N/16, g, k1, k0, k2, m1]."""
    return [k // 16, n // 16, 8, 4, 2, 2, 2]


def int4_sm90_inverse_order() -> list[int]:
    """The Transpose of int4_sm90_nibble_tiles back to [a, m1, g, b, k2, k1, k0] (i.e. [N, K])."""
    return [int(i) for i in np.argsort(_ORDER)]


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
    t = unpack_nibbles(b).reshape(int4_sm90_nibble_tiles(n, k))
    out = np.ascontiguousarray(t.transpose(int4_sm90_inverse_order()).reshape(n, k))
    if signed:
        return ((out.astype(np.int8) << 4) >> 4).astype(np.int8)
    return out

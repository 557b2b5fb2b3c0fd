"""Packed weight layouts (docs/LAYOUTS.md): what the kernels read, byte for byte.

Version 1 everywhere; version 2 for the 4-bit weights of QcW4A16Gemm (`int4_v2`) and the FP6
weights of QcW6A16Gemm (`fp6_v2`); QcW4A16Gemm's version 3 (`int4_sm90`, Hopper) is in packing_sm90.

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


# ---------------------------------------------------------------- fp6_v2 (QcW6A16Gemm layout 2)

FP6_V2_N_MULTIPLE = 16  # one warp tile: 16 output channels x 64 k, 512 lo4 + 256 hi2 bytes
FP6_V2_K_MULTIPLE = 64
FP6_V2_FORMATS = ("fp6_e3m2", "fp6_e2m3")


def fp6_v2_problem(n: int, k: int, fmt_name: str) -> str:
    """Why an N x K weight of this format cannot take the fp6_v2 layout ("" if it can)."""
    if fmt_name not in FP6_V2_FORMATS:
        return f"fp6_v2 layout: format {fmt_name} is not one of {list(FP6_V2_FORMATS)}"
    if n % FP6_V2_N_MULTIPLE or k % FP6_V2_K_MULTIPLE:
        return f"fp6_v2 layout: N={n}, K={k} must be multiples of {FP6_V2_N_MULTIPLE} and {FP6_V2_K_MULTIPLE}"
    return ""


# FP16 bit of each segment bit in an A register's low half (+16 for the high half): the 4-bit
# segment's bits 0-3 from bit 8, the 2-bit segment's bits 0 and 1.
FP6_V2_FP16_BITS = {"fp6_e3m2": (8, 12, 15), "fp6_e2m3": (8, 7, 15)}


def fp6_v2_rotation(fmt_name: str, i: int, j: int) -> tuple[int, int]:
    """(rotation s, hi2 word) of A register a[i][j]: a[i][j] = rotl(X, s) & mask, X taken from
    lo4 word i and that hi2 word (docs/LAYOUTS.md, fp6_v2)."""
    if fmt_name == "fp6_e3m2":
        return (0, 4, 2, 6)[2 * (i & 1) + (j & 1)] + 8 * (j >> 1), i >> 1
    return i + 4 * j, j >> 1


def fp6_v2_positions(fmt_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Where each of a lane's 32 weights sits in its 16 lo4 and 8 hi2 bytes (docs/LAYOUTS.md).

    Weight w = 16 h + d4 (h: row g or g + 8 of the warp tile; d4 in 0..15: k = 16 t + d4 of the
    lane's k run) -> lo_bits[w, b]: bit (0..127) of the lo4 bytes holding bit b of its 4-bit
    segment, hi_bits[w, b]: bit (0..63) of the hi2 bytes holding bit b of its 2-bit segment (bytes
    read as little-endian words). Weight w is half e of A register a[i][j] (i = d4 // 4, d = d4 % 4,
    j = h + 2 (d // 2), e = d % 2), and a segment bit that register holds at FP16 bit f lies at
    bit (f + 16 e - s) % 32 of its word, s the register's rotation.
    """
    if fmt_name not in FP6_V2_FORMATS:
        raise LayoutError(f"fp6_v2 layout: format {fmt_name} is not one of {list(FP6_V2_FORMATS)}")
    four, two0, two1 = FP6_V2_FP16_BITS[fmt_name]
    lo_bits, hi_bits = np.empty((32, 4), np.int64), np.empty((32, 2), np.int64)
    for h in range(2):
        for d4 in range(16):
            i, d = divmod(d4, 4)
            j, e = h + 2 * (d >> 1), d & 1
            s, word = fp6_v2_rotation(fmt_name, i, j)
            w = 16 * h + d4
            lo_bits[w] = [32 * i + (four + b + 16 * e - s) % 32 for b in range(4)]
            hi_bits[w] = [32 * word + (f + 16 * e - s) % 32 for f in (two0, two1)]
    return lo_bits, hi_bits


def fp6_v2_segments(codes: np.ndarray, fmt_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(4-bit, 2-bit) segments: E3M2 code bits 0-3 and (4, 5); E2M3 bits 1-4 and (0, 5)."""
    c = _as_bytes(codes)
    if fmt_name == "fp6_e3m2":
        return c & 0xF, c >> 4
    return (c >> 1) & 0xF, (c & 1) | ((c >> 4) & 2)


def fp6_v2_codes(lo: np.ndarray, hi: np.ndarray, fmt_name: str) -> np.ndarray:
    """The inverse of fp6_v2_segments."""
    if fmt_name == "fp6_e3m2":
        return (hi << 4) | lo
    return ((hi & 2) << 4) | (lo << 1) | (hi & 1)


def fp6_v2_lane_tiles(n: int, k: int) -> list[int]:
    """[N, K] viewed as [N/16, h, g, K/64, t, d4] (n = 16 nt + 8 h + g, k = 64 kt + 16 t + d4)."""
    return [n // 16, 2, 8, k // 64, 4, 16]


FP6_V2_ORDER = (0, 3, 2, 4, 1, 5)  # -> [N/16, K/64, g, t, h, d4]: tile, lane = 4 g + t, weight 16 h + d4


def _rotl32(x: np.ndarray, p: int) -> np.ndarray:
    p %= 32
    return x if p == 0 else (x << np.uint32(p)) | (x >> np.uint32(32 - p))


def pack_fp6_v2(codes: np.ndarray, fmt_name: str) -> tuple[np.ndarray, np.ndarray]:
    """[N, K] 6-bit codes -> (lo4 uint8 [N, K/2], hi2 uint8 [N, K/4]) in the fp6_v2 order.

    Each lane's bytes are built as the little-endian words the kernel loads: a weight's 4-bit
    segment, rotated to its first bit (its bits are consecutive mod 32), and its 2-bit segment's bits
    are OR-ed into them."""
    c = _require(codes, FP6_V2_K_MULTIPLE, "fp6_v2 layout")
    n, k = c.shape
    if n % FP6_V2_N_MULTIPLE:
        raise LayoutError(f"fp6_v2 layout: N={n} (dimension 0) must be a multiple of {FP6_V2_N_MULTIPLE}")
    if (c > 0x3F).any():
        raise LayoutError("fp6_v2 layout: codes must be 6-bit (0..63)")
    lo_bits, hi_bits = fp6_v2_positions(fmt_name)
    # [weight, lane]: one contiguous row per weight of every lane
    lanes = np.ascontiguousarray(c.reshape(fp6_v2_lane_tiles(n, k)).transpose(FP6_V2_ORDER).reshape(-1, 32).T)
    four, two = (a.astype(np.uint32) for a in fp6_v2_segments(lanes, fmt_name))
    lo = np.zeros((4, lanes.shape[1]), np.uint32)
    hi = np.zeros((2, lanes.shape[1]), np.uint32)
    for w in range(32):
        word, first = divmod(int(lo_bits[w, 0]), 32)
        lo[word] |= _rotl32(four[w], first)
        for b in range(2):
            word, bit = divmod(int(hi_bits[w, b]), 32)
            hi[word] |= ((two[w] >> np.uint32(b)) & np.uint32(1)) << np.uint32(bit)
    lo, hi = np.ascontiguousarray(lo.T, "<u4"), np.ascontiguousarray(hi.T, "<u4")
    return lo.view(np.uint8).reshape(n, k // 2), hi.view(np.uint8).reshape(n, k // 4)


def unpack_fp6_v2(lo4: np.ndarray, hi2: np.ndarray, fmt_name: str) -> np.ndarray:
    """fp6_v2 (lo4 [N, K/2], hi2 [N, K/4]) -> uint8 [N, K] 6-bit codes."""
    lo4, hi2 = _as_bytes(lo4), _as_bytes(hi2)
    n, k = lo4.shape[0], lo4.shape[1] * 2
    if n % FP6_V2_N_MULTIPLE or k % FP6_V2_K_MULTIPLE or hi2.shape != (n, k // 4):
        raise LayoutError(
            f"fp6_v2 layout: lo4 {lo4.shape} / hi2 {hi2.shape} are not [16 i, 32 j] / [16 i, 16 j]"
        )
    lo_bits, hi_bits = fp6_v2_positions(fmt_name)
    lo = np.ascontiguousarray(np.ascontiguousarray(lo4).reshape(-1, 16).view("<u4").T)  # [word, lane]
    hi = np.ascontiguousarray(np.ascontiguousarray(hi2).reshape(-1, 8).view("<u4").T)
    four = np.empty((32, lo.shape[1]), np.uint8)
    two = np.empty((32, lo.shape[1]), np.uint8)
    for w in range(32):
        word, first = divmod(int(lo_bits[w, 0]), 32)
        four[w] = _rotl32(lo[word], -first) & np.uint32(0xF)
        (w0, b0), (w1, b1) = divmod(int(hi_bits[w, 0]), 32), divmod(int(hi_bits[w, 1]), 32)
        two[w] = ((hi[w0] >> np.uint32(b0)) & np.uint32(1)) | (
            ((hi[w1] >> np.uint32(b1)) & np.uint32(1)) << np.uint32(1)
        )
    four, two = four.T, two.T
    lanes = fp6_v2_codes(four, two, fmt_name)
    tiles = [n // 16, k // 64, 8, 4, 2, 16]
    return np.ascontiguousarray(lanes.reshape(tiles).transpose(np.argsort(FP6_V2_ORDER)).reshape(n, k))

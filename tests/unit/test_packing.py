"""Packed layouts v1, int4_v2 and fp6_v2 (docs/LAYOUTS.md): round trips, hand-written bytes, refusals.
Zero tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from qcompile.errors import LayoutError
from qcompile.formats import FORMATS
from qcompile.packing import (
    FP6_K_MULTIPLE,
    FP6_V2_FORMATS,
    fp6_v2_problem,
    pack_fp6,
    pack_fp6_v2,
    pack_int4_v2,
    pack_nibbles,
    unpack_fp6,
    unpack_fp6_v2,
    unpack_int4_v2,
    unpack_nibbles,
)


@pytest.mark.parametrize("n", range(1, 6))
@pytest.mark.parametrize("k", [2, 4, 6, 64, 130])
def test_nibble_round_trip_unsigned(n, k):
    codes = np.random.default_rng(n * 1000 + k).integers(0, 16, (n, k)).astype(np.uint8)
    packed = pack_nibbles(codes)
    assert packed.dtype == np.uint8 and packed.shape == (n, k // 2) and packed.flags.c_contiguous
    np.testing.assert_array_equal(unpack_nibbles(packed), codes)


@pytest.mark.parametrize("n", range(1, 6))
@pytest.mark.parametrize("k", [2, 8, 128])
def test_nibble_round_trip_int4_sign_extends(n, k):
    values = np.random.default_rng(n + k).integers(-8, 8, (n, k)).astype(np.int8)
    codes = FORMATS["int4"].encode(values.astype(np.float32))
    out = unpack_nibbles(pack_nibbles(codes), signed=True)
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, values)


def test_nibble_bytes_by_hand():
    # element 2j in bits 0-3, element 2j+1 in bits 4-7
    codes = np.array([[0x1, 0x2, 0xF, 0x0], [0x7, 0x8, 0xA, 0x5]], np.uint8)
    np.testing.assert_array_equal(pack_nibbles(codes), np.array([[0x21, 0x0F], [0x87, 0x5A]], np.uint8))
    int4 = np.array([[-1, 7, -8, 0]], np.int8)  # two's complement nibbles F, 7, 8, 0
    np.testing.assert_array_equal(pack_nibbles(int4), np.array([[0x7F, 0x08]], np.uint8))


def test_nibble_matches_ml_dtypes_fp4_value_order():
    # ONNX FLOAT4E2M1 packs element 0 in the low nibble, as here: decode byte by byte
    fmt = FORMATS["fp4_e2m1"]
    x = np.array([[0.5, -6.0, 1.5, 0.0, -0.0, 3.0]], np.float32)
    packed = pack_nibbles(fmt.encode(x))
    lo, hi = fmt.decode(packed & 0xF), fmt.decode(packed >> 4)
    np.testing.assert_array_equal(np.stack([lo, hi], axis=-1).reshape(1, -1), x)


@pytest.mark.parametrize("n", range(1, 6))
@pytest.mark.parametrize("k", [64, 128, 192])
def test_fp6_round_trip(n, k):
    codes = np.random.default_rng(n * 7 + k).integers(0, 64, (n, k)).astype(np.uint8)
    lo4, hi2 = pack_fp6(codes)
    assert lo4.shape == (n, k // 2) and hi2.shape == (n, k // 4)
    assert lo4.dtype == hi2.dtype == np.uint8 and lo4.flags.c_contiguous and hi2.flags.c_contiguous
    np.testing.assert_array_equal(unpack_fp6(lo4, hi2), codes)


def test_fp6_bytes_by_hand():
    codes = np.zeros((1, 64), np.uint8)
    codes[0, :8] = [0b110101, 0b010011, 0b100000, 0b001111, 0b111111, 0, 0b010001, 0b100010]
    lo4, hi2 = pack_fp6(codes)
    # 4-bit segments c & 0xF: 5, 3, 0, F, F, 0, 1, 2 -> nibble pairs
    np.testing.assert_array_equal(lo4[0, :4], [0x35, 0xF0, 0x0F, 0x21])
    # 2-bit segments c >> 4: 3, 1, 2, 0 | 3, 0, 1, 2 -> element 4j+i at bits 2i..2i+1
    assert hi2[0, 0] == 0b00_10_01_11 and hi2[0, 1] == 0b10_01_00_11
    assert not lo4[0, 4:].any() and not hi2[0, 2:].any()


def test_fp6_e3m2_fp16_shift_trick_from_the_layout_doc():
    # (c & 0x20) << 10 | (c & 0x1F) << 8 is the float16 of decode(c) * 2^-12, subnormals included
    codes = np.arange(64, dtype=np.uint16)
    h = ((codes & 0x20) << 10) | ((codes & 0x1F) << 8)
    got = h.view(np.float16).astype(np.float32) * np.float32(2.0**12)
    np.testing.assert_array_equal(got, FORMATS["fp6_e3m2"].decode(codes.astype(np.uint8)))
    h = ((codes & 0x20) << 10) | ((codes & 0x1F) << 7)
    got = h.view(np.float16).astype(np.float32) * np.float32(2.0**14)
    np.testing.assert_array_equal(got, FORMATS["fp6_e2m3"].decode(codes.astype(np.uint8)))


@pytest.mark.parametrize("k", [1, 3, 7])
def test_nibble_refuses_odd_k(k):
    with pytest.raises(LayoutError, match=rf"K={k} \(dimension 1\) must be a multiple of 2"):
        pack_nibbles(np.zeros((2, k), np.uint8))


@pytest.mark.parametrize("k", [32, 96, 100, 1000])
def test_fp6_refuses_k_not_multiple_of_64(k):
    assert FP6_K_MULTIPLE == 64
    with pytest.raises(
        LayoutError, match=rf"fp6_4\+2 layout: K={k} \(dimension 1\) must be a multiple of 64"
    ):
        pack_fp6(np.zeros((2, k), np.uint8))


def test_refuses_non_2d_and_wide_codes():
    with pytest.raises(LayoutError, match="2-D"):
        pack_nibbles(np.zeros(8, np.uint8))
    with pytest.raises(LayoutError, match="6-bit"):
        pack_fp6(np.full((1, 64), 64, np.uint8))
    lo4, hi2 = pack_fp6(np.zeros((2, 64), np.uint8))
    with pytest.raises(LayoutError, match="does not match"):
        unpack_fp6(lo4, hi2[:, :-1])


def _int4_v2_by_the_doc(codes: np.ndarray) -> np.ndarray:
    """docs/LAYOUTS.md, version 2, element by element: n = 16 nt + 8 h + g, k = 64 kt + 16 t + 4 i +
    e; byte 512 (nt K/64 + kt) + 16 (4 g + t) + 4 i + p // 2, nibble p % 2, p = 4 (e & 1) + 2 (e >> 1) + h."""
    n, k = codes.shape
    out = np.zeros(n * k // 2, np.uint8)
    for row in range(n):
        nt, h, g = row // 16, (row % 16) // 8, row % 8
        for col in range(k):
            kt, t, i, e = col // 64, (col % 64) // 16, (col % 16) // 4, col % 4
            p = 4 * (e & 1) + 2 * (e >> 1) + h
            byte = 512 * (nt * (k // 64) + kt) + 16 * (4 * g + t) + 4 * i + p // 2
            out[byte] |= (int(codes[row, col]) & 0xF) << (4 * (p % 2))
    return out.reshape(n, k // 2)


@pytest.mark.parametrize("n,k", [(16, 64), (32, 128), (48, 192)])
def test_int4_v2_bytes_follow_the_layout_doc(n, k):
    codes = np.random.default_rng(n + k).integers(0, 16, (n, k)).astype(np.uint8)
    np.testing.assert_array_equal(pack_int4_v2(codes), _int4_v2_by_the_doc(codes))


@pytest.mark.parametrize("n,k", [(16, 64), (16, 128), (32, 64), (64, 256), (48, 320)])
def test_int4_v2_round_trip_uint4(n, k):
    codes = np.random.default_rng(7 * n + k).integers(0, 16, (n, k)).astype(np.uint8)
    packed = pack_int4_v2(codes)
    assert packed.dtype == np.uint8 and packed.shape == (n, k // 2) and packed.flags.c_contiguous
    np.testing.assert_array_equal(unpack_int4_v2(packed), codes)
    np.testing.assert_array_equal(unpack_int4_v2(packed.view(np.int8)), codes)  # INT8-typed bytes
    assert not np.array_equal(packed, pack_nibbles(codes))  # not the v1 bytes


@pytest.mark.parametrize("n,k", [(16, 64), (32, 192)])
def test_int4_v2_round_trip_int4_sign_extends(n, k):
    values = np.random.default_rng(n * k).integers(-8, 8, (n, k)).astype(np.int8)
    codes = FORMATS["int4"].encode(values.astype(np.float32))
    out = unpack_int4_v2(pack_int4_v2(codes), signed=True)
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, values)


def test_int4_v2_first_word_by_hand():
    # word 0 of lane 0: rows 0 (h=0) and 8 (h=1), k 0..3, nibble p = 4 (e & 1) + 2 (e >> 1) + h
    codes = np.zeros((16, 64), np.uint8)
    codes[0, :4] = [0x1, 0x2, 0x3, 0x4]
    codes[8, :4] = [0x5, 0x6, 0x7, 0x8]
    word = int.from_bytes(pack_int4_v2(codes).reshape(-1)[:4].tobytes(), "little")
    assert word == 0x8462_7351


@pytest.mark.parametrize("shape", [(8, 64), (16, 32), (24, 64)])
def test_int4_v2_refuses_partial_tiles(shape):
    with pytest.raises(LayoutError, match="int4_v2 layout"):
        pack_int4_v2(np.zeros(shape, np.uint8))


def _fp6_v2_by_the_doc(codes: np.ndarray, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """docs/LAYOUTS.md, fp6_v2, element by element: n = 16 nt + 8 h + g, k = 64 kt + 16 t + d4; lane
    4 g + t at lo4 byte 512 (nt K/64 + kt) + 16 lane and hi2 byte 256 (nt K/64 + kt) + 8 lane;
    half e = d % 2 of register a[i][j], i = d4 // 4, d = d4 % 4, j = h + 2 (d // 2); a segment bit
    that becomes FP16 bit f at bit (f + 16 e - s) % 32 of lo4 word i or hi2 word w."""
    n, k = codes.shape
    lo4, hi2 = np.zeros(n * k // 2, np.uint8), np.zeros(n * k // 4, np.uint8)
    for row in range(n):
        nt, h, g = row // 16, (row % 16) // 8, row % 8
        for col in range(k):
            kt, t, d4 = col // 64, (col % 64) // 16, col % 16
            i, d = divmod(d4, 4)
            j, e = h + 2 * (d // 2), d % 2
            tile, lane, c = nt * (k // 64) + kt, 4 * g + t, int(codes[row, col])
            if fmt == "fp6_e3m2":
                s, w = (0, 4, 2, 6)[2 * (i % 2) + j % 2] + 8 * (j // 2), i // 2
                four, two = c & 0xF, [((c >> 4) & 1, 12), (c >> 5, 15)]
            else:
                s, w = i + 4 * j, j // 2
                four, two = (c >> 1) & 0xF, [(c & 1, 7), (c >> 5, 15)]
            for b in range(4):
                bit = 32 * i + (8 + b + 16 * e - s) % 32
                lo4[512 * tile + 16 * lane + bit // 8] |= ((four >> b) & 1) << (bit % 8)
            for value, f in two:
                bit = 32 * w + (f + 16 * e - s) % 32
                hi2[256 * tile + 8 * lane + bit // 8] |= value << (bit % 8)
    return lo4.reshape(n, k // 2), hi2.reshape(n, k // 4)


@pytest.mark.parametrize("fmt", FP6_V2_FORMATS)
@pytest.mark.parametrize("n,k", [(16, 64), (32, 128), (48, 192)])
def test_fp6_v2_bytes_follow_the_layout_doc(fmt, n, k):
    codes = np.random.default_rng(n + k).integers(0, 64, (n, k)).astype(np.uint8)
    lo4, hi2 = pack_fp6_v2(codes, fmt)
    want_lo4, want_hi2 = _fp6_v2_by_the_doc(codes, fmt)
    np.testing.assert_array_equal(lo4, want_lo4)
    np.testing.assert_array_equal(hi2, want_hi2)


@pytest.mark.parametrize("fmt", FP6_V2_FORMATS)
@pytest.mark.parametrize("n,k", [(16, 64), (16, 128), (32, 64), (64, 256), (48, 320)])
def test_fp6_v2_round_trip(fmt, n, k):
    codes = np.random.default_rng(7 * n + k).integers(0, 64, (n, k)).astype(np.uint8)
    lo4, hi2 = pack_fp6_v2(codes, fmt)
    assert lo4.dtype == hi2.dtype == np.uint8 and lo4.shape == (n, k // 2) and hi2.shape == (n, k // 4)
    assert lo4.flags.c_contiguous and hi2.flags.c_contiguous
    np.testing.assert_array_equal(unpack_fp6_v2(lo4, hi2, fmt), codes)
    np.testing.assert_array_equal(unpack_fp6_v2(lo4.view(np.int8), hi2.view(np.int8), fmt), codes)
    v1 = pack_fp6(codes)
    assert not np.array_equal(lo4, v1[0]) and not np.array_equal(hi2, v1[1])  # not the v1 bytes


def test_fp6_v2_first_lane_by_hand():
    # lane 0, row 0, k 0: half 0 of a[0][0], rotation 0. The 4-bit segment (E3M2 code bits 0-3, E2M3
    # bits 1-4) at lo4 bits 8-11; the 2-bit segment at hi2 bits 12, 15 (E3M2) or 7, 15 (E2M3).
    codes = np.zeros((16, 64), np.uint8)
    codes[0, 0] = 0x3F
    lo4, hi2 = pack_fp6_v2(codes, "fp6_e3m2")
    assert lo4.reshape(-1)[:2].tolist() == [0x00, 0x0F] and hi2.reshape(-1)[:2].tolist() == [0x00, 0x90]
    lo4, hi2 = pack_fp6_v2(codes, "fp6_e2m3")
    assert lo4.reshape(-1)[:2].tolist() == [0x00, 0x0F] and hi2.reshape(-1)[:2].tolist() == [0x80, 0x80]
    assert not lo4.reshape(-1)[2:].any() and not hi2.reshape(-1)[2:].any()


@pytest.mark.parametrize("shape", [(8, 64), (16, 32), (24, 64)])
def test_fp6_v2_refuses_partial_tiles_and_other_formats(shape):
    with pytest.raises(LayoutError, match="fp6_v2 layout"):
        pack_fp6_v2(np.zeros(shape, np.uint8), "fp6_e3m2")
    with pytest.raises(LayoutError, match="6-bit"):
        pack_fp6_v2(np.full((16, 64), 64, np.uint8), "fp6_e2m3")
    with pytest.raises(LayoutError, match="format int4"):
        pack_fp6_v2(np.zeros((16, 64), np.uint8), "int4")
    assert fp6_v2_problem(16, 64, "fp6_e2m3") == ""
    assert "N=8, K=64 must be multiples of 16 and 64" in fp6_v2_problem(8, 64, "fp6_e3m2")

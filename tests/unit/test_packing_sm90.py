"""int4_sm90 (docs/LAYOUTS.md, QcW4A16Gemm layout_version 3): round trips, the nibble offsets CuTe
computes for CUTLASS's reordering atom, refusals. Zero tolerance: a layout either is or is not."""

from __future__ import annotations

import numpy as np
import pytest

from qcompile.errors import LayoutError
from qcompile.packing import unpack_nibbles
from qcompile.packing_sm90 import int4_sm90_problem, pack_int4_sm90, unpack_int4_sm90

# (n, k) -> nibble offset for N=32, K=64, printed by CuTe for
# tile_to_shape(compute_memory_reordering_atom<half_t, Layout<(1,1)>, Layout<(2,4):(4,1)>>(), (32, 64, 1))
CUTE_OFFSETS = {
    (0, 0): 0,
    (0, 1): 4,
    (0, 2): 8,
    (0, 8): 2,
    (0, 16): 512,
    (8, 1): 5,
    (9, 0): 33,
    (16, 0): 256,
    (17, 9): 294,
    (31, 63): 2047,
}


def test_offsets_match_cute():
    n, k = 32, 64
    codes = np.zeros((n, k), np.uint8)
    stream = unpack_nibbles(pack_int4_sm90(codes)).reshape(-1)
    assert stream.size == n * k
    for (row, col), offset in CUTE_OFFSETS.items():
        codes[:] = 0
        codes[row, col] = 0xA
        stream = unpack_nibbles(pack_int4_sm90(codes)).reshape(-1)
        assert np.flatnonzero(stream).tolist() == [offset], (row, col)


@pytest.mark.parametrize("n,k", [(16, 16), (48, 128), (4096, 64)])
def test_round_trip(n, k):
    rng = np.random.default_rng(n * 7 + k)
    codes = rng.integers(0, 16, (n, k), dtype=np.uint8)
    packed = pack_int4_sm90(codes)
    assert packed.shape == (n, k // 2) and packed.dtype == np.uint8
    assert np.array_equal(unpack_int4_sm90(packed), codes)
    signed = ((codes.astype(np.int8) << 4) >> 4).astype(np.int8)
    assert np.array_equal(pack_int4_sm90(signed), packed)
    assert np.array_equal(unpack_int4_sm90(packed, signed=True), signed)
    assert np.array_equal(unpack_int4_sm90(packed.view(np.int8)), codes)  # int8-typed initializer bytes


def test_one_thread_word_is_contiguous_in_shuffled_register_order():
    """Thread (g, t) of a warp's 16 x 16 atom: rows g, g+8 and k 2t, 2t+1, 2t+8, 2t+9 in one 32-bit
    word, nibbles in the fragment's register order [0, 2, 4, 6, 1, 3, 5, 7]."""
    g, t = 3, 2
    codes = np.zeros((16, 16), np.uint8)
    frag = [(g, 2 * t), (g, 2 * t + 1), (g + 8, 2 * t), (g + 8, 2 * t + 1)]
    frag += [(g, 2 * t + 8), (g, 2 * t + 9), (g + 8, 2 * t + 8), (g + 8, 2 * t + 9)]
    for v, (row, col) in enumerate(frag):
        codes[row, col] = v + 1
    word = pack_int4_sm90(codes).reshape(-1)[16 * g + 4 * t : 16 * g + 4 * t + 4]
    nibbles = [(int(b) >> s) & 0xF for b in word for s in (0, 4)]
    assert nibbles == [v + 1 for v in (0, 2, 4, 6, 1, 3, 5, 7)]


def test_refusals():
    assert int4_sm90_problem(32, 64, "int4", 64) == ""
    assert int4_sm90_problem(16, 128, "uint4", 128) == ""
    assert "format fp4_e2m1" in int4_sm90_problem(32, 64, "fp4_e2m1", 64)
    assert "multiples of 16" in int4_sm90_problem(24, 64, "uint4", 64)
    assert "group size 32" in int4_sm90_problem(32, 64, "int4", 32)
    with pytest.raises(LayoutError, match="N=24"):
        pack_int4_sm90(np.zeros((24, 64), np.uint8))
    with pytest.raises(LayoutError, match="K=40"):
        unpack_int4_sm90(np.zeros((16, 20), np.uint8))
    with pytest.raises(LayoutError, match="2-D"):
        pack_int4_sm90(np.zeros(64, np.uint8))

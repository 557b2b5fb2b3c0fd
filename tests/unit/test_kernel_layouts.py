"""The CPU reference decoders of plugins/ (the decode.h bit operations the CUDA kernels run) against
qcompile.packing / qcompile.formats and ml_dtypes, with zero tolerance: every comparison is of
exact values or bytes."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from qcompile import formats, packing, packing_sm90

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
SOURCES = ["ref/qc_ref.cpp", "w6a16/w6a16_check.cpp", "w4a16/w4a16_check.cpp", "w4a8/w4a8_check.cpp"]
INCLUDES = ["common", "ref", "w6a16", "w4a16", "w4a8"]

# qc_status.h
OK, ERR_SHAPE, ERR_FORMAT, ERR_ARG = 0, 1, 3, 8
FMT = {"fp6_e3m2": 0, "fp6_e2m3": 1, "int4": 2, "uint4": 3, "fp4_e2m1": 4}
PER_TENSOR, PER_TOKEN = 0, 1
EXP_MIN = {"fp4_e2m1": -8, "int4": -9}  # decode.h QC_W4A8_EXP_MIN_*


@pytest.fixture(scope="session")
def ref(tmp_path_factory):
    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if cxx is None:
        pytest.fail("no C++ compiler (g++, c++ or clang++) on PATH: cannot build plugins/ref (qc_ref)")
    out = tmp_path_factory.mktemp("qc_ref") / "libqc_ref.so"
    cmd = [cxx, "-O1", "-std=c++17", "-shared", "-fPIC", "-o", str(out)]
    cmd += [f"-I{PLUGINS / d}" for d in INCLUDES] + [str(PLUGINS / s) for s in SOURCES]
    build = subprocess.run(cmd, capture_output=True, text=True)
    if build.returncode:
        pytest.fail(f"building qc_ref failed:\n{build.stderr}")
    return ctypes.CDLL(str(out))


def ptr(a: np.ndarray):
    assert a.flags.c_contiguous
    return a.ctypes.data_as(ctypes.c_void_p)


def call(fn, *args):
    status = fn(*args)
    assert status == OK, f"{fn.__name__} returned status {status}"


def test_fp6_bit_trick_every_code(ref):
    codes = np.arange(64, dtype=np.uint8)
    for name, ml, factor in (
        ("fp6_e3m2", ml_dtypes.float6_e3m2fn, 2.0**12),
        ("fp6_e2m3", ml_dtypes.float6_e2m3fn, 2.0**14),
    ):
        bits = np.empty(64, np.uint16)
        call(ref.qc_ref_fp6_to_half_bits, ptr(codes), ctypes.c_longlong(64), FMT[name], ptr(bits))
        got = bits.view(np.float16).astype(np.float32) * np.float32(factor)
        np.testing.assert_array_equal(got, codes.view(ml).astype(np.float32), err_msg=name)
        np.testing.assert_array_equal(got, formats.get_format(name).decode(codes), err_msg=name)


@pytest.mark.parametrize("name", ["fp6_e3m2", "fp6_e2m3"])
@pytest.mark.parametrize("layout,n", [(1, 24), (2, 32)])
def test_w6a16_decode_matches_packing(ref, name, layout, n):
    """Layout 1 (fp6_4+2) and 2 (fp6_v2, qcompile.packing.pack_fp6_v2 read through fp6_v2.h)."""
    rng = np.random.default_rng(layout)
    k = 192
    codes = rng.integers(0, 64, (n, k), dtype=np.uint8)
    codes[:2, :64] = np.arange(64, dtype=np.uint8).reshape(2, 32).repeat(2, axis=1)  # every code
    scales = (rng.random(n) * 2 + 0.01).astype(np.float16)
    lo4, hi2 = packing.pack_fp6(codes) if layout == 1 else packing.pack_fp6_v2(codes, name)
    out = np.empty((n, k), np.float32)
    call(ref.qc_ref_decode_w6a16, ptr(lo4), ptr(hi2), ptr(scales), n, k, FMT[name], layout, ptr(out))
    want = formats.get_format(name).decode(codes) * scales.astype(np.float32)[:, None]
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize(
    "name,zeros", [("int4", False), ("uint4", False), ("uint4", True), ("fp4_e2m1", False)]
)
@pytest.mark.parametrize("group", [32, 64, 128])
def test_w4a16_decode_matches_packing(ref, name, zeros, group):
    rng = np.random.default_rng(group)
    fmt = formats.get_format(name)
    n, k = 32, 384
    values = rng.normal(size=(n, k)).astype(np.float32) * 6
    codes = fmt.encode(values)
    scales = (rng.random((n, k // group)) + 0.01).astype(np.float16)
    z = rng.integers(0, 16, (n, k // group), dtype=np.uint8) if zeros else None
    q = fmt.decode(codes)
    if zeros:
        q = q - np.repeat(z, group, axis=1).astype(np.float32)
    want = q * np.repeat(scales, group, axis=1).astype(np.float32)
    layouts = {1: packing.pack_nibbles(codes)}
    if name != "fp4_e2m1":
        layouts[2] = packing.pack_int4_v2(codes)
        assert not np.array_equal(layouts[1], layouts[2])
    if name != "fp4_e2m1" and group != 32:
        layouts[3] = packing_sm90.pack_int4_sm90(codes)
        assert not np.array_equal(layouts[1], layouts[3])
    for layout, packed in layouts.items():
        out = np.empty((n, k), np.float32)
        call(
            ref.qc_ref_decode_w4a16,
            ptr(packed),
            ptr(scales),
            ptr(z) if zeros else None,
            n,
            k,
            group,
            FMT[name],
            layout,
            ptr(out),
        )
        np.testing.assert_array_equal(out, want, err_msg=f"layout {layout}")


def fp8_of(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float32).astype(ml_dtypes.float8_e4m3fn).view(np.uint8)


@pytest.mark.parametrize("name", ["fp4_e2m1", "int4"])
def test_w4_to_fp8_every_code_and_exponent(ref, name):
    fmt = formats.get_format(name)
    codes = np.arange(16, dtype=np.uint8)
    # nibble -> the format's code: INT4 two's complement, sign-extended
    values = fmt.decode(((codes.astype(np.int16) ^ 8) - 8).astype(np.int8) if name == "int4" else codes)
    for e in range(EXP_MIN[name], 1):
        want = fp8_of(values * np.float32(2.0**e))
        exps = np.full(16, e, np.int8)
        scalar, lut = np.empty(16, np.uint8), np.empty(16, np.uint8)
        call(ref.qc_ref_w4_to_fp8, ptr(codes), ptr(exps), ctypes.c_longlong(16), FMT[name], ptr(scalar))
        call(ref.qc_ref_w4a8_lut, FMT[name], e, ptr(lut))
        np.testing.assert_array_equal(scalar, want, err_msg=f"{name} e={e} scalar rule")
        np.testing.assert_array_equal(lut, want, err_msg=f"{name} e={e} kernel table")


@pytest.mark.parametrize("name", ["fp4_e2m1", "int4"])
@pytest.mark.parametrize("group", [32, 128])
def test_w4a8_weight_operand_matches_packing(ref, name, group):
    rng = np.random.default_rng(7)
    fmt = formats.get_format(name)
    n, k = 16, 256
    codes = fmt.encode(rng.normal(size=(n, k)).astype(np.float32) * 4)
    exps = rng.integers(EXP_MIN[name], 1, (n, k // group)).astype(np.int8)
    packed = packing.pack_nibbles(codes)
    out = np.empty((n, k), np.uint8)
    call(ref.qc_ref_decode_w4a8_fp8, ptr(packed), ptr(exps), n, k, group, FMT[name], ptr(out))
    want = fp8_of(fmt.decode(codes) * np.exp2(np.repeat(exps, group, axis=1).astype(np.float32)))
    np.testing.assert_array_equal(out, want)


def test_activation_fp8_rounding(ref):
    rng = np.random.default_rng(3)
    grid = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    grid = grid[np.isfinite(grid)]
    mids = (np.sort(np.unique(grid))[1:] + np.sort(np.unique(grid))[:-1]) / 2  # every tie
    x = np.concatenate(
        [
            grid,
            mids,
            rng.normal(size=4000) * 100,
            rng.normal(size=1000) * 1e-3,
            [500.0, -1e6, 448.0, 464.0, -465.0, 1e-9],
        ]
    ).astype(np.float32)
    inv = np.float32(1 / 1.7)
    out = np.empty(x.size, np.uint8)
    call(ref.qc_ref_float_to_e4m3, ptr(x), ctypes.c_longlong(x.size), ctypes.c_float(inv), ptr(out))
    np.testing.assert_array_equal(out, fp8_of(np.clip(x * inv, -448, 448)))
    back = np.empty(x.size, np.float32)
    call(ref.qc_ref_e4m3_to_float, ptr(out), ctypes.c_longlong(x.size), ptr(back))
    np.testing.assert_array_equal(back, out.view(ml_dtypes.float8_e4m3fn).astype(np.float32))


@pytest.mark.parametrize(
    "args,status",
    [
        ((1, 8, 64, FMT["fp6_e3m2"], 1), OK),
        ((0, 8, 64, FMT["fp6_e2m3"], 1), OK),
        ((1, 8, 96, FMT["fp6_e3m2"], 1), ERR_SHAPE),
        ((1, 12, 64, FMT["fp6_e3m2"], 1), ERR_SHAPE),
        ((-1, 8, 64, FMT["fp6_e3m2"], 1), ERR_SHAPE),
        ((1, 8, 0, FMT["fp6_e3m2"], 1), ERR_SHAPE),
        ((1, 8, 64, FMT["int4"], 1), ERR_FORMAT),
        # layout 2 (fp6_v2): whole 16 x 64 tiles, both FP6 formats
        ((4, 32, 192, FMT["fp6_e2m3"], 2), OK),
        ((4, 16, 64, FMT["fp6_e3m2"], 2), OK),
        ((4, 8, 64, FMT["fp6_e3m2"], 2), ERR_SHAPE),
        ((4, 16, 96, FMT["fp6_e3m2"], 2), ERR_SHAPE),
        ((4, 16, 64, FMT["int4"], 2), ERR_FORMAT),
        ((4, 16, 64, FMT["fp6_e3m2"], 3), ERR_ARG),
    ],
)
def test_w6a16_shape_rules(ref, args, status):
    assert ref.qc_w6a16_check_shape(*args) == status


@pytest.mark.parametrize(
    "args,status",
    [
        ((4, 16, 96, 32, FMT["int4"], 0, 1), OK),
        ((4, 16, 128, 128, FMT["uint4"], 1, 1), OK),
        ((4, 16, 96, 64, FMT["int4"], 0, 1), ERR_SHAPE),
        ((4, 20, 128, 32, FMT["fp4_e2m1"], 0, 1), ERR_SHAPE),
        ((4, 16, 128, 48, FMT["int4"], 0, 1), ERR_ARG),
        ((4, 16, 128, 32, FMT["int4"], 1, 1), ERR_FORMAT),
        ((4, 16, 128, 32, FMT["fp6_e3m2"], 0, 1), ERR_FORMAT),
        # layout 2 (int4_v2): 16 x 64 tiles, INT4 / UINT4 only
        ((4, 32, 192, 64, FMT["uint4"], 1, 2), OK),
        ((4, 8, 128, 32, FMT["int4"], 0, 2), ERR_SHAPE),
        ((4, 16, 96, 32, FMT["int4"], 0, 2), ERR_SHAPE),
        ((4, 16, 128, 32, FMT["fp4_e2m1"], 0, 2), ERR_FORMAT),
        # layout 3 (int4_sm90): 16 x 16 atoms, INT4 / UINT4, groups 64 and 128 (the sm_90a path's)
        ((4, 16, 64, 64, FMT["int4"], 0, 3), OK),
        ((4, 48, 256, 128, FMT["uint4"], 1, 3), OK),
        ((4, 8, 128, 64, FMT["int4"], 0, 3), ERR_SHAPE),
        ((4, 24, 128, 64, FMT["int4"], 0, 3), ERR_SHAPE),
        ((4, 16, 128, 64, FMT["fp4_e2m1"], 0, 3), ERR_FORMAT),
        ((4, 16, 128, 32, FMT["int4"], 0, 3), ERR_ARG),
        ((4, 16, 128, 64, FMT["int4"], 0, 4), ERR_ARG),
    ],
)
def test_w4a16_shape_rules(ref, args, status):
    assert ref.qc_w4a16_check_shape(*args) == status


@pytest.mark.parametrize(
    "args,status",
    [
        ((4, 16, 160, 32, FMT["fp4_e2m1"], PER_TOKEN), OK),
        ((1, 8, 128, 128, FMT["int4"], PER_TENSOR), OK),
        ((4, 16, 160, 64, FMT["fp4_e2m1"], PER_TOKEN), ERR_SHAPE),
        ((4, 4, 128, 32, FMT["int4"], PER_TENSOR), ERR_SHAPE),
        ((4, 16, 128, 32, FMT["uint4"], PER_TENSOR), ERR_FORMAT),
        ((4, 16, 128, 32, FMT["int4"], 2), ERR_ARG),
        ((4, 16, 128, 16, FMT["int4"], PER_TENSOR), ERR_ARG),
    ],
)
def test_w4a8_shape_rules(ref, args, status):
    assert ref.qc_w4a8_check_shape(*args) == status


def test_w4a8_group_exp_range(ref):
    ok = np.arange(-8, 1, dtype=np.int8)
    assert ref.qc_w4a8_check_group_exp(ptr(ok), ctypes.c_longlong(ok.size), FMT["fp4_e2m1"]) == OK
    for bad, name in ((-9, "fp4_e2m1"), (1, "int4"), (-10, "int4")):
        arr = np.array([0, bad], np.int8)
        assert ref.qc_w4a8_check_group_exp(ptr(arr), ctypes.c_longlong(2), FMT[name]) == ERR_FORMAT


def test_workspace_sizes_follow_the_split(ref):
    ref.qc_w4a16_workspace_size.restype = ctypes.c_size_t
    ref.qc_w4a8_workspace_size.restype = ctypes.c_size_t
    small = ref.qc_w4a16_workspace_size(1, 4096, 4096, 128)
    # split-K partial sums [splits, 1, N] fp32, then the 64 tiles' int counters rounded to 256 bytes
    assert small > 0 and (small - 256) % (4096 * 4) == 0, small
    assert ref.qc_w4a16_workspace_size(512, 28672, 8192, 128) == 0  # enough tiles: no split
    assert ref.qc_w4a8_workspace_size(512, 28672, 8192, 128, PER_TOKEN) == 2048  # row scales only

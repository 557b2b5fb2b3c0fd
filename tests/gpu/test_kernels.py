"""The CUDA GEMM kernels of plugins/ (libqc_kernels.so, C ABI via ctypes) against a float32 torch
reference of dequantize-then-matmul of the same packed bytes, decoded by qcompile in numpy.

Error measure: max|y - ref| / max|ref| over the output.
- W6A16 / W4A16 bound 2e-3: the MMA multiplies FP16 operands exactly and accumulates in fp32
  (error ~K * 2^-24 relative, negligible); the output is rounded to fp16 (<= 2^-11 = 4.9e-4 of
  max|ref|); W4A16 also rounds each dequantized weight to fp16 (2^-11 relative per weight, random
  in sign, so ~2^-11 * ||x*w||_2 << max|ref|). 2e-3 leaves a 4x margin over the output rounding.
- W4A8 bound 5e-3: the reference rounds activations to FP8 exactly like the kernel, so products
  agree exactly; on top of the fp16 output rounding, FP8 tensor-core accumulation on Hopper is
  reported to keep fewer than fp32's 24 mantissa bits, hence a looser bound.
Set QC_GPU_FULL=1 to run every M on the large (N, K) shapes too; QC_GPU_SUBSET=1 (bench/gpu_check.sh)
runs M in {1, 16, 64, 512} on (4096, 4096) and (11008, 4096) plus the odd and invalid shapes.
"""

from __future__ import annotations

import ctypes
import os
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import kernel_abi as abi  # noqa: E402  (tests/gpu is on sys.path under pytest's rootdir-less import)

from qcompile import formats, packing  # noqa: E402


def _load_library():
    """With a CUDA device present, a missing or unloadable library FAILS every test (never a skip)."""
    path = abi.library_path()
    if not path.exists():
        return None, f"{path} not built (tests/run_all.sh or plugins/build.sh build it; or set QC_KERNEL_LIB)"
    try:
        return abi.load(path), ""
    except (OSError, AttributeError) as e:
        return None, f"{path} does not load: {e}"


LIB, LIB_ERROR = _load_library()


@pytest.fixture(autouse=True)
def _library_loaded():
    if LIB is None:
        pytest.fail(LIB_ERROR)


def seed(*key) -> int:
    """A fixed seed per case (crc32 of its parameters), the same in every process."""
    return zlib.crc32(repr(key).encode())


def randn_x(m: int, k: int, *key):
    g = torch.Generator(device="cpu").manual_seed(seed("x", m, k, *key))
    return torch.randn(m, k, generator=g, dtype=torch.float32).to(torch.float16).to(DEV)


TOL_F16, TOL_W4A8 = 2e-3, 5e-3
MS = [1, 2, 4, 8, 16, 32, 64, 128, 512]
SMALL_NK = [(4096, 4096)]
BIG_NK = [(11008, 4096), (4096, 11008), (8192, 8192), (28672, 8192)]
BIG_MS = MS if os.environ.get("QC_GPU_FULL") else [1, 16, 128]
if os.environ.get("QC_GPU_SUBSET"):  # bench/gpu_check.sh: M in {1, 16, 64, 512} on two (N, K) shapes
    MS = BIG_MS = [1, 16, 64, 512]
    BIG_NK = [(11008, 4096)]
# (n, k) outermost in every parametrize list, so consecutive tests share one cached weight set.
CASES = [(m, n, k) for n, k in SMALL_NK for m in MS] + [(m, n, k) for n, k in BIG_NK for m in BIG_MS]
DEV = "cuda"


def cc() -> int:
    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor


def gpu(a: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(a)).to(DEV)


def poisoned(m: int, n: int):
    return torch.full((m, n), float("nan"), dtype=torch.float16, device=DEV)


def rel_err(y, ref) -> float:
    assert not torch.isnan(y).any(), "output still holds NaN poison (or the kernel produced NaN)"
    return ((y.float() - ref).abs().max() / ref.abs().max()).item()


def run(status: int):
    assert status == abi.OK, f"kernel returned status {status}"
    torch.cuda.synchronize()  # raises on an asynchronous CUDA error


_weights: dict = {}


def weights(kind: str, fmt: str, n: int, k: int, group: int = 128):
    """Random packed weights and their float32 dequantization (on the GPU), cached per shape."""
    key = (kind, fmt, n, k, group)
    if key not in _weights:
        if n * k > 1 << 22:
            _weights.clear()  # one large shape in memory at a time (small ones stay cached)
        rng = np.random.default_rng(seed(*key))
        f = formats.get_format(fmt)
        if kind == "w6a16":
            codes = rng.integers(0, 64, (n, k), dtype=np.uint8)
            scales = (rng.random(n, dtype=np.float32) * 0.02 + 0.005).astype(np.float16)
            lo4, hi2 = packing.pack_fp6(codes)
            w = f.decode(codes) * scales.astype(np.float32)[:, None]
            v2 = None if packing.fp6_v2_problem(n, k, fmt) else packing.pack_fp6_v2(codes, fmt)
            v2 = v2 and [gpu(a) for a in v2]
            _weights[key] = dict(lo4=gpu(lo4), hi2=gpu(hi2), v2=v2, scales=gpu(scales), w=gpu(w))
        elif kind == "w4a16":
            codes = f.encode(rng.normal(size=(n, k)).astype(np.float32) * 3)
            scales = (rng.random((n, k // group), dtype=np.float32) * 0.02 + 0.005).astype(np.float16)
            q = f.decode(codes)
            zeros = None
            if fmt == "uint4":
                zeros = rng.integers(0, 16, (n, k // group), dtype=np.uint8)
                q = q - np.repeat(zeros, group, axis=1).astype(np.float32)
            w = q * np.repeat(scales.astype(np.float32), group, axis=1)
            v2 = not packing.int4_v2_problem(n, k, fmt)
            _weights[key] = dict(
                w4=gpu(packing.pack_nibbles(codes)),
                w4_v2=gpu(packing.pack_int4_v2(codes)) if v2 else None,
                scales=gpu(scales),
                zeros=None if zeros is None else gpu(zeros),
                w=gpu(w),
            )
        else:
            codes = f.encode(rng.normal(size=(n, k)).astype(np.float32) * 3)
            # e in [-7, 0]: exact for both formats; e < -5 (FP4) / -6 (INT4) takes the per-code LUT path
            exps = rng.integers(-7, 1, (n, k // group)).astype(np.int8)
            cscale = (rng.random(n, dtype=np.float32) * 0.02 + 0.005).astype(np.float32)
            wq = f.decode(codes) * np.exp2(np.repeat(exps, group, axis=1).astype(np.float32))  # exact in E4M3
            _weights[key] = dict(
                w4=gpu(packing.pack_nibbles(codes)), exps=gpu(exps), cscale=gpu(cscale), wq=gpu(wq)
            )
    return _weights[key]


def fp8_round(x, inv):
    return torch.clamp(x.float() * inv, -448, 448).to(torch.float8_e4m3fn).float()


@pytest.mark.parametrize("fmt,m,n,k", [(f, *c) for f in ("fp6_e3m2", "fp6_e2m3") for c in CASES])
def test_w6a16(fmt, m, n, k):
    """Layout 1, and layout 2 (fp6_v2) of the same codes: v2 feeds the MMA decode(c) * 2^-12 (2^-14)
    and applies the power of two in the fp32 epilogue, which is exact, so the outputs are
    bit-identical."""
    wt = weights("w6a16", fmt, n, k)
    x = randn_x(m, k, fmt, n)
    y = poisoned(m, n)
    run(abi.w6a16(LIB, x, wt["lo4"], wt["hi2"], wt["scales"], y, fmt))
    err = rel_err(y, x.float() @ wt["w"].T)
    assert err < TOL_F16, f"relative error {err:.3g}"
    if wt["v2"] is not None:
        y2 = poisoned(m, n)
        run(abi.w6a16(LIB, x, *wt["v2"], wt["scales"], y2, fmt, layout=2))
        err = rel_err(y2, y.float())
        assert torch.equal(y2, y), f"fp6_v2 differs from layout 1: relative error {err:.3g}"


@pytest.mark.parametrize(
    "fmt,group,m,n,k",
    [(*fg, *c) for fg in (("int4", 128), ("int4", 32), ("uint4", 64), ("fp4_e2m1", 128)) for c in CASES],
)
def test_w4a16(fmt, group, m, n, k):
    """Layout 1, and for INT4 / UINT4 layout 2 (int4_v2) of the same codes: the same FP16 weight
    operands in the same MMA slots, so the two outputs are bit-identical."""
    wt = weights("w4a16", fmt, n, k, group)
    x = randn_x(m, k, fmt, group, n)
    y = poisoned(m, n)
    run(abi.w4a16(LIB, x, wt["w4"], wt["scales"], wt["zeros"], y, group, fmt))
    err = rel_err(y, x.float() @ wt["w"].T)
    assert err < TOL_F16, f"relative error {err:.3g}"
    if wt["w4_v2"] is not None:
        y2 = poisoned(m, n)
        run(abi.w4a16(LIB, x, wt["w4_v2"], wt["scales"], wt["zeros"], y2, group, fmt, layout=2))
        assert torch.equal(y2, y), (
            f"int4_v2 differs from layout 1: relative error {rel_err(y2, y.float()):.3g}"
        )


def w4a8_reference(x, wt, act: str, act_scale):
    if act == "per_tensor":
        s = act_scale.reshape(1, 1)
    else:
        s = x.float().abs().amax(dim=1, keepdim=True) / 448.0
        s = torch.where((s > 0) & torch.isfinite(s), s, torch.ones_like(s))
    return (fp8_round(x, 1.0 / s) @ wt["wq"].T) * wt["cscale"][None, :] * s


W4A8_MODES = (("fp4_e2m1", "per_tensor"), ("fp4_e2m1", "per_token"), ("int4", "per_token"))


@pytest.mark.skipif(cc() < 89, reason="W4A8 needs FP8 MMA (sm_89+)")
@pytest.mark.parametrize("fmt,act,m,n,k", [(*fa, *c) for fa in W4A8_MODES for c in CASES])
def test_w4a8(fmt, act, m, n, k):
    check_w4a8(abi.w4a8, fmt, act, m, n, k)


def check_w4a8(gemm, fmt: str, act: str, m: int, n: int, k: int) -> None:
    """`gemm` (abi.w4a8 or abi.sm90_w4a8) on one case against the W4A8 reference."""
    wt = weights("w4a8", fmt, n, k)
    x = randn_x(m, k, fmt, act, n)
    act_scale = (x.float().abs().max() / 448.0).reshape(1)
    y = poisoned(m, n)
    run(gemm(LIB, x, wt["w4"], wt["exps"], wt["cscale"], act_scale, y, 128, fmt, act))
    err = rel_err(y, w4a8_reference(x, wt, act, act_scale))
    assert err < TOL_W4A8, f"relative error {err:.3g}"


# (m, n, k, group): partial N/M tiles, K tails, fewer K blocks than pipeline stages; the last two
# split K in the launch (one 64-channel tile, M = 1 or 3) over 33 blocks of 128 k, the last block
# half empty (K = 4160 = 32.5 x 128): slices of 9 blocks, the last slice shorter.
ODD_SHAPES = [
    (3, 24, 96, 32),
    (17, 72, 160, 32),
    (5, 8, 64, 64),
    (33, 136, 192, 64),
    (17, 48, 192, 64),
    (1, 64, 4160, 64),
    (3, 128, 4160, 32),
]


@pytest.mark.parametrize("m,n,k,group", ODD_SHAPES)
def test_odd_valid_shapes_and_no_workspace(m, n, k, group):
    """Partial N/M tiles and a K tail; workspace of 16 bytes forces the unsplit path."""
    x = randn_x(m, k, n, group)
    small = torch.empty(16, dtype=torch.uint8, device=DEV)
    for ws in (None, small):
        wt = weights("w4a16", "int4", n, k, group)
        y = poisoned(m, n)
        run(abi.w4a16(LIB, x, wt["w4"], wt["scales"], None, y, group, "int4", ws))
        assert rel_err(y, x.float() @ wt["w"].T) < TOL_F16
        if wt["w4_v2"] is not None:  # N=48: the CTA's last 16-row warp tile is out of range
            y2 = poisoned(m, n)
            run(abi.w4a16(LIB, x, wt["w4_v2"], wt["scales"], None, y2, group, "int4", ws, layout=2))
            assert torch.equal(y2, y)
        if k % 64 == 0:
            for fmt6 in ("fp6_e3m2", "fp6_e2m3"):
                wt6 = weights("w6a16", fmt6, n, k)
                y = poisoned(m, n)
                run(abi.w6a16(LIB, x, wt6["lo4"], wt6["hi2"], wt6["scales"], y, fmt6, ws))
                assert rel_err(y, x.float() @ wt6["w"].T) < TOL_F16
                if wt6["v2"] is not None:  # N=48: the CTA's last 16-row warp tile is out of range
                    y2 = poisoned(m, n)
                    run(abi.w6a16(LIB, x, *wt6["v2"], wt6["scales"], y2, fmt6, ws, layout=2))
                    assert torch.equal(y2, y)
        if cc() >= 89:
            wt8 = weights("w4a8", "fp4_e2m1", n, k, group)
            s = (x.float().abs().max() / 448.0).reshape(1)
            y = poisoned(m, n)
            run(
                abi.w4a8(
                    LIB, x, wt8["w4"], wt8["exps"], wt8["cscale"], s, y, group, "fp4_e2m1", "per_tensor", ws
                )
            )
            assert rel_err(y, w4a8_reference(x, wt8, "per_tensor", s)) < TOL_W4A8


@pytest.mark.parametrize("fmt,layout", [("int4", 1), ("int4", 2), ("uint4", 2), ("fp4_e2m1", 1)])
def test_split_k_in_one_launch_with_a_dirty_workspace(fmt, layout):
    """Split-K finishes inside the launch: per-tile counters in the workspace, zeroed by the launch
    itself, so a workspace full of garbage (every byte 0xFF: counters -1, partial sums NaN) gives the
    right result, and so does a second launch on the same workspace; the last CTA of a tile adds
    the slices in a fixed order, so both launches agree bit for bit."""
    m, n, k, group = 2, 128, 4096, 64
    wt = weights("w4a16", fmt, n, k, group)
    w = wt["w4_v2"] if layout == 2 else wt["w4"]
    x = randn_x(m, k, fmt, layout, "dirty")
    size = LIB.qc_w4a16_workspace_size(m, n, k, group)
    assert size > 0, "this shape is meant to split K"
    ws = torch.full((size,), 0xFF, dtype=torch.uint8, device=DEV)
    outs = []
    for _ in range(2):
        y = poisoned(m, n)
        run(abi.w4a16(LIB, x, w, wt["scales"], wt["zeros"], y, group, fmt, ws, layout=layout))
        err = rel_err(y, x.float() @ wt["w"].T)
        assert err < TOL_F16, f"relative error {err:.3g}"
        outs.append(y)
    assert torch.equal(outs[0], outs[1])
    if cc() >= 89 and fmt != "uint4":
        wt8 = weights("w4a8", fmt, n, k, group)
        size8 = LIB.qc_w4a8_workspace_size(m, n, k, group, abi.ACT["per_token"])
        ws8 = torch.full((size8,), 0xFF, dtype=torch.uint8, device=DEV)
        y = poisoned(m, n)
        run(abi.w4a8(LIB, x, wt8["w4"], wt8["exps"], wt8["cscale"], None, y, group, fmt, "per_token", ws8))
        assert rel_err(y, w4a8_reference(x, wt8, "per_token", None)) < TOL_W4A8


@pytest.mark.parametrize("fmt", ["fp6_e3m2", "fp6_e2m3"])
def test_w6a16_split_k_in_one_launch_with_a_dirty_workspace(fmt):
    """W6A16 runs the pipelined loop too (64-k stages): split-K (8 slices here) finishes inside the
    launch with per-tile counters, so a workspace of 0xFF bytes gives the right result twice, bit
    for bit; layout 2 (fp6_v2) on the same dirty workspace equals layout 1 bit for bit."""
    m, n, k = 2, 128, 4096
    wt = weights("w6a16", fmt, n, k)
    x = randn_x(m, k, fmt, "w6 dirty")
    size = LIB.qc_w6a16_workspace_size(m, n, k)
    assert size > 0, "this shape is meant to split K"
    ws = torch.full((size,), 0xFF, dtype=torch.uint8, device=DEV)
    outs = []
    for _ in range(2):
        y = poisoned(m, n)
        run(abi.w6a16(LIB, x, wt["lo4"], wt["hi2"], wt["scales"], y, fmt, ws))
        err = rel_err(y, x.float() @ wt["w"].T)
        assert err < TOL_F16, f"relative error {err:.3g}"
        outs.append(y)
    assert torch.equal(outs[0], outs[1])
    ws.fill_(0xFF)
    y2 = poisoned(m, n)
    run(abi.w6a16(LIB, x, *wt["v2"], wt["scales"], y2, fmt, ws, layout=2))
    err = rel_err(y2, outs[0].float())
    assert torch.equal(y2, outs[0]), f"fp6_v2 differs from layout 1: relative error {err:.3g}"


def test_bad_shapes_and_alignment_rejected():
    x = randn_x(4, 128, "bad")
    wt = weights("w6a16", "fp6_e3m2", 16, 128)
    y = poisoned(4, 16)
    lib = LIB
    s = abi._stream()
    p = lambda t: ctypes.c_void_p(t.data_ptr())  # noqa: E731
    assert (
        lib.qc_w6a16_gemm(
            p(x), p(wt["lo4"]), p(wt["hi2"]), p(wt["scales"]), p(y), 4, 16, 96, 0, 1, None, 0, s
        )
        == abi.ERR_SHAPE
    )
    assert (
        lib.qc_w6a16_gemm(
            p(x), p(wt["lo4"]), p(wt["hi2"]), p(wt["scales"]), p(y), 4, 12, 128, 0, 1, None, 0, s
        )
        == abi.ERR_SHAPE
    )
    assert (
        lib.qc_w6a16_gemm(
            p(x), p(wt["lo4"]), p(wt["hi2"]), p(wt["scales"]), p(y), 4, 16, 128, 7, 1, None, 0, s
        )
        == abi.ERR_FORMAT
    )
    shifted = ctypes.c_void_p(x.data_ptr() + 2)
    assert (
        lib.qc_w6a16_gemm(
            shifted, p(wt["lo4"]), p(wt["hi2"]), p(wt["scales"]), p(y), 4, 16, 128, 0, 1, None, 0, s
        )
        == abi.ERR_ALIGNMENT
    )
    assert (
        lib.qc_w6a16_gemm(
            None, p(wt["lo4"]), p(wt["hi2"]), p(wt["scales"]), p(y), 4, 16, 128, 0, 1, None, 0, s
        )
        == abi.ERR_NULL
    )
    # fp6_v2 takes whole 16 x 64 tiles (both FP6 formats); layout 3 does not exist
    for n_, k_, fmt_, layout, status in (
        (8, 128, 0, 2, abi.ERR_SHAPE),
        (16, 96, 1, 2, abi.ERR_SHAPE),
        (16, 128, 2, 2, abi.ERR_FORMAT),
        (16, 128, 0, 3, abi.ERR_ARG),
    ):
        got = lib.qc_w6a16_gemm(
            p(x), p(wt["lo4"]), p(wt["hi2"]), p(wt["scales"]), p(y), 4, n_, k_, fmt_, layout, None, 0, s
        )
        assert got == status, (n_, k_, fmt_, layout, got)
    w4 = weights("w4a16", "int4", 16, 128, 32)
    assert (
        lib.qc_w4a16_gemm(p(x), p(w4["w4"]), p(w4["scales"]), None, p(y), 4, 16, 128, 48, 2, 1, None, 0, s)
        == abi.ERR_ARG
    )
    assert (
        lib.qc_w4a16_gemm(
            p(x), p(w4["w4"]), p(w4["scales"]), p(w4["scales"]), p(y), 4, 16, 128, 32, 2, 1, None, 0, s
        )
        == abi.ERR_FORMAT
    )
    # int4_v2 takes whole 16 x 64 tiles and INT4 / UINT4 only; int4_sm90 (layout 3) groups of 64 and
    # 128 only, and runs on the sm_90a path only: without a workspace that path declines it, on every
    # GPU; layout 4 does not exist
    for n_, k_, g_, fmt_, layout, status in (
        (8, 128, 32, 2, 2, abi.ERR_SHAPE),
        (16, 96, 32, 2, 2, abi.ERR_SHAPE),
        (16, 128, 32, 4, 2, abi.ERR_FORMAT),
        (16, 128, 32, 2, 3, abi.ERR_ARG),
        (8, 128, 64, 2, 3, abi.ERR_SHAPE),
        (16, 128, 64, 4, 3, abi.ERR_FORMAT),
        (16, 128, 64, 2, 3, abi.ERR_UNSUPPORTED_ARCH),
        (16, 128, 32, 2, 4, abi.ERR_ARG),
    ):
        got = lib.qc_w4a16_gemm(
            p(x), p(w4["w4"]), p(w4["scales"]), None, p(y), 4, n_, k_, g_, fmt_, layout, None, 0, s
        )
        assert got == status, (n_, k_, g_, fmt_, layout, got)
    assert torch.isnan(y).all(), "a rejected call wrote to the output"
    w8 = weights("w4a8", "int4", 16, 128, 32)
    status = lib.qc_w4a8_gemm(
        p(x), p(w8["w4"]), p(w8["exps"]), p(w8["cscale"]), None, p(y), 4, 16, 128, 32, 2, 1, None, 0, s
    )
    assert status == (abi.ERR_WORKSPACE if cc() >= 89 else abi.ERR_UNSUPPORTED_ARCH)
    assert (
        lib.qc_w4a8_gemm(
            p(x), p(w8["w4"]), p(w8["exps"]), p(w8["cscale"]), None, p(y), 4, 16, 100, 32, 2, 0, None, 0, s
        )
        == abi.ERR_SHAPE
    )

"""The sm_90a CUTLASS path (plugins/sm90: qc_sm90_w4a16_gemm, qc_sm90_w4a8_gemm) against the same
float32 references as test_kernels.py, called directly (before qc_w4a16_gemm / qc_w4a8_gemm dispatch
to it). Runs on compute capability 9.0 only; there, a library built without the sm_90a path is a
failure, not a skip (tests/run_all.sh and bench/gpu_check.sh build it when nvidia-cutlass is installed).

Tolerances (max|y - ref| / max|ref|):
- INT4, UINT4 without zeros: TOL_F16 (2e-3), as test_kernels.py: the weights are fp16(q * s), one
  rounding, the same values as the mma.sync kernels; only the fp32 summation order differs.
- UINT4 with zeros: TOL_SM90_ZERO = 3e-3. CUTLASS's zero-point mode computes fp16(fp16(u * s) + z')
  with z' = fp16(-zero * s), three fp16 roundings of terms up to 15 s instead of one of (u - zero) * s:
  per weight an error of ~2^-11 * 9 s (rms) against ~2^-11 * |w|. With rms |u - zero| ~ 6 that is
  ~7e-4 of std(y) per output; the largest over 2M outputs (~5 sigma) over max|ref| (~5 std(y)) stays
  near 1e-3, plus the fp16 output rounding (2.4e-4): 3e-3 leaves about a 2x margin.
- W4A8 (FP4): TOL_W4A8 (5e-3), as test_kernels.py: the same FP8 weights (qc_w4a8_lut's bytes) and
  activations; FP8 wgmma accumulation on Hopper keeps fewer than fp32's mantissa bits.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import kernel_abi as abi  # noqa: E402  (tests/gpu is on sys.path, as for test_kernels.py)
from test_kernels import (  # noqa: E402  (the references and weights of the mma.sync kernels' tests)
    BIG_NK,
    LIB,
    LIB_ERROR,
    SMALL_NK,
    TOL_F16,
    cc,
    check_w4a8,
    gpu,
    poisoned,
    randn_x,
    rel_err,
    run,
    weights,
)

from qcompile import packing, packing_sm90  # noqa: E402

TOL_SM90_ZERO = 3e-3
MS = [1, 16, 17, 64, 512]  # 17: the first M of the 128-token tile kernel
CASES = [(m, n, k) for n, k in SMALL_NK + BIG_NK[:1] for m in MS]
ODD = [(3, 24, 128, 64), (17, 72, 192, 64), (33, 136, 256, 128), (5, 8, 128, 128)]

pytestmark = pytest.mark.skipif(cc() != 90, reason="the sm_90a path runs on compute capability 9.0 only")


@pytest.fixture(autouse=True)
def _sm90_built():
    if LIB is None:
        pytest.fail(LIB_ERROR)
    if not abi.sm90_available(LIB):
        pytest.fail("libqc_kernels.so has no sm_90a path: build with 90a in QC_CUDA_ARCHS and nvidia-cutlass")


@pytest.mark.parametrize(
    "fmt,group,m,n,k",
    [(f, g, *c) for f, g in (("int4", 128), ("int4", 64), ("uint4", 64), ("uint4", 128)) for c in CASES]
    + [("int4", g, m, n, k) for m, n, k, g in ODD]
    + [("uint4", g, m, n, k) for m, n, k, g in ODD],
)
def test_sm90_w4a16(fmt, group, m, n, k):
    wt = weights("w4a16", fmt, n, k, group)
    x = randn_x(m, k, fmt, group, n)
    y = poisoned(m, n)
    run(abi.sm90_w4a16(LIB, x, wt["w4"], wt["scales"], wt["zeros"], y, group, fmt))
    err = rel_err(y, x.float() @ wt["w"].T)
    tol = TOL_SM90_ZERO if wt["zeros"] is not None else TOL_F16
    assert err < tol, f"relative error {err:.3g} (tolerance {tol})"


@pytest.mark.parametrize(
    "fmt,act,m,n,k", [("fp4_e2m1", a, *c) for a in ("per_tensor", "per_token") for c in CASES]
)
def test_sm90_w4a8(fmt, act, m, n, k):
    check_w4a8(abi.sm90_w4a8, fmt, act, m, n, k)


def int4_sm90_bytes(wt):
    """The layout 3 (int4_sm90) bytes of a weight set's codes (packed as layout 1 by weights())."""
    if "w4_sm90" not in wt:
        codes = packing.unpack_nibbles(wt["w4"].cpu().numpy())
        wt["w4_sm90"] = gpu(packing_sm90.pack_int4_sm90(codes))
    return wt["w4_sm90"]


@pytest.mark.parametrize(
    "fmt,group,m,n,k",
    [(f, g, *c) for f, g in (("int4", 128), ("uint4", 64)) for c in CASES]
    + [("int4", 64, 17, 48, 192), ("uint4", 128, 3, 16, 256)],
)
def test_sm90_w4a16_int4_sm90_layout(fmt, group, m, n, k):
    """Layout 3 (int4_sm90): the same FP16 weights in the same wgmma slots as layout 1, so INT4 gives
    the same bits; UINT4's zero mode may contract differently around the other converter (tolerance)."""
    wt = weights("w4a16", fmt, n, k, group)
    x = randn_x(m, k, fmt, group, n, "v3")
    y1, y3 = poisoned(m, n), poisoned(m, n)
    run(abi.sm90_w4a16(LIB, x, wt["w4"], wt["scales"], wt["zeros"], y1, group, fmt))
    run(abi.sm90_w4a16(LIB, x, int4_sm90_bytes(wt), wt["scales"], wt["zeros"], y3, group, fmt, layout=3))
    tol = TOL_SM90_ZERO if wt["zeros"] is not None else TOL_F16
    err = rel_err(y3, x.float() @ wt["w"].T)
    assert err < tol, f"relative error {err:.3g} (tolerance {tol})"
    if wt["zeros"] is None:
        assert torch.equal(y3, y1), f"layout 3 differs from layout 1: {rel_err(y3, y1.float()):.3g}"


@pytest.mark.parametrize("fmt,group,m,n,k", [("int4", 64, 17, 48, 192), ("int4", 128, 1, 256, 512)])
def test_w4a16_gemm_runs_int4_sm90_with_the_cores_workspace(fmt, group, m, n, k):
    """qc_w4a16_gemm on layout 3 (what `--target-arch sm90` emits) with the workspace the plugin cores
    reserve (the larger of the two paths'; the autouse fixture set the sm90 signatures): the sm_90a
    path, the same bits as layout 1 there."""
    wt = weights("w4a16", fmt, n, k, group)
    x = randn_x(m, k, fmt, group, n, "gemm-v3")
    size = max(
        LIB.qc_w4a16_workspace_size(m, n, k, group),
        LIB.qc_sm90_w4a16_workspace_size(m, n, k, group, abi.FMT[fmt], 0),
    )
    ws = torch.empty(max(size, 16), dtype=torch.uint8, device="cuda")
    y1, y3 = poisoned(m, n), poisoned(m, n)
    run(abi.sm90_w4a16(LIB, x, wt["w4"], wt["scales"], None, y1, group, fmt))
    run(abi.w4a16(LIB, x, int4_sm90_bytes(wt), wt["scales"], None, y3, group, fmt, ws, layout=3))
    assert torch.equal(y3, y1), f"layout 3 differs from layout 1: {rel_err(y3, y1.float()):.3g}"


def test_sm90_without_stream_k_workspace():
    """A workspace that holds the transposed scales but not CUTLASS's stream-K partials runs one
    CTA per output tile: the same result within the tolerance."""
    m, n, k, group = 1, 4096, 4096, 128
    wt = weights("w4a16", "int4", n, k, group)
    x = randn_x(m, k, "no-stream-k")
    scale_bytes = n * (k // group) * 2  # fp16 [K/g, N], a multiple of 256 here
    ws = torch.empty(scale_bytes, dtype=torch.uint8, device="cuda")
    y = poisoned(m, n)
    run(abi.sm90_w4a16(LIB, x, wt["w4"], wt["scales"], None, y, group, "int4", ws))
    assert rel_err(y, x.float() @ wt["w"].T) < TOL_F16


def test_sm90_declines_what_it_does_not_take():
    """FP4 in W4A16, layout 2, group 32, INT4 in W4A8, group 64 in W4A8, a too small workspace, an
    output not 16-byte aligned: SM90_FALLBACK, and the output is not written."""
    m, n, k = 4, 64, 256
    x = randn_x(m, k, "fallback")
    tiny = torch.empty(16, dtype=torch.uint8, device="cuda")
    y = poisoned(m, n)
    fp4 = weights("w4a16", "fp4_e2m1", n, k, 128)
    assert abi.sm90_w4a16(LIB, x, fp4["w4"], fp4["scales"], None, y, 128, "fp4_e2m1") == abi.SM90_FALLBACK
    i4 = weights("w4a16", "int4", n, k, 128)
    assert (
        abi.sm90_w4a16(LIB, x, i4["w4_v2"], i4["scales"], None, y, 128, "int4", layout=2) == abi.SM90_FALLBACK
    )
    assert abi.sm90_w4a16(LIB, x, i4["w4"], i4["scales"], None, y, 128, "int4", tiny) == abi.SM90_FALLBACK
    i4_32 = weights("w4a16", "int4", n, k, 32)
    assert abi.sm90_w4a16(LIB, x, i4_32["w4"], i4_32["scales"], None, y, 32, "int4") == abi.SM90_FALLBACK
    s = (x.float().abs().max() / 448.0).reshape(1)
    w8 = weights("w4a8", "int4", n, k)
    status = abi.sm90_w4a8(LIB, x, w8["w4"], w8["exps"], w8["cscale"], s, y, 128, "int4", "per_tensor")
    assert status == abi.SM90_FALLBACK
    f8 = weights("w4a8", "fp4_e2m1", n, k, 64)
    status = abi.sm90_w4a8(LIB, x, f8["w4"], f8["exps"], f8["cscale"], s, y, 64, "fp4_e2m1", "per_tensor")
    assert status == abi.SM90_FALLBACK
    # an output only 2-byte aligned (enough for qc_w4a16_gemm, not for a TMA store)
    shifted = torch.full((m * n + 8,), float("nan"), dtype=torch.float16, device="cuda")[1 : 1 + m * n].view(
        m, n
    )
    assert abi.sm90_w4a16(LIB, x, i4["w4"], i4["scales"], None, shifted, 128, "int4") == abi.SM90_FALLBACK
    torch.cuda.synchronize()
    assert torch.isnan(y).all() and torch.isnan(shifted).all(), "a declined call wrote to the output"


@pytest.mark.parametrize("n,k", [(4096, 4096), (11008, 4096)])
def test_sm90_workspace_never_decreases(n, k):
    """One reservation for a profile's largest M fits every smaller M (as qc_w4a16_workspace_size)."""
    abi.sm90_available(LIB)  # sets the signatures
    fmt = abi.FMT
    for size in (
        lambda m: LIB.qc_sm90_w4a16_workspace_size(m, n, k, 128, fmt["int4"], 0),
        lambda m: LIB.qc_sm90_w4a16_workspace_size(m, n, k, 64, fmt["uint4"], 1),
        lambda m: LIB.qc_sm90_w4a8_workspace_size(m, n, k, 128, fmt["fp4_e2m1"], abi.ACT["per_token"]),
    ):
        sizes = [size(m) for m in range(1, 600)]
        assert all(s > 0 for s in sizes)
        assert all(a <= b for a, b in zip(sizes, sizes[1:])), "workspace size decreases with M"

// W6A16: FP6 (E3M2 / E2M3, fp6_4+2 layout, or fp6_v2) x FP16 on FP16 tensor cores, per-channel scale
// in the fp32 epilogue.
#include "decode.h"
#include "fp6_v2.h"
#include "gemm_f16.cuh"
#include "w6a16.h"

namespace {

// 16 weights of row `row` from k: 8 lo4 bytes + 4 hi2 bytes -> FP16 bits by decode.h, then one
// exact multiply by 2^12 (2^14) for the exponent bias. The channel scale waits for the epilogue,
// so no FP16 rounding or overflow happens here.
struct W6Loader {
  const uint8_t* lo4;
  const uint8_t* hi2;
  int K;
  int e2m3;

  __device__ __forceinline__ void load(int row, int k, bool valid, uint32_t h[8]) const {
    if (!valid) {
#pragma unroll
      for (int j = 0; j < 8; ++j) h[j] = 0u;
      return;
    }
    const uint2 lo = *reinterpret_cast<const uint2*>(lo4 + (size_t)row * (K / 2) + k / 2);
    const uint32_t hi = *reinterpret_cast<const uint32_t*>(hi2 + (size_t)row * (K / 4) + k / 4);
    qc_fp6_decode16(lo.x, lo.y, hi, e2m3, h);
    const __half2 bias = __float2half2_rn(qc_fp6_bias_factor(e2m3));
#pragma unroll
    for (int j = 0; j < 8; ++j) h[j] = qc_as_u32(__hmul2(qc_as_h2(h[j]), bias));
  }
};

// fp6_v2: one 16-byte lo4 load and one 8-byte hi2 load hold the 4 A fragments of rows r0 = 16 nt + g
// and r1 = r0 + 8 over the thread's 16 k; fp6_v2.h makes each fragment register's FP16 bits
// decode(c) * 2^-12 (2^-14) with a lop3 select, a rotation and a mask, and they go to the MMA as they
// are: the power of two is applied in the fp32 epilogue with the channel scale (Marlin folds its FP8
// exponent bias into the scales the same way). Exact if the tensor cores take FP16 subnormal
// operands exactly: every nonzero product x * w 2^-12 is at least 2^-40, far from the fp32
// subnormals, so the accumulation is layout 1's scaled by 2^-12 and the epilogue's
// acc * (scale * 2^12) is the same fp32 product as layout 1's (tests/gpu compares the two outputs
// bit for bit). The format is a template argument, so each kernel carries one decode.
template <bool E2M3>
struct W6V2Loader {
  const uint8_t* lo4;
  const uint8_t* hi2;
  int K;
};

// Out-of-range rows or k load nothing and decode zero words (all-zero segments are the weight +0), so
// the loads are predicated rather than branched around. The lane's tile base (row tile, lane) is
// loop-invariant; only the k block moves: gemm_f16.cuh gives thread t = lane % 4 the k run
// kb + 16 t .. kb + 16 t + 15 of each 64-k block kb.
template <bool E2M3>
__device__ __forceinline__ void qc_load_a(const W6V2Loader<E2M3>& ld, int r0, int, int k, bool kv, int N,
                                          uint32_t (&a)[4][4]) {
  const int lane = threadIdx.x & 31;
  const size_t kb = (size_t)(k - 16 * (lane & 3));
  uint4 l = make_uint4(0u, 0u, 0u, 0u);
  uint2 h = make_uint2(0u, 0u);
  if (kv && r0 < N) {  // N is a multiple of 16: r1 = r0 + 8 is in range with r0
    l = *reinterpret_cast<const uint4*>(ld.lo4 + qc_fp6v2_lo4_offset(r0 >> 4, 0, ld.K, lane) +
                                        kb * (QC_FP6V2_LO4_TILE_BYTES / 64));
    h = *reinterpret_cast<const uint2*>(ld.hi2 + qc_fp6v2_hi2_offset(r0 >> 4, 0, ld.K, lane) +
                                        kb * (QC_FP6V2_HI2_TILE_BYTES / 64));
  }
  const uint32_t L[4] = {l.x, l.y, l.z, l.w}, H[2] = {h.x, h.y};
  qc_fp6v2_decode(L, H, E2M3, a);
}

// The epilogue factor of layout 2 (QcEpilogue::act_scale): qc_fp6_bias_factor of E3M2 and E2M3.
__device__ const float qc_fp6v2_bias[2] = {4096.0f, 16384.0f};

}  // namespace

extern "C" int qc_w6a16_gemm(const void* x, const void* w_lo4, const void* w_hi2, const void* scales,
                             void* y, int M, int N, int K, int format, int layout, void* workspace,
                             size_t workspace_bytes, struct CUstream_st* stream) {
  int st = qc_w6a16_check_shape(M, N, K, format, layout);
  if (st != QC_OK || M == 0) return st;
  if (!x || !w_lo4 || !w_hi2 || !scales || !y) return QC_ERR_NULL;
  if (!qc_is_aligned16(x) || !qc_is_aligned16(w_lo4) || !qc_is_aligned16(w_hi2) || ((size_t)scales & 1) ||
      ((size_t)y & 1))
    return QC_ERR_ALIGNMENT;
  if (workspace && !qc_is_aligned16(workspace)) return QC_ERR_ALIGNMENT;
  qc_plan p = qc_fit_workspace(qc_plan_gemm(M, N, K, 64), M, N, K, 0, workspace, workspace_bytes);
  const auto* lo = static_cast<const uint8_t*>(w_lo4);
  const auto* hi = static_cast<const uint8_t*>(w_hi2);
  const auto* xh = static_cast<const __half*>(x);
  auto* yh = static_cast<__half*>(y);
  auto* ws = static_cast<float*>(workspace);
  QcEpilogue epi{static_cast<const __half*>(scales), nullptr, nullptr, nullptr};
  const bool e2m3 = format == QC_FMT_FP6_E2M3;
  if (layout == 2) {
    void* bias = nullptr;
    if (cudaGetSymbolAddress(&bias, qc_fp6v2_bias) != cudaSuccess) return QC_ERR_CUDA;
    epi.act_scale = static_cast<const float*>(bias) + (e2m3 ? 1 : 0);
    if (e2m3) return qc_launch_f16_gemm(p, xh, yh, ws, M, N, K, W6V2Loader<true>{lo, hi, K}, epi, stream);
    return qc_launch_f16_gemm(p, xh, yh, ws, M, N, K, W6V2Loader<false>{lo, hi, K}, epi, stream);
  }
  W6Loader ld{lo, hi, K, e2m3};
  return qc_launch_f16_gemm(p, xh, yh, ws, M, N, K, ld, epi, stream);
}

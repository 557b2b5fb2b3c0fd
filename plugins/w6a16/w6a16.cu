// W6A16: FP6 (E3M2 / E2M3, fp6_4+2 layout) x FP16 on FP16 tensor cores, per-channel scale in the
// fp32 epilogue.
#include "decode.h"
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

}  // namespace

extern "C" int qc_w6a16_gemm(const void* x, const void* w_lo4, const void* w_hi2, const void* scales,
                             void* y, int M, int N, int K, int format, int layout, void* workspace,
                             size_t workspace_bytes, struct CUstream_st* stream) {
  int st = qc_w6a16_check_shape(M, N, K, format, layout);
  if (st != QC_OK || M == 0) return st;
  if (layout != 1) return QC_ERR_ARG;  // the fp6_v2 loader is not written yet
  if (!x || !w_lo4 || !w_hi2 || !scales || !y) return QC_ERR_NULL;
  if (!qc_is_aligned16(x) || !qc_is_aligned16(w_lo4) || !qc_is_aligned16(w_hi2) || ((size_t)scales & 1) ||
      ((size_t)y & 1))
    return QC_ERR_ALIGNMENT;
  if (workspace && !qc_is_aligned16(workspace)) return QC_ERR_ALIGNMENT;
  qc_plan p = qc_fit_workspace(qc_plan_gemm(M, N, K, 64), M, N, K, 0, workspace, workspace_bytes);
  W6Loader ld{static_cast<const uint8_t*>(w_lo4), static_cast<const uint8_t*>(w_hi2), K,
              format == QC_FMT_FP6_E2M3};
  QcEpilogue epi{static_cast<const __half*>(scales), nullptr, nullptr, nullptr};
  return qc_launch_f16_gemm(p, static_cast<const __half*>(x), static_cast<__half*>(y),
                            static_cast<float*>(workspace), M, N, K, ld, epi, stream);
}

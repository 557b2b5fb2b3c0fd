// W4A16: INT4 / UINT4 (+ zeros) / FP4 E2M1 (nibble layout) x FP16 on FP16 tensor cores, one fp16
// scale per group of K applied at dequantization.
#include "decode.h"
#include "gemm_f16.cuh"
#include "w4a16.h"

namespace {

// 16 weights of row `row` from k (all in one group): 8 bytes -> FP16 bits by decode.h; exact
// fix-up (subtract 1032 / 1024 + zero, or multiply by 2^14), then the group scale (one FP16
// rounding, as in every W4A16 kernel).
struct W4Loader {
  const uint8_t* w;
  const __half* scales;
  const uint8_t* zeros;
  int K;
  int group_shift;  // log2 of the group size
  int fmt;

  __device__ __forceinline__ void load(int row, int k, bool valid, uint32_t h[8]) const {
    if (!valid) {
#pragma unroll
      for (int j = 0; j < 8; ++j) h[j] = 0u;
      return;
    }
    const uint2 p = *reinterpret_cast<const uint2*>(w + (size_t)row * (K / 2) + k / 2);
    const size_t gi = (size_t)row * (K >> group_shift) + (k >> group_shift);
    const __half2 scale = __half2half2(scales[gi]);
    qc_w4_decode16_half(p.x, p.y, fmt, h);
    if (fmt == QC_FMT_FP4_E2M1) {
      const __half2 factor = __float2half2_rn(qc_w4_half_factor(fmt));
#pragma unroll
      for (int j = 0; j < 8; ++j) h[j] = qc_as_u32(__hmul2(__hmul2(qc_as_h2(h[j]), factor), scale));
    } else {
      const __half2 offset = __float2half2_rn(qc_w4_half_offset(fmt, zeros ? zeros[gi] : 0));
#pragma unroll
      for (int j = 0; j < 8; ++j) h[j] = qc_as_u32(__hmul2(__hsub2(qc_as_h2(h[j]), offset), scale));
    }
  }
};

}  // namespace

extern "C" int qc_w4a16_gemm(const void* x, const void* w, const void* scales, const void* zeros, void* y,
                             int M, int N, int K, int group_size, int format, void* workspace,
                             size_t workspace_bytes, struct CUstream_st* stream) {
  int st = qc_w4a16_check_shape(M, N, K, group_size, format, zeros != nullptr);
  if (st != QC_OK || M == 0) return st;
  if (!x || !w || !scales || !y) return QC_ERR_NULL;
  if (!qc_is_aligned16(x) || !qc_is_aligned16(w) || ((size_t)scales & 1) || ((size_t)y & 1))
    return QC_ERR_ALIGNMENT;
  if (workspace && !qc_is_aligned16(workspace)) return QC_ERR_ALIGNMENT;
  qc_plan p = qc_fit_workspace(qc_plan_gemm(M, N, K, 64), M, N, K, 0, workspace, workspace_bytes);
  W4Loader ld{static_cast<const uint8_t*>(w), static_cast<const __half*>(scales),
              static_cast<const uint8_t*>(zeros), K, qc_group_shift(group_size), format};
  QcEpilogue epi{nullptr, nullptr, nullptr, nullptr};
  return qc_launch_f16_gemm(p, static_cast<const __half*>(x), static_cast<__half*>(y),
                            static_cast<float*>(workspace), M, N, K, ld, epi, stream);
}

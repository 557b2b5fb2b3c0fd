// W4A16: INT4 / UINT4 (+ zeros) / FP4 E2M1 (nibble layout, or int4_v2 for INT4 / UINT4) x FP16 on
// FP16 tensor cores, one fp16 scale per group of K applied at dequantization.
#include "decode.h"
#include "decode_v2.h"
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

// int4_v2: one 16-byte load holds the 4 A fragments of rows r0 = 16 nt + g and r1 = r0 + 8 over the
// thread's 16 k; per word one lop3 per FP16 pair, one exact HSUB2 (r0) or HFMA2 (r1) to the
// integer q, one HMUL2 by the group scale (the one rounding of layout 1).
struct W4V2Loader {
  const uint8_t* w;
  const __half* scales;
  const uint8_t* zeros;
  int K;
  int group_shift;
  int fmt;
};

__device__ __forceinline__ void qc_load_a(const W4V2Loader& ld, int r0, int, int k, bool kv, int N,
                                          uint32_t (&a)[4][4]) {
  if (!kv || r0 >= N) {  // N is a multiple of 16: r1 = r0 + 8 is in range with r0
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i][0] = a[i][1] = a[i][2] = a[i][3] = 0u;
    return;
  }
  const uint4 p = *reinterpret_cast<const uint4*>(ld.w + qc_w4v2_offset(r0 >> 4, k >> 6, ld.K, threadIdx.x & 31));
  const size_t g0 = (size_t)r0 * (ld.K >> ld.group_shift) + (k >> ld.group_shift);
  const size_t g1 = g0 + 8 * (size_t)(ld.K >> ld.group_shift);
  const __half2 s0 = __half2half2(ld.scales[g0]), s1 = __half2half2(ld.scales[g1]);
  const __half2 low = __float2half2_rn(qc_w4v2_low_offset(ld.fmt, ld.zeros ? ld.zeros[g0] : 0));
  const __half2 high = __float2half2_rn(qc_w4v2_high_addend(ld.fmt, ld.zeros ? ld.zeros[g1] : 0));
  const __half2 sixteenth = __float2half2_rn(QC_W4V2_HIGH_FACTOR);
  const uint32_t words[4] = {p.x, p.y, p.z, p.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    uint32_t m[4];
    qc_w4v2_magic(words[i], ld.fmt, m);
    a[i][0] = qc_as_u32(__hmul2(__hsub2(qc_as_h2(m[0]), low), s0));
    a[i][1] = qc_as_u32(__hmul2(__hfma2(qc_as_h2(m[1]), sixteenth, high), s1));
    a[i][2] = qc_as_u32(__hmul2(__hsub2(qc_as_h2(m[2]), low), s0));
    a[i][3] = qc_as_u32(__hmul2(__hfma2(qc_as_h2(m[3]), sixteenth, high), s1));
  }
}

}  // namespace

extern "C" int qc_w4a16_gemm(const void* x, const void* w, const void* scales, const void* zeros, void* y,
                             int M, int N, int K, int group_size, int format, int layout, void* workspace,
                             size_t workspace_bytes, struct CUstream_st* stream) {
  int st = qc_w4a16_check_shape(M, N, K, group_size, format, zeros != nullptr, layout);
  if (st != QC_OK || M == 0) return st;
  if (!x || !w || !scales || !y) return QC_ERR_NULL;
  if (!qc_is_aligned16(x) || !qc_is_aligned16(w) || ((size_t)scales & 1) || ((size_t)y & 1))
    return QC_ERR_ALIGNMENT;
  if (workspace && !qc_is_aligned16(workspace)) return QC_ERR_ALIGNMENT;
  qc_plan p = qc_fit_workspace(qc_plan_gemm(M, N, K, 64), M, N, K, 0, workspace, workspace_bytes);
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* sh = static_cast<const __half*>(scales);
  const auto* zb = static_cast<const uint8_t*>(zeros);
  const int gs = qc_group_shift(group_size);
  QcEpilogue epi{nullptr, nullptr, nullptr, nullptr};
  const auto* xh = static_cast<const __half*>(x);
  auto* yh = static_cast<__half*>(y);
  auto* ws = static_cast<float*>(workspace);
  if (layout == 2)
    return qc_launch_f16_gemm(p, xh, yh, ws, M, N, K, W4V2Loader{wb, sh, zb, K, gs, format}, epi, stream);
  return qc_launch_f16_gemm(p, xh, yh, ws, M, N, K, W4Loader{wb, sh, zb, K, gs, format}, epi, stream);
}

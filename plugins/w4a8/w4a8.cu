// W4A8 (ZeroQuant-FP): 4-bit weights turned into FP8 E4M3 by integer arithmetic on the exponent
// (decode.h), activations rounded to E4M3 in the kernel, mma.sync m16n8k32 e4m3 (sm_89+), scales
// in the fp32 epilogue, on the pipelined loop of common/pipeline.cuh (cp.async ring, split-K in the
// launch). Compiled only for sm_89 / sm_90a; other devices get QC_ERR_UNSUPPORTED_ARCH.
#include <cuda_fp8.h>

#include "decode.h"
#include "pipeline.cuh"
#include "qc_sm90_gemm.h"
#include "row_scale.cuh"
#include "w4a8.h"
#include "w4a8_luts.h"

namespace {

// qc_w4a8_lut for every (format, exponent), w4a8_luts.h: one 16-byte load per row and group.
__device__ const uint4 qc_w4a8_lut_table[32] = {QC_W4A8_LUT_TABLE};

__device__ __forceinline__ void qc_mma_e4m3(float c[4], const uint32_t a[4], const uint32_t b[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  __trap();
#endif
}

__device__ __forceinline__ uint32_t qc_fp8x4(__half2 lo, __half2 hi, float inv) {
  const float2 l = __half22float2(lo), h = __half22float2(hi);
  const uint32_t b01 = __nv_cvt_float2_to_fp8x2(make_float2(l.x * inv, l.y * inv), __NV_SATFINITE, __NV_E4M3);
  const uint32_t b23 = __nv_cvt_float2_to_fp8x2(make_float2(h.x * inv, h.y * inv), __NV_SATFINITE, __NV_E4M3);
  return (b01 & 0xFFFFu) | (b23 << 16);
}

// Weight-tile operator of the pipelined loop (common/pipeline.cuh). Stage: 128 k = 4 x m16n8k32,
// thread t owning k in [kb + 32t, kb + 32t + 32) of rows r0, r1 and of its tokens; MMA slot (logical
// k 4t+j / 4t+16+j of MMA i) <- actual k 32t+8i+j / 32t+8i+4+j, for A and B alike (as before the
// pipeline). Weights: QcNibbleRows (one 16-byte read per row and stage); per (row, group) the
// 16-entry code -> E4M3 table of decode.h (precomputed for every exponent, w4a8_luts.h), loaded
// one block ahead; eight nibbles become eight bytes
// with four prmt lookups and a sign-select. Activations: converted to E4M3 once per CTA (not once
// per warp), in place and laid out as ldmatrix matrices (pipeline_layout.h), then every warp loads
// its B fragments with two ldmatrix.x4 per token fragment.
struct W4A8Op {
  static constexpr int kBlock = 128, kSub = 1, kWBytes = QcNibbleRows::kBytes;
  static constexpr bool kConvertX = true;
  template <int MF>
  static constexpr int kStages = MF == 1 ? 8 : (MF == 2 ? 6 : 4);  // S x (4 + 2 MF) KB = 48 KB

  const uint8_t* w;
  const int8_t* gexp;
  int N, K, group_shift, fmt;
  QcEpilogue epi;
  QcNibbleRows rows;
  const int8_t* erow0;  // group exponents of rows r0, r1 (clamped to N - 1)
  const int8_t* erow1;
  float inv;  // 1 / activation scale of the token row of the thread's conversion task

  struct Params {
    uint4 lut0, lut1;
  };


  template <int MF>
  __device__ __forceinline__ void begin(int m_base, int M) {
    rows.begin(w, N, K);
    const int r0 = blockIdx.x * QC_TILE_N + (threadIdx.x >> 5) * 16 + ((threadIdx.x & 31) >> 2);
    const int groups = K >> group_shift;
    erow0 = gexp + (size_t)min(r0, N - 1) * groups;
    erow1 = gexp + (size_t)min(r0 + 8, N - 1) * groups;
    const int m = min(m_base + qc_w4a8_task_row(threadIdx.x % (32 * MF), MF), M - 1);
    inv = 1.0f / (epi.row_scale ? epi.row_scale[m] : *epi.act_scale);
  }

  __device__ __forceinline__ void params(Params& p, int kb) const {
    const int gi = min((kb + 32 * (int)(threadIdx.x & 3)) >> group_shift, (K >> group_shift) - 1);
    p.lut0 = __ldg(&qc_w4a8_lut_table[qc_w4a8_lut_index(fmt, __ldg(erow0 + gi))]);
    p.lut1 = __ldg(&qc_w4a8_lut_table[qc_w4a8_lut_index(fmt, __ldg(erow1 + gi))]);
  }

  __device__ __forceinline__ void copy_w(uint8_t* sw, int kb, int k_end) const { rows.copy(sw, kb, k_end, K); }

  __device__ __forceinline__ void a_frags(const uint8_t* sw, int, const Params& p, uint32_t (&a)[4][4]) const {
    const int rl = (threadIdx.x >> 5) * 16 + ((threadIdx.x & 31) >> 2), t = threadIdx.x & 3;
    const uint4 p0 = *reinterpret_cast<const uint4*>(sw + qc_w_read_offset_w4a8(rl, t));
    const uint4 p1 = *reinterpret_cast<const uint4*>(sw + qc_w_read_offset_w4a8(rl + 8, t));
    const uint32_t lut0[4] = {p.lut0.x, p.lut0.y, p.lut0.z, p.lut0.w};
    const uint32_t lut1[4] = {p.lut1.x, p.lut1.y, p.lut1.z, p.lut1.w};
    uint32_t a0[8], a1[8];
    qc_w4a8_convert8(p0.x, lut0, &a0[0], &a0[1]);
    qc_w4a8_convert8(p0.y, lut0, &a0[2], &a0[3]);
    qc_w4a8_convert8(p0.z, lut0, &a0[4], &a0[5]);
    qc_w4a8_convert8(p0.w, lut0, &a0[6], &a0[7]);
    qc_w4a8_convert8(p1.x, lut1, &a1[0], &a1[1]);
    qc_w4a8_convert8(p1.y, lut1, &a1[2], &a1[3]);
    qc_w4a8_convert8(p1.z, lut1, &a1[4], &a1[5]);
    qc_w4a8_convert8(p1.w, lut1, &a1[6], &a1[7]);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      a[i][0] = a0[2 * i];
      a[i][1] = a1[2 * i];
      a[i][2] = a0[2 * i + 1];
      a[i][3] = a1[2 * i + 1];
    }
  }

  // conversion task (r, i) of this thread (pipeline_layout.h): chunks 4t + i of token row r, 32
  // halves -> 32 E4M3 bytes, fp8(x * (1 / s)) as before; written as matrix rows (i, 0) and (i, 1)
  // (word t = k 32t + 8i + 4h .. + 3) into its chunks i and 4 + i, ready for ldmatrix
  template <int MF>
  __device__ __forceinline__ void convert_x(uint8_t* sx, const int (&)[MF]) const {
    if (MF < 4 && threadIdx.x >= 32 * MF) return;  // 32 MF tasks
    const int r = qc_w4a8_task_row(threadIdx.x, MF), i = qc_w4a8_task_i(threadIdx.x, MF);
    uint32_t m0[4], m1[4];
#pragma unroll
    for (int t = 0; t < 4; ++t) {
      const uint4 u = *reinterpret_cast<const uint4*>(sx + qc_x_offset(r, qc_x_slot(r, qc_w4a8_task_chunk(i, t))));
      m0[t] = qc_fp8x4(qc_as_h2(u.x), qc_as_h2(u.y), inv);
      m1[t] = qc_fp8x4(qc_as_h2(u.z), qc_as_h2(u.w), inv);
    }
    *reinterpret_cast<uint4*>(sx + qc_x_offset(r, qc_x_slot(r, qc_w4a8_matrix_chunk(i, 0)))) =
        make_uint4(m0[0], m0[1], m0[2], m0[3]);
    *reinterpret_cast<uint4*>(sx + qc_x_offset(r, qc_x_slot(r, qc_w4a8_matrix_chunk(i, 1)))) =
        make_uint4(m1[0], m1[1], m1[2], m1[3]);
  }

  // two ldmatrix.x4 per token fragment: register j of load p is b[2p + j / 2][j % 2]
  template <int MF>
  __device__ __forceinline__ void b_frags(const uint8_t* sx, int, int f, uint32_t (&b)[4][2]) const {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int p = 0; p < 2; ++p) {
      uint32_t d[4];
      qc_ldmatrix_x4(d, sx + qc_w4a8_ldsm_offset(f, p, lane));
      b[2 * p][0] = d[0];
      b[2 * p][1] = d[1];
      b[2 * p + 1][0] = d[2];
      b[2 * p + 1][1] = d[3];
    }
  }

  __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) const {
    qc_mma_e4m3(c, a, b);
  }
};

// Per-token scale: amax(|x[m, :]|) / 448, or 1 when that is 0 or not finite.
__global__ void __launch_bounds__(256) qc_row_scale_kernel(const __half* __restrict__ x, int K,
                                                           float* __restrict__ row_scale) {
  const float s = qc_row_fp8_scale(x + (size_t)blockIdx.x * K, K);
  if (threadIdx.x == 0) row_scale[blockIdx.x] = s;
}

int device_supports_fp8_mma() {
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return -1;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess)
    return -1;
  return major * 10 + minor >= 89 ? 1 : 0;
}

}  // namespace

extern "C" int qc_w4a8_gemm(const void* x, const void* w, const void* group_exp, const void* channel_scale,
                            const void* act_scale, void* y, int M, int N, int K, int group_size, int format,
                            int act_quant, void* workspace, size_t workspace_bytes, struct CUstream_st* stream) {
  int st = qc_w4a8_check_shape(M, N, K, group_size, format, act_quant);
  if (st != QC_OK || M == 0) return st;
  const bool per_token = act_quant == QC_ACT_PER_TOKEN;
  if (!x || !w || !group_exp || !channel_scale || !y || (!per_token && !act_scale)) return QC_ERR_NULL;
  if (!qc_is_aligned16(x) || !qc_is_aligned16(w) || ((size_t)channel_scale & 3) || ((size_t)y & 1) ||
      (!per_token && ((size_t)act_scale & 3)))
    return QC_ERR_ALIGNMENT;
  if (workspace && !qc_is_aligned16(workspace)) return QC_ERR_ALIGNMENT;
  // Hopper: CUTLASS's SM90 mixed-input GEMM (FP8 wgmma) when this library has it and the device is 9.0
  const int sm90 = qc_sm90_w4a8_gemm(x, w, group_exp, channel_scale, act_scale, y, M, N, K, group_size, format,
                                     act_quant, workspace, workspace_bytes, stream);
  if (sm90 != QC_SM90_FALLBACK) return sm90;
  const int arch = device_supports_fp8_mma();
  if (arch < 0) return QC_ERR_CUDA;
  if (arch == 0) return QC_ERR_UNSUPPORTED_ARCH;

  const size_t rows_bytes = per_token ? qc_align256((size_t)M * sizeof(float)) : 0;
  if (per_token && (!workspace || workspace_bytes < rows_bytes)) return QC_ERR_WORKSPACE;
  qc_plan p = qc_fit_workspace(qc_plan_gemm(M, N, K, QC_W4A8_K_BLOCK), M, N, K, rows_bytes, workspace,
                               workspace_bytes);
  float* row_scale = per_token ? static_cast<float*>(workspace) : nullptr;
  cudaStream_t s = stream;
  const __half* xh = static_cast<const __half*>(x);
  if (per_token) {
    qc_row_scale_kernel<<<M, 256, 0, s>>>(xh, K, row_scale);
    if (qc_cuda_status() != QC_OK) return QC_ERR_CUDA;
  }
  QcEpilogue epi{nullptr, static_cast<const float*>(channel_scale),
                 per_token ? nullptr : static_cast<const float*>(act_scale), row_scale};
  W4A8Op op{};
  op.w = static_cast<const uint8_t*>(w);
  op.gexp = static_cast<const int8_t*>(group_exp);
  op.N = N;
  op.K = K;
  op.group_shift = qc_group_shift(group_size);
  op.fmt = format;
  op.epi = epi;
  void* ws = p.splits > 1 ? static_cast<char*>(workspace) + rows_bytes : nullptr;
  return qc_launch_pipe(p, xh, static_cast<__half*>(y), ws, M, N, K, op, epi, s);
}

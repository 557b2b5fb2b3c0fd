// W4A8 (ZeroQuant-FP): 4-bit weights turned into FP8 E4M3 by integer arithmetic on the exponent
// (decode.h), activations rounded to E4M3 in the kernel, mma.sync m16n8k32 e4m3 (sm_89+), scales
// in the fp32 epilogue. Compiled only for sm_89 / sm_90a; other devices get QC_ERR_UNSUPPORTED_ARCH.
#include <cuda_fp8.h>

#include "decode.h"
#include "gemm_common.cuh"
#include "w4a8.h"

namespace {

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

// 32 weights of row `row` from k (one group): 16 bytes -> 8 words of E4M3 bytes; word 2i holds
// k+8i..k+8i+3, word 2i+1 holds k+8i+4..k+8i+7.
__device__ __forceinline__ void qc_load_w4_fp8(const uint8_t* w, const int8_t* gexp, int row, int k, int K,
                                               int group_shift, int fmt, bool valid, uint32_t a[8]) {
  if (!valid) {
#pragma unroll
    for (int j = 0; j < 8; ++j) a[j] = 0u;
    return;
  }
  const uint4 p = *reinterpret_cast<const uint4*>(w + (size_t)row * (K / 2) + k / 2);
  uint32_t lut[4];
  qc_w4a8_lut(fmt, gexp[(size_t)row * (K >> group_shift) + (k >> group_shift)], lut);
  qc_w4a8_convert8(p.x, lut, &a[0], &a[1]);
  qc_w4a8_convert8(p.y, lut, &a[2], &a[3]);
  qc_w4a8_convert8(p.z, lut, &a[4], &a[5]);
  qc_w4a8_convert8(p.w, lut, &a[6], &a[7]);
}

__device__ __forceinline__ uint32_t qc_fp8x4(__half2 lo, __half2 hi, float inv) {
  const float2 l = __half22float2(lo), h = __half22float2(hi);
  const uint32_t b01 = __nv_cvt_float2_to_fp8x2(make_float2(l.x * inv, l.y * inv), __NV_SATFINITE, __NV_E4M3);
  const uint32_t b23 = __nv_cvt_float2_to_fp8x2(make_float2(h.x * inv, h.y * inv), __NV_SATFINITE, __NV_E4M3);
  return (b01 & 0xFFFFu) | (b23 << 16);
}

// CTA: 4 warps x 16 output channels, 8*MF tokens; K block 128 = 4 MMAs of k32, thread t owning
// k in [kb + 32t, kb + 32t + 32). Slot (logical k 4t+j / 4t+16+j of MMA i) <- actual k 32t+8i+j /
// 32t+8i+4+j, for A and B alike.
template <int MF>
__global__ void __launch_bounds__(128) qc_w4a8_kernel(const __half* __restrict__ x, const uint8_t* __restrict__ w,
                                                      const int8_t* __restrict__ gexp, __half* __restrict__ y,
                                                      float* __restrict__ ws, int M, int N, int K, int group_shift,
                                                      int fmt, int k_chunk, QcEpilogue epi) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int r0 = blockIdx.x * QC_TILE_N + warp * 16 + g, r1 = r0 + 8;
  const int m_base = blockIdx.y * (8 * MF);
  const int k_begin = blockIdx.z * k_chunk;
  const int k_end = min(K, k_begin + k_chunk);
  float acc[MF][4], inv[MF];
#pragma unroll
  for (int f = 0; f < MF; ++f) {
    acc[f][0] = acc[f][1] = acc[f][2] = acc[f][3] = 0.0f;
    const int m = m_base + 8 * f + g;
    inv[f] = 1.0f / (epi.row_scale ? (m < M ? epi.row_scale[m] : 1.0f) : *epi.act_scale);
  }

  for (int kb = k_begin; kb < k_end; kb += 128) {
    const int k = kb + 32 * t;
    const bool kv = k < k_end;
    uint32_t a0[8], a1[8], xb[MF][8];
    qc_load_w4_fp8(w, gexp, r0, k, K, group_shift, fmt, kv && r0 < N, a0);
    qc_load_w4_fp8(w, gexp, r1, k, K, group_shift, fmt, kv && r1 < N, a1);
#pragma unroll
    for (int f = 0; f < MF; ++f) {
      const int m = m_base + 8 * f + g;
      if (kv && m < M) {
        const uint4* p = reinterpret_cast<const uint4*>(x + (size_t)m * K + k);
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const uint4 u = p[q];
          xb[f][2 * q] = qc_fp8x4(qc_as_h2(u.x), qc_as_h2(u.y), inv[f]);
          xb[f][2 * q + 1] = qc_fp8x4(qc_as_h2(u.z), qc_as_h2(u.w), inv[f]);
        }
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) xb[f][j] = 0u;
      }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const uint32_t a[4] = {a0[2 * i], a1[2 * i], a0[2 * i + 1], a1[2 * i + 1]};
#pragma unroll
      for (int f = 0; f < MF; ++f) {
        const uint32_t b[2] = {xb[f][2 * i], xb[f][2 * i + 1]};
        qc_mma_e4m3(acc[f], a, b);
      }
    }
  }
  qc_store_tile<MF>(acc, m_base, r0, r1, M, N, y, ws, epi);
}

// Per-token scale: amax(|x[m, :]|) / 448, or 1 when that is 0 or not finite.
__global__ void __launch_bounds__(256) qc_row_scale_kernel(const __half* __restrict__ x, int K,
                                                           float* __restrict__ row_scale) {
  __shared__ float warp_max[8];
  const __half* row = x + (size_t)blockIdx.x * K;
  float amax = 0.0f;
  for (int k = threadIdx.x; k < K; k += blockDim.x) amax = fmaxf(amax, fabsf(__half2float(row[k])));
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = amax;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < 8; ++i) amax = fmaxf(amax, warp_max[i]);
    const float s = amax / 448.0f;
    row_scale[blockIdx.x] = (s > 0.0f && isfinite(s)) ? s : 1.0f;
  }
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
  const int arch = device_supports_fp8_mma();
  if (arch < 0) return QC_ERR_CUDA;
  if (arch == 0) return QC_ERR_UNSUPPORTED_ARCH;

  const size_t rows_bytes = per_token ? qc_align256((size_t)M * sizeof(float)) : 0;
  if (per_token && (!workspace || workspace_bytes < rows_bytes)) return QC_ERR_WORKSPACE;
  qc_plan p = qc_fit_workspace(qc_plan_gemm(M, N, K, 128), M, N, K, rows_bytes, workspace, workspace_bytes);
  float* row_scale = per_token ? static_cast<float*>(workspace) : nullptr;
  float* ws = p.splits > 1 ? reinterpret_cast<float*>(static_cast<char*>(workspace) + rows_bytes) : nullptr;
  cudaStream_t s = stream;
  const __half* xh = static_cast<const __half*>(x);
  if (per_token) {
    qc_row_scale_kernel<<<M, 256, 0, s>>>(xh, K, row_scale);
    if (qc_cuda_status() != QC_OK) return QC_ERR_CUDA;
  }
  QcEpilogue epi{nullptr, static_cast<const float*>(channel_scale),
                 per_token ? nullptr : static_cast<const float*>(act_scale), row_scale};
  const int m_tile = 8 * p.m_frags;
  const unsigned gy = (unsigned)((M + m_tile - 1) / m_tile);
  if (gy > 65535u) return QC_ERR_SHAPE;
  dim3 grid((unsigned)((N + QC_TILE_N - 1) / QC_TILE_N), gy, (unsigned)p.splits);
  const uint8_t* wb = static_cast<const uint8_t*>(w);
  const int8_t* ge = static_cast<const int8_t*>(group_exp);
  __half* yh = static_cast<__half*>(y);
  const int gs = qc_group_shift(group_size);
  switch (p.m_frags) {
    case 1: qc_w4a8_kernel<1><<<grid, 128, 0, s>>>(xh, wb, ge, yh, ws, M, N, K, gs, format, p.k_chunk, epi); break;
    case 2: qc_w4a8_kernel<2><<<grid, 128, 0, s>>>(xh, wb, ge, yh, ws, M, N, K, gs, format, p.k_chunk, epi); break;
    default: qc_w4a8_kernel<4><<<grid, 128, 0, s>>>(xh, wb, ge, yh, ws, M, N, K, gs, format, p.k_chunk, epi); break;
  }
  if (qc_cuda_status() != QC_OK) return QC_ERR_CUDA;
  qc_launch_reduce(p, ws, M, N, epi, yh, s);
  return qc_cuda_status();
}

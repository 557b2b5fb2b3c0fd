// The unpipelined FP16 tensor-core GEMM loop (W6A16; W4A16 and W4A8 run common/pipeline.cuh): a
// Loader turns 16 packed weights of one row into 8 half2 words, loaded straight from global memory
// one K block at a time; split-K reduces in a second kernel.
#pragma once

#include "gemm_common.cuh"

static __global__ void __launch_bounds__(256) qc_splitk_reduce_kernel(const float* __restrict__ ws, int splits,
                                                                      int M, int N, QcEpilogue epi,
                                                               __half* __restrict__ y) {
  const size_t total = (size_t)M * N;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
    float s = 0.0f;
    for (int z = 0; z < splits; ++z) s += ws[z * total + i];
    int m = (int)(i / N), n = (int)(i % N);
    y[i] = __float2half_rn(s * epi.factor(m, n));
  }
}

inline int qc_launch_reduce(const qc_plan& p, const float* ws, int M, int N, const QcEpilogue& epi,
                            __half* y, cudaStream_t stream) {
  if (p.splits <= 1) return QC_OK;
  size_t total = (size_t)M * N;
  unsigned blocks = (unsigned)((total + 255) / 256);
  if (blocks > 65535u * 8u) blocks = 65535u * 8u;
  qc_splitk_reduce_kernel<<<blocks, 256, 0, stream>>>(ws, p.splits, M, N, epi, y);
  return QC_OK;
}

// The A fragments of the 4 MMAs of one K block from a loader of single rows (16 k of row r into
// 8 half2 words): MMA i takes pairs 2i, 2i+1 of rows r0 and r1. A loader that reads both rows at
// once (int4_v2) overloads this function.
template <class Loader>
__device__ __forceinline__ void qc_load_a(const Loader& ld, int r0, int r1, int k, bool kv, int N,
                                          uint32_t (&a)[4][4]) {
  uint32_t w0[8], w1[8];
  ld.load(r0, k, kv && r0 < N, w0);
  ld.load(r1, k, kv && r1 < N, w1);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    a[i][0] = w0[2 * i];
    a[i][1] = w1[2 * i];
    a[i][2] = w0[2 * i + 1];
    a[i][3] = w1[2 * i + 1];
  }
}

// CTA: 4 warps x 16 output channels, 8*MF tokens; K block 64 = 4 MMAs of k16, thread t owning
// k in [kb + 16t, kb + 16t + 16). Slot (logical k 2t+j / 2t+8+j of MMA i) <- actual k 16t+4i+j /
// 16t+4i+2+j, for A and B alike.
template <int MF, class Loader>
__global__ void __launch_bounds__(128) qc_gemm_f16_kernel(const __half* __restrict__ x, __half* __restrict__ y,
                                                          float* __restrict__ ws, int M, int N, int K,
                                                          int k_chunk, Loader ld, QcEpilogue epi) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int r0 = blockIdx.x * QC_TILE_N + warp * 16 + g, r1 = r0 + 8;
  const int m_base = blockIdx.y * (8 * MF);
  const int k_begin = blockIdx.z * k_chunk;
  const int k_end = min(K, k_begin + k_chunk);
  float acc[MF][4];
#pragma unroll
  for (int f = 0; f < MF; ++f) acc[f][0] = acc[f][1] = acc[f][2] = acc[f][3] = 0.0f;

  for (int kb = k_begin; kb < k_end; kb += 64) {
    const int k = kb + 16 * t;
    const bool kv = k < k_end;
    uint32_t a[4][4], xb[MF][8];
    qc_load_a(ld, r0, r1, k, kv, N, a);
#pragma unroll
    for (int f = 0; f < MF; ++f) {
      const int m = m_base + 8 * f + g;
      if (kv && m < M) {
        const uint4* p = reinterpret_cast<const uint4*>(x + (size_t)m * K + k);
        uint4 u0 = p[0], u1 = p[1];
        xb[f][0] = u0.x; xb[f][1] = u0.y; xb[f][2] = u0.z; xb[f][3] = u0.w;
        xb[f][4] = u1.x; xb[f][5] = u1.y; xb[f][6] = u1.z; xb[f][7] = u1.w;
      } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) xb[f][j] = 0u;
      }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int f = 0; f < MF; ++f) {
        const uint32_t b[2] = {xb[f][2 * i], xb[f][2 * i + 1]};
        qc_mma_f16(acc[f], a[i], b);
      }
    }
  }
  qc_store_tile<MF>(acc, m_base, r0, r1, M, N, y, ws, epi);
}

template <class Loader>
int qc_launch_f16_gemm(const qc_plan& p, const __half* x, __half* y, float* ws, int M, int N, int K,
                       const Loader& ld, const QcEpilogue& epi, cudaStream_t stream) {
  const int m_tile = 8 * p.m_frags;
  const unsigned gy = (unsigned)((M + m_tile - 1) / m_tile);
  if (gy > 65535u) return QC_ERR_SHAPE;
  dim3 grid((unsigned)((N + QC_TILE_N - 1) / QC_TILE_N), gy, (unsigned)p.splits);
  switch (p.m_frags) {
    case 1: qc_gemm_f16_kernel<1, Loader><<<grid, 128, 0, stream>>>(x, y, ws, M, N, K, p.k_chunk, ld, epi); break;
    case 2: qc_gemm_f16_kernel<2, Loader><<<grid, 128, 0, stream>>>(x, y, ws, M, N, K, p.k_chunk, ld, epi); break;
    default: qc_gemm_f16_kernel<4, Loader><<<grid, 128, 0, stream>>>(x, y, ws, M, N, K, p.k_chunk, ld, epi); break;
  }
  if (qc_cuda_status() != QC_OK) return QC_ERR_CUDA;
  qc_launch_reduce(p, ws, M, N, epi, y, stream);
  return qc_cuda_status();
}

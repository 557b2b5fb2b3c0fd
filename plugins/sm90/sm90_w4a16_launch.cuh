// The W4A16 launch of the sm_90a path, shared by the layout 1 and layout 3 (int4_sm90) kernels
// (qc_sm90_w4a16.cu, qc_sm90_w4a16_shuffled.cu): the scale / zero pre-kernel, the workspace split,
// CUTLASS's stream-K workspace. Numerics:
//   INT4:  ConvertAndScale, w = fp16(q * s): one rounding, the weights of qc_w4a16_gemm bit for bit.
//   UINT4: ConvertAndScaleWithZero, w = fp16(u * s) + z' with z' = fp16(-zero * s) per group,
//          precomputed here (nvcc contracts CUTLASS's multiply and add into one HFMA2: two roundings
//          where the other kernels round (u - zero) * s once; README.md: tolerance).
#pragma once

#include <cuda_fp16.h>

#include "qc_sm90_gemm.h"
#include "sm90_common.h"
#include "sm90_mixed_gemm.cuh"

namespace qc_sm90 {

template <bool Shuffled, int Tile>
using Int4Gemm = MixedGemm<cute::tuple<cutlass::int4b_t, cutlass::half_t>, cutlass::half_t, Tile, Shuffled>;
template <bool Shuffled, int Tile>
using Uint4Gemm =
    MixedGemm<cute::tuple<cutlass::uint4b_t, cutlass::half_t, cutlass::half_t>, cutlass::half_t, Tile, Shuffled>;

}  // namespace qc_sm90

// Kernels and helpers with internal linkage in each translation unit that includes this file (the
// global anonymous namespace: no using-directive for cute may reach it, or nvcc's host stubs of
// the kernels become ambiguous).
namespace {

using qc_sm90::Int4Gemm;
using qc_sm90::Uint4Gemm;

// scales [N, G] -> scales_t [G, N]; with zeros_t: zeros_t[j, n] = fp16(-zero[n, j] * s[n, j])
// (0 without zeros): the fp32 product of an 8-bit integer and an fp16 is exact, one rounding.
__global__ void __launch_bounds__(256) qc_sm90_w4a16_prep(const __half* __restrict__ scales,
                                                          const uint8_t* __restrict__ zeros, int N, int G,
                                                          __half* __restrict__ scales_t,
                                                          __half* __restrict__ zeros_t) {
  __shared__ __half s_tile[32][33];
  __shared__ __half z_tile[32][33];
  const int n0 = blockIdx.x * 32, j0 = blockIdx.y * 32;
  const int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;  // 32 x 8
  for (int r = ty; r < 32; r += 8) {
    const int n = n0 + r, j = j0 + tx;
    if (n < N && j < G) {
      const __half s = scales[(size_t)n * G + j];
      s_tile[r][tx] = s;
      const float z = zeros ? (float)zeros[(size_t)n * G + j] : 0.0f;
      z_tile[r][tx] = __float2half_rn(z == 0.0f ? 0.0f : -z * __half2float(s));
    }
  }
  __syncthreads();
  for (int r = ty; r < 32; r += 8) {
    const int j = j0 + r, n = n0 + tx;
    if (n < N && j < G) {
      scales_t[(size_t)j * N + n] = s_tile[tx][r];
      if (zeros_t) zeros_t[(size_t)j * N + n] = z_tile[tx][r];
    }
  }
}

template <class G>
size_t cutlass_bytes(int M, int N, int K, int group_size, int sm_count) {
  const auto args = G::arguments(nullptr, nullptr, nullptr, nullptr, nullptr, M, N, K, group_size, sm_count, true);
  return G::Gemm::get_workspace_size(args);
}

// CUTLASS's stream-K workspace depends on M only through the number of token tiles.
template <class G>
size_t cutlass_bytes_upto(int M, int N, int K, int group_size, int sm_count, int tile) {
  size_t most = 0;
  for (int t = 1; (t - 1) * tile < M; ++t) {
    const size_t b = cutlass_bytes<G>(t * tile < M ? t * tile : M, N, K, group_size, sm_count);
    most = b > most ? b : most;
  }
  return most;
}

size_t scale_bytes(int N, int K, int group_size, bool uint4) {
  const size_t one = qc_sm90_align256((size_t)N * (K / group_size) * sizeof(__half));
  return uint4 ? 2 * one : one;
}

template <class G>
int launch(const void* x, const void* w, const void* scales, const void* zeros, void* y, int M, int N, int K,
           int group_size, int sm_count, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  const bool uint4 = !cute::is_void_v<typename G::Mainloop::ElementZero>;
  const size_t sb = scale_bytes(N, K, group_size, uint4);
  auto* scales_t = static_cast<__half*>(workspace);
  auto* zeros_t = uint4 ? reinterpret_cast<__half*>(static_cast<char*>(workspace) + sb / 2) : nullptr;
  void* ws = static_cast<char*>(workspace) + sb;
  const size_t ws_bytes = workspace_bytes - sb;
  auto args = G::arguments(x, w, scales_t, zeros_t, y, M, N, K, group_size, sm_count, true);
  if (G::Gemm::get_workspace_size(args) > ws_bytes)  // too small for stream-K: one CTA per tile
    args = G::arguments(x, w, scales_t, zeros_t, y, M, N, K, group_size, sm_count, false);
  args.epilogue.thread.alpha = 1.0f;
  args.epilogue.thread.beta = 0.0f;
  typename G::Gemm gemm;
  if (gemm.can_implement(args) != cutlass::Status::kSuccess || G::Gemm::get_workspace_size(args) > ws_bytes)
    return QC_SM90_FALLBACK;

  const int groups = K / group_size;
  const dim3 grid((unsigned)((N + 31) / 32), (unsigned)((groups + 31) / 32));
  qc_sm90_w4a16_prep<<<grid, 256, 0, stream>>>(static_cast<const __half*>(scales),
                                               static_cast<const uint8_t*>(zeros), N, groups, scales_t, zeros_t);
  if (cudaGetLastError() != cudaSuccess) return QC_ERR_CUDA;
  if (gemm.initialize(args, ws, stream) != cutlass::Status::kSuccess) return QC_ERR_CUDA;
  if (gemm.run(stream) != cutlass::Status::kSuccess) return QC_ERR_CUDA;
  return cudaGetLastError() == cudaSuccess ? QC_OK : QC_ERR_CUDA;
}

// The four kernels of one weight layout: UINT4 (zero mode) or INT4, 16- or 128-token tile.
template <bool Shuffled>
int run(bool uint4, bool small, const void* x, const void* w, const void* scales, const void* zeros, void* y,
        int M, int N, int K, int group_size, int sm_count, void* workspace, size_t workspace_bytes,
        cudaStream_t s) {
  if (uint4)
    return small ? launch<Uint4Gemm<Shuffled, 16>>(x, w, scales, zeros, y, M, N, K, group_size, sm_count,
                                                     workspace, workspace_bytes, s)
                 : launch<Uint4Gemm<Shuffled, 128>>(x, w, scales, zeros, y, M, N, K, group_size, sm_count,
                                                      workspace, workspace_bytes, s);
  return small ? launch<Int4Gemm<Shuffled, 16>>(x, w, scales, nullptr, y, M, N, K, group_size, sm_count, workspace,
                                                  workspace_bytes, s)
               : launch<Int4Gemm<Shuffled, 128>>(x, w, scales, nullptr, y, M, N, K, group_size, sm_count,
                                                   workspace, workspace_bytes, s);
}

}  // namespace

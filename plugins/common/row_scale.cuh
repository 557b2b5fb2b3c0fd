// Per-token FP8 activation scale (W4A8's per-token mode, both the sm_80/89 and the sm_90a path).
#pragma once

#include <cuda_fp16.h>

// amax(|row[0, K)|) / 448, or 1 when that is 0 or not finite, computed by one 256-thread block;
// every thread returns it. Must be reached by the whole block (it synchronizes).
__device__ __forceinline__ float qc_row_fp8_scale(const __half* __restrict__ row, int K) {
  __shared__ float warp_max[8];
  __shared__ float scale;
  float amax = 0.0f;
  for (int k = threadIdx.x; k < K; k += blockDim.x) amax = fmaxf(amax, fabsf(__half2float(row[k])));
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  if ((threadIdx.x & 31) == 0) warp_max[threadIdx.x >> 5] = amax;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int i = 1; i < 8; ++i) amax = fmaxf(amax, warp_max[i]);
    const float s = amax / 448.0f;
    scale = (s > 0.0f && isfinite(s)) ? s : 1.0f;
  }
  __syncthreads();
  return scale;
}

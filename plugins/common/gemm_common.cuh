// Device pieces shared by the GEMM kernels (common/pipeline.cuh): MMA wrappers, epilogue factor.
//
// Every kernel computes y^T = W x^T with the weights as the MMA A operand (16 output channels)
// and the activations as B (8 tokens), FP6-LLM style. Inside one K block each thread owns a
// contiguous run of k (16 for m16n8k16, 32 for m16n8k32) and feeds it to the fragment slots of
// its lane; A and B use the same k permutation, so the dot products are unchanged and every
// weight and activation load is one aligned vector load. m16n8k16: thread t's run in a 64-k block
// is k 16t .. 16t + 15, and slot (logical k 2t + j / 2t + 8 + j of MMA i) <- actual k 16t + 4i + j
// / 16t + 4i + 2 + j, for A and B alike.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstring>

#include "qc_status.h"
#include "split_k.h"

// y[m, n] = acc * (col_scale[n]) * (act_scale | row_scale[m]); absent factors are 1.
struct QcEpilogue {
  const __half* col_scale_h;
  const float* col_scale_f;
  const float* act_scale;
  const float* row_scale;

  __device__ __forceinline__ float factor(int m, int n) const {
    float f = 1.0f;
    if (col_scale_h) f = __half2float(col_scale_h[n]);
    if (col_scale_f) f = col_scale_f[n];
    if (act_scale) f *= *act_scale;
    if (row_scale) f *= row_scale[m];
    return f;
  }
};

__device__ __forceinline__ __half2 qc_as_h2(uint32_t u) {
  __half2 r;
  memcpy(&r, &u, 4);
  return r;
}

__device__ __forceinline__ uint32_t qc_as_u32(__half2 h) {
  uint32_t r;
  memcpy(&r, &h, 4);
  return r;
}

__device__ __forceinline__ void qc_mma_f16(float c[4], const uint32_t a[4], const uint32_t b[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

inline int qc_cuda_status() { return cudaGetLastError() == cudaSuccess ? QC_OK : QC_ERR_CUDA; }

/* The int4_sm90 layout (docs/LAYOUTS.md, QcW4A16Gemm layout_version 3): where element (n, k) of an
 * [N, K] INT4 / UINT4 weight lies in the byte stream CUTLASS's SM90 mixed-input GEMM reads (plugins/sm90).
 * The sm_90a kernels read it through CuTe; this is for the CPU reference and its tests.
 * qcompile.packing_sm90 is the spec; N and K are multiples of 16. C and C++. */
#ifndef QC_INT4_SM90_H
#define QC_INT4_SM90_H

#include <stddef.h>

/* n = 16 a + 8 m1 + g, k = 16 b + 8 k2 + 2 k1 + k0 -> nibble 256 (a + (N/16) b) + 32 g + 8 k1 + 4 k0
 * + 2 k2 + m1 (nibble p in byte p / 2, bits 0-3 for even p). */
static inline size_t qc_int4_sm90_nibble(int n, int k, int N) {
  const size_t a = (size_t)(n >> 4), b = (size_t)(k >> 4);
  const int m1 = (n >> 3) & 1, g = n & 7, k2 = (k >> 3) & 1, k1 = (k >> 1) & 3, k0 = k & 1;
  return 256 * (a + (size_t)(N / 16) * b) + (size_t)(32 * g + 8 * k1 + 4 * k0 + 2 * k2 + m1);
}

#endif

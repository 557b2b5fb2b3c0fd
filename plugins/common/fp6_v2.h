/* Decoder of the fp6_v2 layout (docs/LAYOUTS.md, QcW6A16Gemm layout_version 2): FP6-LLM's 4+2 split
 * pre-packed per lane at the bit level, so that a lane's 16 lo4 bytes (one 16-byte load, words
 * L[0..3]) and 8 hi2 bytes (one 8-byte load, words H[0..1]) hold the 32 weights of its four
 * m16n8k16 A fragments (rows g, g + 8; k 16 t .. 16 t + 15 of a 64-k block), placed so that every A
 * register a[i][j] is
 *     rotl(X, s) & F,    X = lop3 select of L[i] (bits in M) and H[w] (the others)
 * with a constant rotation s and hi2 word w per register, select mask M = rotr(M4, s) and field
 * mask F per format:
 * - E3M2 (4-bit segment = code bits 0-3 at FP16 bits 8-11, 2-bit segment = code bits 4, 5 at 12,
 *   15; M4 = 0x0F0F0F0F, F = 0x9F009F00): s = (0, 4, 2, 6)[2 (i % 2) + j % 2] + 8 (j / 2),
 *   w = i / 2; a[i][j] and a[i][j + 2] share one X (their fields, 8 bits apart, do not overlap),
 *   so per 32 weights 8 selects, 14 rotations and 16 masks.
 * - E2M3 (4-bit segment = code bits 1-4 at FP16 bits 8-11, 2-bit segment = code bits 0, 5 at 7,
 *   15; M4 = 0x0F000F00, F = 0x8F808F80): s = i + 4 j, w = j / 2; one X per register (every
 *   rotation of an E2M3 field set meets it), 16 selects, 15 rotations, 16 masks.
 * Bit operations only; the result is the same FP16 bits as qc_fp6_decode4 (decode.h) gives for
 * version 1: decode(c) * 2^-12 (E3M2) or 2^-14 (E2M3) (qc_fp6_bias_factor: the W6A16 kernel applies
 * it in its fp32 epilogue, the reference in float32; both exact).
 * Shared by the W6A16 kernel, the CPU reference (plugins/ref) and the ctest qc_fp6_v2_test. */
#ifndef QC_FP6_V2_H
#define QC_FP6_V2_H

#include <stddef.h>
#include <stdint.h>

#include "decode.h"

#define QC_FP6V2_LO4_TILE_BYTES 512 /* 16 output channels x 64 k: 32 lanes x 16 bytes */
#define QC_FP6V2_HI2_TILE_BYTES 256 /* 32 lanes x 8 bytes */

/* (a & m) | (b & ~m): one LOP3 (0xe4 with m the third operand) on the GPU; written as asm because
 * nvcc otherwise splits it into an AND of b and an AND-OR. */
QC_HD uint32_t qc_fp6v2_select(uint32_t a, uint32_t b, uint32_t m) {
#ifdef __CUDA_ARCH__
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0xe4;" : "=r"(r) : "r"(a), "r"(b), "r"(m));
  return r;
#else
  return (a & m) | (b & ~m);
#endif
}

/* Rotation left by s in 0..31: one SHF.L.W (funnel shift of x with itself) on the GPU, none for 0.
 * qc_fp6v2_rotr_c: the same in plain C shifts, for the constant select masks (folded by the compiler). */
QC_HD uint32_t qc_fp6v2_rotr_c(uint32_t x, int s) { return (x >> (s & 31)) | (x << ((32 - s) & 31)); }

QC_HD uint32_t qc_fp6v2_rotl(uint32_t x, int s) {
#ifdef __CUDA_ARCH__
  return (s & 31) ? __funnelshift_l(x, x, s & 31) : x;
#else
  return qc_fp6v2_rotr_c(x, 32 - s);
#endif
}

#define QC_FP6V2_E3M2_FIELD 0x9F009F00u
#define QC_FP6V2_E2M3_FIELD 0x8F808F80u

/* The rotation of register a[i][j] (docs/LAYOUTS.md, fp6_v2). */
QC_HD int qc_fp6v2_rotation(int e2m3, int i, int j) {
  return e2m3 ? i + 4 * j : 2 * (i & 1) + 4 * (j & 1) + 8 * (j >> 1);  /* (0, 4, 2, 6)[q] + 8 (j / 2) */
}

/* One lane's 16 lo4 bytes (L[0..3], little-endian words) and 8 hi2 bytes (H[0..1]) -> the FP16 bits
 * of its 16 A registers a[i][j] (MMA i; j = 0: row g, k pair 16 t + 4 i + (0, 1); 1: row g + 8, the
 * same pair; 2, 3: rows g, g + 8 of the pair (2, 3)), each decode(c) * 2^-12 / 2^-14 like v1. */
QC_HD void qc_fp6v2_decode(const uint32_t L[4], const uint32_t H[2], int e2m3, uint32_t a[4][4]) {
  for (int i = 0; i < 4; ++i) {
    if (e2m3) {
      for (int j = 0; j < 4; ++j) {
        const int s = qc_fp6v2_rotation(1, i, j);
        const uint32_t x = qc_fp6v2_select(L[i], H[j >> 1], qc_fp6v2_rotr_c(0x0F000F00u, s));
        a[i][j] = qc_fp6v2_rotl(x, s) & QC_FP6V2_E2M3_FIELD;
      }
    } else {
      for (int h = 0; h < 2; ++h) { /* a[i][h] and a[i][h + 2] from one staging word */
        const int s = qc_fp6v2_rotation(0, i, h);
        const uint32_t x = qc_fp6v2_select(L[i], H[i >> 1], qc_fp6v2_rotr_c(0x0F0F0F0Fu, s));
        a[i][h] = qc_fp6v2_rotl(x, s) & QC_FP6V2_E3M2_FIELD;
        a[i][h + 2] = qc_fp6v2_rotl(x, s + 8) & QC_FP6V2_E3M2_FIELD;
      }
    }
  }
}

/* Byte offsets of lane `lane`'s lo4 (16 bytes) and hi2 (8 bytes) in the warp tile of output channels
 * [16 nt, 16 nt + 16) and k [64 kt, 64 kt + 64). */
QC_HD size_t qc_fp6v2_lo4_offset(int nt, int kt, int K, int lane) {
  return ((size_t)nt * (size_t)(K / 64) + (size_t)kt) * QC_FP6V2_LO4_TILE_BYTES + (size_t)lane * 16;
}
QC_HD size_t qc_fp6v2_hi2_offset(int nt, int kt, int K, int lane) {
  return ((size_t)nt * (size_t)(K / 64) + (size_t)kt) * QC_FP6V2_HI2_TILE_BYTES + (size_t)lane * 8;
}

#endif

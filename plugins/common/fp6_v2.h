/* Decoder of the fp6_v2 layout (docs/LAYOUTS.md, QcW6A16Gemm layout_version 2): FP6-LLM's 4+2 split
 * pre-packed per lane, so that a lane's 16 lo4 bytes (one 16-byte load) and 8 hi2 bytes (one 8-byte
 * load) hold the 32 weights of its four m16n8k16 A fragments (rows g, g + 8; k 16 t .. 16 t + 15 of
 * a 64-k block), with every segment placed for the fewest shifts:
 * - E3M2: the FP16 bits s<<15 | (c & 0x1F)<<8 are one byte [s 0 0 c4 c3 c2 c1 c0] in the high half
 *   of a half. Per four weights one lop3 merges their 4-bit segments (low nibbles of a word's bytes)
 *   with their 2-bit segments (bits 4 and 7 of a shifted hi2 word's bytes); masking bytes 1, 3 and
 *   bytes 0, 2 (after << 8) gives two A registers.
 * - E2M3: s<<15 | (c & 0x1F)<<7: 4-bit segment = code bits 1-4 (FP16 bits 8-11, nibble-aligned),
 *   2-bit segment = code bits 0 and 5 (FP16 bits 7 and 15); per A register one lop3 select of a
 *   shifted lo4 word and a shifted hi2 word and one mask.
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

QC_HD uint32_t qc_fp6v2_rotr(uint32_t x, int s) {
#ifdef __CUDA_ARCH__
  return __funnelshift_r(x, x, s);
#else
  return (x >> s) | (x << (32 - s));
#endif
}

/* E3M2: L[i] (lo4 word i) and H[i >> 1] (hi2 word) -> a[i][0..3] of MMA i. Group (i, h), h = row:
 * staging word X = low nibbles of L[i] >> 4h under bits 4-7 of the hi2 word shifted for slot
 * q = 2 (i & 1) + h (<< 0, << 4, << 2, rotate right 2); a[i][h] = X's bytes 1 and 3,
 * a[i][h + 2] = its bytes 0 and 2. */
QC_HD void qc_fp6v2_e3m2_mma(uint32_t l, uint32_t hw, int i, uint32_t a[4]) {
  for (int h = 0; h < 2; ++h) {
    const int q = 2 * (i & 1) + h;
    const uint32_t hq = q == 0 ? hw : q == 1 ? hw << 4 : q == 2 ? hw << 2 : qc_fp6v2_rotr(hw, 2);
    const uint32_t x = qc_fp6v2_select(h ? l >> 4 : l, hq, 0x0F0F0F0Fu);
    a[h] = x & 0x9F009F00u;
    a[h + 2] = (x << 8) & 0x9F009F00u;
  }
}

/* E2M3: a[i][j] = (lo4 word i shifted so nibbles 2 - j (j < 3) or 3 (j = 3) and + 4 sit at bits 8-11
 * and 24-27) under (hi2 word << (7 - q), q = 4 (i & 1) + j: bit q of each byte to bit 7), masked. */
QC_HD void qc_fp6v2_e2m3_mma(uint32_t l, uint32_t hw, int i, uint32_t a[4]) {
  for (int j = 0; j < 4; ++j) {
    const int q = 4 * (i & 1) + j;
    const uint32_t ls = j == 0 ? l : j == 1 ? l << 4 : j == 2 ? l << 8 : l >> 4;
    a[j] = qc_fp6v2_select(ls, hw << (7 - q), 0x0F000F00u) & 0x8F808F80u;
  }
}

/* One lane's 16 lo4 bytes (L[0..3], little-endian words) and 8 hi2 bytes (H[0..1]) -> the FP16 bits
 * of its 16 A registers a[i][j] (MMA i; j = 0: row g, k pair 16 t + 4 i + (0, 1); 1: row g + 8, the
 * same pair; 2, 3: rows g, g + 8 of the pair (2, 3)), each decode(c) * 2^-12 / 2^-14 like v1. */
QC_HD void qc_fp6v2_decode(const uint32_t L[4], const uint32_t H[2], int e2m3, uint32_t a[4][4]) {
  for (int i = 0; i < 4; ++i) {
    if (e2m3)
      qc_fp6v2_e2m3_mma(L[i], H[i >> 1], i, a[i]);
    else
      qc_fp6v2_e3m2_mma(L[i], H[i >> 1], i, a[i]);
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

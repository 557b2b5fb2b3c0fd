/* Decoder of the int4_v2 layout (docs/LAYOUTS.md, version 2): one 32-bit word holds the 8 nibbles of
 * one m16n8k16 A fragment, ordered so that one lop3 per FP16 pair makes the "magic" halves
 * 1024 + u (low path) or 1024 + 16u (high path), u the nibble read as unsigned (INT4 biased by 8).
 * Shared by the W4A16 kernel and the CPU reference; bit operations only, FP16 bits out. */
#ifndef QC_DECODE_V2_H
#define QC_DECODE_V2_H

#include <stddef.h>
#include <stdint.h>

#include "decode.h"

#define QC_W4V2_TILE_BYTES 512 /* 16 output channels x 64 k: one warp's K block */

/* (a & b) ^ c, one LOP3.LUT on the GPU. */
QC_HD uint32_t qc_lop3_and_xor(uint32_t a, uint32_t b, uint32_t c) {
#ifdef __CUDA_ARCH__
  uint32_t r;
  asm("lop3.b32 %0, %1, %2, %3, 0x6a;" : "=r"(r) : "r"(a), "r"(b), "r"(c));  /* (a & b) ^ c */
  return r;
#else
  return (a & b) ^ c;
#endif
}

/* One int4_v2 word -> the FP16x2 magic numbers of its fragment: m[0] row r0 elements (0, 1) and
 * m[2] r0 (2, 3) as 1024 + u; m[1] row r1 (0, 1) and m[3] r1 (2, 3) as 1024 + 16u. The XOR sets
 * the exponent of 1024 and, for INT4, flips the sign bit of the nibble (v -> u = v + 8). */
QC_HD void qc_w4v2_magic(uint32_t w, int fmt, uint32_t m[4]) {
  const uint32_t bias = fmt == QC_FMT_INT4 ? 0x00080008u : 0u;
  const uint32_t lo = 0x64006400u | bias, hi = 0x64006400u | (bias << 4);
  m[0] = qc_lop3_and_xor(w, 0x000F000Fu, lo);
  m[1] = qc_lop3_and_xor(w, 0x00F000F0u, hi);
  w >>= 8;
  m[2] = qc_lop3_and_xor(w, 0x000F000Fu, lo);
  m[3] = qc_lop3_and_xor(w, 0x00F000F0u, hi);
}

/* The integer q = u - zero (INT4: zero 8) from the magic numbers, exact in FP16 arithmetic:
 * low path  q = h - (1024 + zero)                 (one HSUB2),
 * high path q = h * (1 / 16) + -(64 + zero)       (one HFMA2; 1024 + 16u times 2^-4 is exact).
 * Both results are integers in [-15, 15], so the single rounding of each is the identity. */
QC_HD float qc_w4v2_low_offset(int fmt, int zero) { return 1024.0f + (float)(fmt == QC_FMT_INT4 ? 8 : zero); }
QC_HD float qc_w4v2_high_addend(int fmt, int zero) { return -(64.0f + (float)(fmt == QC_FMT_INT4 ? 8 : zero)); }
#define QC_W4V2_HIGH_FACTOR 0.0625f

/* Byte offset of the 16-byte vector of lane (g, t) = lane in the warp tile of output channels
 * [16 nt, 16 nt + 16) and k in [64 kt, 64 kt + 64): word i of it is the A fragment of MMA i,
 * rows 16 nt + g (r0) and 16 nt + g + 8 (r1), k = 64 kt + 16 t + 4 i + (0..3). */
QC_HD size_t qc_w4v2_offset(int nt, int kt, int K, int lane) {
  return ((size_t)nt * (size_t)(K / 64) + (size_t)kt) * QC_W4V2_TILE_BYTES + (size_t)lane * 16;
}

#endif

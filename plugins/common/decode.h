/* Decoders of the packed layouts of docs/LAYOUTS.md, shared by the CUDA kernels and the CPU
 * reference library (plugins/ref), so that the bit operations the kernels run are the ones the
 * CPU tests check against qcompile.packing / ml_dtypes with zero tolerance.
 *
 * Everything works on 32-bit words and returns FP16 / FP8 bit patterns; no float arithmetic
 * happens here (the kernels do that in half2, the reference in float).
 */
#ifndef QC_DECODE_H
#define QC_DECODE_H

#include <stdint.h>

#include "qc_status.h"

#ifdef __CUDACC__
#define QC_HD __host__ __device__ __forceinline__
#else
#define QC_HD static inline
#endif

/* PTX prmt.b32 in its default mode with 3-bit selectors (what __byte_perm does): byte i of the
 * result is byte (sel >> 4i) & 7 of the 8-byte value {b:a}. */
QC_HD uint32_t qc_prmt(uint32_t a, uint32_t b, uint32_t sel) {
#ifdef __CUDA_ARCH__
  return __byte_perm(a, b, sel);
#else
  uint64_t ab = ((uint64_t)b << 32) | a;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= (uint32_t)((ab >> (8 * ((sel >> (4 * i)) & 7))) & 0xFF) << (8 * i);
  return r;
#endif
}

/* ---------------------------------------------------------------- FP6 (fp6_4+2 layout) */

/* Four consecutive FP6 codes -> two words of FP16 bits (element 0 in the low half of *h01).
 * lo16: their 4-bit segments (nibble i = element i); hi8: their 2-bit segments (bits 2i..2i+1).
 * The FP16 value is decode(code) * 2^-12 (E3M2) or * 2^-14 (E2M3), subnormals included. */
QC_HD void qc_fp6_decode4(uint32_t lo16, uint32_t hi8, int e2m3, uint32_t* h01, uint32_t* h23) {
  /* element pairs (0,1) and (2,3): nibbles to bits 0-3 / 16-19, 2-bit fields to bits 0-1 / 16-17 */
  uint32_t n01 = (lo16 & 0x000F) | ((lo16 & 0x00F0) << 12);
  uint32_t n23 = ((lo16 >> 8) & 0x000F) | ((lo16 & 0xF000) << 4);
  uint32_t s01 = (hi8 & 0x03) | ((hi8 & 0x0C) << 14);
  uint32_t s23 = ((hi8 >> 4) & 0x03) | ((hi8 & 0xC0) << 10);
  /* code bit 5 (sign) -> FP16 bit 15; code bits 0-4 -> bits 8-12 (E3M2) or 7-11 (E2M3) */
  uint32_t sh = e2m3 ? 7 : 8;
  *h01 = ((s01 & 0x00020002u) << 14) | ((((s01 & 0x00010001u) << 4) | n01) << sh);
  *h23 = ((s23 & 0x00020002u) << 14) | ((((s23 & 0x00010001u) << 4) | n23) << sh);
}

/* 16 consecutive FP6 codes of one row: lo0/lo1 their `lo4` bytes 0-3/4-7 read as little-endian
 * words, hi their 4 `hi2` bytes -> h[j] = FP16 bits of elements 2j (low half) and 2j+1. */
QC_HD void qc_fp6_decode16(uint32_t lo0, uint32_t lo1, uint32_t hi, int e2m3, uint32_t h[8]) {
  for (int i = 0; i < 4; ++i) {
    uint32_t lo16 = ((i < 2 ? lo0 : lo1) >> (16 * (i & 1))) & 0xFFFF;
    qc_fp6_decode4(lo16, (hi >> (8 * i)) & 0xFF, e2m3, &h[2 * i], &h[2 * i + 1]);
  }
}

/* The exact power of two that turns qc_fp6_decode4's FP16 into decode(code). */
QC_HD float qc_fp6_bias_factor(int e2m3) { return e2m3 ? 16384.0f : 4096.0f; }

/* ---------------------------------------------------------------- 4-bit codes to FP16 (W4A16) */

/* Four consecutive nibbles (nibble i = element i) -> two words of FP16 bits, element 0 low.
 * INT4: 1024 + (v + 8); UINT4: 1024 + u; FP4 E2M1: decode(code) * 2^-14. Finish with
 * (h - qc_w4_half_offset) * qc_w4_half_factor, both exact in FP16. */
QC_HD void qc_w4_decode4_half(uint32_t nib16, int fmt, uint32_t* h01, uint32_t* h23) {
  uint32_t p01 = (nib16 & 0x000F) | ((nib16 & 0x00F0) << 12);
  uint32_t p23 = ((nib16 >> 8) & 0x000F) | ((nib16 & 0xF000) << 4);
  if (fmt == QC_FMT_FP4_E2M1) {
    *h01 = ((p01 & 0x00080008u) << 12) | ((p01 & 0x00070007u) << 9);
    *h23 = ((p23 & 0x00080008u) << 12) | ((p23 & 0x00070007u) << 9);
  } else {
    uint32_t flip = fmt == QC_FMT_INT4 ? 0x00080008u : 0u; /* two's complement v -> v + 8 */
    *h01 = (p01 ^ flip) | 0x64006400u;
    *h23 = (p23 ^ flip) | 0x64006400u;
  }
}

/* 16 consecutive 4-bit codes of one row (their 8 bytes as two little-endian words) -> h[j] =
 * FP16 bits of elements 2j (low half) and 2j+1, before offset and factor. */
QC_HD void qc_w4_decode16_half(uint32_t w0, uint32_t w1, int fmt, uint32_t h[8]) {
  for (int i = 0; i < 4; ++i) {
    uint32_t nib16 = ((i < 2 ? w0 : w1) >> (16 * (i & 1))) & 0xFFFF;
    qc_w4_decode4_half(nib16, fmt, &h[2 * i], &h[2 * i + 1]);
  }
}

QC_HD float qc_w4_half_offset(int fmt, int zero) {
  return fmt == QC_FMT_FP4_E2M1 ? 0.0f : fmt == QC_FMT_INT4 ? 1032.0f : 1024.0f + (float)zero;
}

QC_HD float qc_w4_half_factor(int fmt) { return fmt == QC_FMT_FP4_E2M1 ? 16384.0f : 1.0f; }

/* ---------------------------------------------------------------- 4-bit codes to FP8 E4M3 (W4A8) */

/* Group exponents the conversion is exact for (every code * 2^e an E4M3 number). */
#define QC_W4A8_EXP_MIN_FP4 (-8)
#define QC_W4A8_EXP_MIN_INT4 (-9)
/* Down to these the result stays an E4M3 normal and the LUT is built by one subtraction. */
#define QC_W4A8_FAST_EXP_MIN_FP4 (-5)
#define QC_W4A8_FAST_EXP_MIN_INT4 (-6)

/* E4M3 byte of the code at e = 0. FP4 E2M1 by moving fields: normal (e2, m1) -> (e2 + 6, m1 << 2),
 * the subnormal 0.5 -> (6, 0), zero stays zero. INT4 from a table of the E4M3 codes of -8..7. */
QC_HD uint32_t qc_w4_base_fp8(uint32_t code, int fmt) {
  code &= 0xF;
  if (fmt == QC_FMT_INT4) {
    const uint64_t pos = 0x4E4C4A4844403800ull, neg = 0xB8C0C4C8CACCCED0ull; /* 0..7, -8..-1 */
    return (uint32_t)(((code < 8 ? pos : neg) >> (8 * (code & 7))) & 0xFF);
  }
  uint32_t sign = (code & 8) << 4, e2 = (code >> 1) & 3, m1 = code & 1;
  if (e2 == 0) return sign | (m1 ? (6u << 3) : 0u);
  return sign | ((e2 + 6) << 3) | (m1 << 2);
}

/* Multiply an E4M3 byte by 2^e, e <= 0, by integer arithmetic on its exponent field; results
 * below the normal range become E4M3 subnormals (exact while no mantissa bit is shifted out,
 * i.e. for e >= QC_W4A8_EXP_MIN_*; bits shifted out beyond that are dropped). e is clamped to
 * [-15, 0]. */
QC_HD uint32_t qc_e4m3_scale_pow2(uint32_t b, int e) {
  e = e > 0 ? 0 : (e < -15 ? -15 : e);
  uint32_t sign = b & 0x80, mag = b & 0x7F;
  if (mag == 0) return sign;
  int E = (int)(mag >> 3) + e;
  uint32_t m = mag & 7;
  if (E >= 1) return sign | ((uint32_t)E << 3) | m;
  int shift = 1 - E;
  return sign | (shift >= 4 ? 0u : ((8u | m) >> shift));
}

/* One code -> the E4M3 byte of decode(code) * 2^e (the scalar rule). */
QC_HD uint32_t qc_w4_to_fp8(uint32_t code, int e, int fmt) {
  return qc_e4m3_scale_pow2(qc_w4_base_fp8(code, fmt), e);
}

/* The 16-entry table code -> E4M3 byte for one group exponent, as 4 words (byte j of lut[i] is
 * code 4i + j). In the fast range one subtraction on the exponent fields of the e = 0 table
 * (every nonzero entry has exponent >= 6 (FP4) or 7 (INT4), so no borrow crosses a byte);
 * below it, the scalar rule per code. */
QC_HD void qc_w4a8_lut(int fmt, int e, uint32_t lut[4]) {
  e = e > 0 ? 0 : e;
  int fast_min = fmt == QC_FMT_INT4 ? QC_W4A8_FAST_EXP_MIN_INT4 : QC_W4A8_FAST_EXP_MIN_FP4;
  if (e >= fast_min) {
    uint32_t d = (uint32_t)(-e) << 3;
    if (fmt == QC_FMT_INT4) {
      lut[0] = 0x44403800u - d * 0x01010100u;
      lut[1] = 0x4E4C4A48u - d * 0x01010101u;
      lut[2] = 0xCACCCED0u - d * 0x01010101u;
      lut[3] = 0xB8C0C4C8u - d * 0x01010101u;
    } else {
      lut[0] = 0x3C383000u - d * 0x01010100u;
      lut[1] = 0x4C484440u - d * 0x01010101u;
      lut[2] = 0xBCB8B080u - d * 0x01010100u;
      lut[3] = 0xCCC8C4C0u - d * 0x01010101u;
    }
    return;
  }
  for (int i = 0; i < 4; ++i) {
    uint32_t w = 0;
    for (int j = 0; j < 4; ++j) w |= qc_w4_to_fp8((uint32_t)(4 * i + j), e, fmt) << (8 * j);
    lut[i] = w;
  }
}

/* Eight nibbles of the `nibble` layout (one 32-bit word, element i in bits 4i..4i+3) -> their
 * E4M3 bytes through `lut`: elements 0-3 in *lo, 4-7 in *hi (byte i = element i). */
QC_HD void qc_w4a8_convert8(uint32_t w, const uint32_t lut[4], uint32_t* lo, uint32_t* hi) {
  uint32_t sel = w & 0x77777777u;
  uint32_t p0 = qc_prmt(lut[0], lut[1], sel), n0 = qc_prmt(lut[2], lut[3], sel);
  uint32_t p1 = qc_prmt(lut[0], lut[1], sel >> 16), n1 = qc_prmt(lut[2], lut[3], sel >> 16);
  /* bit 3 of each nibble -> bit 7 of its output byte: even elements sit in the low nibbles */
  uint32_t even = (w & 0x08080808u) << 4, odd = w & 0x80808080u;
  uint32_t m0 = qc_prmt(even, odd, 0x5140), m1 = qc_prmt(even, odd, 0x7362);
  m0 |= m0 - (m0 >> 7); /* 0x80 -> 0xFF in every byte */
  m1 |= m1 - (m1 >> 7);
  *lo = (p0 & ~m0) | (n0 & m0);
  *hi = (p1 & ~m1) | (n1 & m1);
}

#endif

/* FP16x2 bit patterns of the W4A16 dequantization constants, built from the zero point by integer
 * arithmetic inside the kernel's main loop. Each equals the round-to-nearest FP16 of the float
 * constant of decode.h / decode_v2.h (all exact: small integers), checked for every zero point by
 * the ctest qc_w4a16_params_test. */
#ifndef QC_W4A16_PARAMS_H
#define QC_W4A16_PARAMS_H

#include <stdint.h>

#include "decode.h"

/* layout 1: qc_w4_half_offset(fmt, zero) = 1024 + zero (INT4: zero 8), FP4: 0 */
QC_HD uint32_t qc_w4_offset_bits(int fmt, uint32_t zero) {
  return fmt == QC_FMT_FP4_E2M1 ? 0u : (0x6400u + zero) * 0x10001u;
}

/* layout 2, row r0: qc_w4v2_low_offset = 1024 + zero (the ulp of [1024, 2048) is 1) */
QC_HD uint32_t qc_w4v2_low_bits(uint32_t zero) { return (0x6400u + zero) * 0x10001u; }

/* layout 2, row r1: qc_w4v2_high_addend = -(64 + zero) (sign bit, 64 = 0x5400, ulp 1/16) */
QC_HD uint32_t qc_w4v2_high_bits(uint32_t zero) { return (0xD400u + 16u * zero) * 0x10001u; }

/* layout 1, INT4 / UINT4, one byte of a row (codes k, k + 1 in its low / high nibble) placed by a
 * prmt at bytes 0 and 2 and masked by one lop3 to the FP16 pair (1024 + u_lo, 1024 + 16 u_hi):
 * HFMA2(h, {1, 1/16}, {-(1024 + zero), -(64 + zero)}) gives (u_lo - zero, u_hi - zero) exactly, the
 * layout 1 integer of qc_w4_decode16_half minus qc_w4_half_offset. Low half the addend of the low
 * nibble, high half of the high nibble. */
QC_HD uint32_t qc_w4_pair_addend_bits(uint32_t zero) {
  return ((0xD400u + 16u * zero) << 16) | (0xE400u + zero);
}
#define QC_W4_PAIR_FACTOR_BITS 0x2C003C00u /* {1, 1/16}: 1.0 = 0x3C00, 0.0625 = 0x2C00 */
/* the lop3 constant: exponent of 1024 in both halves, INT4's two's complement flip (bit 3 of each
 * nibble: bit 3 low, bit 23 high) */
QC_HD uint32_t qc_w4_pair_magic(int fmt) { return fmt == QC_FMT_INT4 ? 0x64806408u : 0x64006400u; }

/* FP4 E2M1: every value (0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives) is an FP16 whose low byte
 * is 0, so eight codes become FP16 through decode.h's byte lookup (qc_w4a8_convert8: four prmt and a
 * sign select) on this table of high bytes, then one prmt per pair interleaves the zero low bytes.
 * Out: h[j] = the FP16 pair of elements 2j, 2j + 1 of word w (element i in bits 4i .. 4i + 3), the
 * FP4 values exactly (decode.h's qc_w4_decode4_half times qc_w4_half_factor). */
QC_HD void qc_fp4_to_half8(uint32_t w, uint32_t h[4]) {
  const uint32_t lut[4] = {0x3E3C3800u, 0x46444240u, 0xBEBCB880u, 0xC6C4C2C0u};
  uint32_t lo, hi;
  qc_w4a8_convert8(w, lut, &lo, &hi);
  h[0] = qc_prmt(lo, 0u, 0x1404u);
  h[1] = qc_prmt(lo, 0u, 0x3424u);
  h[2] = qc_prmt(hi, 0u, 0x1404u);
  h[3] = qc_prmt(hi, 0u, 0x3424u);
}

#endif

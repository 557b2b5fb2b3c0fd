// ctest: the FP16x2 constants the pipelined W4A16 kernel builds from a zero point by integer
// arithmetic (w4a16_params.h) are, in both halves, the FP16 values of decode.h / decode_v2.h's float
// constants (qc_w4_half_offset, qc_w4v2_low_offset, qc_w4v2_high_addend), for every format and
// zero point 0..15; and the layout 1 pair path (prmt + lop3 + one HFMA2) gives decode.h's integers
// for every byte; and FP4 through a byte table gives decode.h's values (sign of zero included): the
// kernel's arithmetic per weight is the one the CPU tests check.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <initializer_list>

#include "decode.h"
#include "decode_v2.h"
#include "w4a16_params.h"

static int failures = 0;

static double half_value(uint32_t h) {
  int e = (h >> 10) & 0x1F, m = h & 0x3FF;
  double mag = e == 0 ? std::ldexp(m, -24) : std::ldexp(m | 0x400, e - 25);
  return (h & 0x8000) ? -mag : mag;
}

static void expect(uint32_t word, float value, const char* what, int fmt, uint32_t zero) {
  const bool same_halves = (word & 0xFFFF) == (word >> 16);
  if (!same_halves || half_value(word & 0xFFFF) != (double)value) {
    if (failures < 10) std::printf("FAIL %s fmt=%d zero=%u: 0x%08x is not %g\n", what, fmt, zero, word, value);
    ++failures;
  }
}

int main() {
  for (uint32_t z = 0; z < 16; ++z) {
    for (int fmt : {QC_FMT_INT4, QC_FMT_UINT4}) {
      const uint32_t zero = fmt == QC_FMT_INT4 ? 8 : z;  // INT4: the kernel passes 8
      expect(qc_w4_offset_bits(fmt, zero), qc_w4_half_offset(fmt, (int)z), "layout 1 offset", fmt, z);
      expect(qc_w4v2_low_bits(zero), qc_w4v2_low_offset(fmt, (int)z), "int4_v2 low", fmt, z);
      expect(qc_w4v2_high_bits(zero), qc_w4v2_high_addend(fmt, (int)z), "int4_v2 high", fmt, z);
    }
  }
  // the layout 1 pair path: every byte, every zero point, INT4 and UINT4, against decode.h's integer
  for (int fmt : {QC_FMT_INT4, QC_FMT_UINT4}) {
    for (uint32_t z = 0; z < 16; ++z) {
      const uint32_t zero = fmt == QC_FMT_INT4 ? 8 : z;
      const uint32_t add = qc_w4_pair_addend_bits(zero);
      for (uint32_t b = 0; b < 256; ++b) {
        uint32_t h[8];
        qc_w4_decode16_half(b, 0, fmt, h);  // element 0, 1 = low, high nibble of byte 0
        const double off = qc_w4_half_offset(fmt, (int)z);
        const double want_lo = half_value(h[0] & 0xFFFF) - off, want_hi = half_value(h[0] >> 16) - off;
        const uint32_t m = (((b << 16) | b) & 0x00F0000Fu) ^ qc_w4_pair_magic(fmt);  // prmt, then lop3
        // exact: every product and sum below is a small integer or a multiple of 1/16
        const double lo = half_value(m & 0xFFFF) * half_value(QC_W4_PAIR_FACTOR_BITS & 0xFFFF) +
                          half_value(add & 0xFFFF);
        const double hi = half_value(m >> 16) * half_value(QC_W4_PAIR_FACTOR_BITS >> 16) + half_value(add >> 16);
        if (lo != want_lo || hi != want_hi) {
          if (failures < 10) std::printf("FAIL pair fmt=%d zero=%u byte=0x%02x: %g %g, want %g %g\n", fmt, z, b, lo, hi, want_lo, want_hi);
          ++failures;
        }
      }
    }
  }
  // FP4 through the byte table: every code in every position, against decode.h times 2^14
  for (int pos = 0; pos < 8; ++pos)
    for (uint32_t code = 0; code < 16; ++code)
      for (uint32_t background : {0x00000000u, 0x12345678u, 0xFFFFFFFFu, 0x9ABCDEF0u}) {
        const uint32_t w = (background & ~(0xFu << (4 * pos))) | (code << (4 * pos));
        uint32_t got[4], ref[8];
        qc_fp4_to_half8(w, got);
        qc_w4_decode16_half(w, 0, QC_FMT_FP4_E2M1, ref);
        for (int j = 0; j < 4; ++j)
          for (int half = 0; half < 2; ++half) {
            const double g = half_value((got[j] >> (16 * half)) & 0xFFFF);
            const double r = half_value((ref[j] >> (16 * half)) & 0xFFFF) * qc_w4_half_factor(QC_FMT_FP4_E2M1);
            const bool neg_zero_ok = g == 0 && r == 0 && (((got[j] >> (16 * half)) ^ (ref[j] >> (16 * half))) & 0x8000) == 0;
            if (g != r || (g == 0 && !neg_zero_ok)) {
              if (failures < 10) std::printf("FAIL fp4 w=0x%08x pair %d half %d: %g, want %g\n", w, j, half, g, r);
              ++failures;
            }
          }
      }
  expect(qc_w4_offset_bits(QC_FMT_FP4_E2M1, 0), qc_w4_half_offset(QC_FMT_FP4_E2M1, 0), "fp4 offset",
         QC_FMT_FP4_E2M1, 0);
  if (!failures) std::printf("w4a16_params_test: ok\n");
  return failures != 0;
}

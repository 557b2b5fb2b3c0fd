// ctest: the FP16x2 constants the pipelined W4A16 kernel builds from a zero point by integer
// arithmetic (w4a16_params.h) are, in both halves, the FP16 values of decode.h / decode_v2.h's float
// constants (qc_w4_half_offset, qc_w4v2_low_offset, qc_w4v2_high_addend), for every format and
// zero point 0..15: the kernel's arithmetic per weight is the one the CPU tests check.
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
  expect(qc_w4_offset_bits(QC_FMT_FP4_E2M1, 0), qc_w4_half_offset(QC_FMT_FP4_E2M1, 0), "fp4 offset",
         QC_FMT_FP4_E2M1, 0);
  if (!failures) std::printf("w4a16_params_test: ok\n");
  return failures != 0;
}

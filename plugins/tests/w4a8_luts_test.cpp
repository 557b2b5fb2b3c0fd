// ctest: the W4A8 kernel's precomputed E4M3 tables (w4a8_luts.h) are decode.h's qc_w4a8_lut, for
// both formats and every group exponent from -20 to 3 (clamped ones included).
#include <cstdint>
#include <cstdio>
#include <initializer_list>

#include "decode.h"
#include "w4a8_luts.h"

static const uint32_t kTable[32][4] = {QC_W4A8_LUT_TABLE};

int main() {
  int failures = 0;
  for (int fmt : {QC_FMT_FP4_E2M1, QC_FMT_INT4})
    for (int e = -20; e <= 3; ++e) {
      uint32_t want[4];
      qc_w4a8_lut(fmt, e, want);
      const uint32_t* got = kTable[qc_w4a8_lut_index(fmt, e)];
      for (int i = 0; i < 4; ++i)
        if (got[i] != want[i] && failures++ < 10)
          std::printf("FAIL fmt=%d e=%d word %d: 0x%08x, want 0x%08x\n", fmt, e, i, got[i], want[i]);
    }
  if (!failures) std::printf("w4a8_luts_test: ok\n");
  return failures != 0;
}

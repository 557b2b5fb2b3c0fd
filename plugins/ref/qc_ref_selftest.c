/* ctest: a few fixed values of the reference decoders, from C (no Python needed). */
#include <stdio.h>

#include "qc_ref.h"
#include "w4a16.h"
#include "w4a8.h"
#include "w6a16.h"

static int failures = 0;
#define EXPECT(cond) do { if (!(cond)) { printf("FAIL %s:%d %s\n", __FILE__, __LINE__, #cond); ++failures; } } while (0)

int main(void) {
  /* FP4 E2M1 6.0 (code 7) * 2^0 -> E4M3 0x4C; -0.5 (code 9) * 2^-8 -> smallest negative subnormal 0x81 */
  uint8_t codes[3] = {7, 9, 7}, out[3];
  int8_t exps[3] = {0, -8, -3};
  EXPECT(qc_ref_w4_to_fp8(codes, exps, 3, QC_FMT_FP4_E2M1, out) == QC_OK);
  EXPECT(out[0] == 0x4C && out[1] == 0x81 && out[2] == 0x34);
  /* E3M2 code 0x1F = 28 -> FP16 bits of 28 * 2^-12 */
  uint8_t c6 = 0x1F;
  uint16_t h;
  EXPECT(qc_ref_fp6_to_half_bits(&c6, 1, QC_FMT_FP6_E3M2, &h) == QC_OK && h == 0x1F00);
  float x = 500.0f;
  EXPECT(qc_ref_float_to_e4m3(&x, 1, 1.0f, out) == QC_OK && out[0] == 0x7E);
  EXPECT(qc_w6a16_check_shape(1, 8, 96, QC_FMT_FP6_E3M2, 1) == QC_ERR_SHAPE);
  EXPECT(qc_w6a16_check_shape(1, 8, 128, QC_FMT_FP6_E2M3, 2) == QC_ERR_SHAPE);
  EXPECT(qc_w6a16_check_shape(1, 16, 128, QC_FMT_FP6_E2M3, 2) == QC_OK);
  EXPECT(qc_w6a16_check_shape(1, 16, 128, QC_FMT_FP6_E3M2, 3) == QC_ERR_ARG);
  EXPECT(qc_w4a16_check_shape(1, 8, 128, 48, QC_FMT_INT4, 0, 1) == QC_ERR_ARG);
  EXPECT(qc_w4a16_check_shape(1, 8, 128, 32, QC_FMT_INT4, 0, 2) == QC_ERR_SHAPE);
  EXPECT(qc_w4a16_check_shape(1, 16, 128, 32, QC_FMT_FP4_E2M1, 0, 2) == QC_ERR_FORMAT);
  EXPECT(qc_w4a16_check_shape(1, 16, 128, 64, QC_FMT_INT4, 0, 3) == QC_OK);
  EXPECT(qc_w4a16_check_shape(1, 16, 128, 32, QC_FMT_INT4, 0, 3) == QC_ERR_ARG);
  EXPECT(qc_w4a16_check_shape(1, 8, 128, 64, QC_FMT_UINT4, 1, 3) == QC_ERR_SHAPE);
  EXPECT(qc_w4a16_check_shape(1, 16, 128, 64, QC_FMT_FP4_E2M1, 0, 3) == QC_ERR_FORMAT);
  EXPECT(qc_w4a16_check_shape(1, 16, 128, 64, QC_FMT_INT4, 0, 4) == QC_ERR_ARG);
  EXPECT(qc_w4a8_check_shape(1, 12, 128, 32, QC_FMT_INT4, QC_ACT_PER_TOKEN) == QC_ERR_SHAPE);
  if (!failures) printf("qc_ref selftest: ok\n");
  return failures != 0;
}

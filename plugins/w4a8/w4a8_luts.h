/* The 16-entry code -> E4M3 tables of decode.h's qc_w4a8_lut for every group exponent the
 * conversion distinguishes: row 16 f + i is format f (0 FP4 E2M1, 1 INT4) at e = -i; e > 0 acts as
 * 0 and e < -15 as -15 (qc_e4m3_scale_pow2's clamp), so qc_w4a8_lut_index covers every int8. The
 * W4A8 kernel reads its tables from here (one 16-byte load per row and group instead of building
 * them); the ctest qc_w4a8_luts_test checks every entry against qc_w4a8_lut. Generated with
 * qc_w4a8_lut. */
#ifndef QC_W4A8_LUTS_H
#define QC_W4A8_LUTS_H

#include "decode.h"

QC_HD int qc_w4a8_lut_index(int fmt, int e) {
  const int i = e > 0 ? 0 : (e < -15 ? 15 : -e);
  return (fmt == QC_FMT_INT4 ? 16 : 0) + i;
}

#define QC_W4A8_LUT_TABLE \
  /* FP4 E2M1 */ \
  {0x3C383000u, 0x4C484440u, 0xBCB8B080u, 0xCCC8C4C0u}, /* e = -0 */ \
  {0x34302800u, 0x44403C38u, 0xB4B0A880u, 0xC4C0BCB8u}, /* e = -1 */ \
  {0x2C282000u, 0x3C383430u, 0xACA8A080u, 0xBCB8B4B0u}, /* e = -2 */ \
  {0x24201800u, 0x34302C28u, 0xA4A09880u, 0xB4B0ACA8u}, /* e = -3 */ \
  {0x1C181000u, 0x2C282420u, 0x9C989080u, 0xACA8A4A0u}, /* e = -4 */ \
  {0x14100800u, 0x24201C18u, 0x94908880u, 0xA4A09C98u}, /* e = -5 */ \
  {0x0C080400u, 0x1C181410u, 0x8C888480u, 0x9C989490u}, /* e = -6 */ \
  {0x06040200u, 0x14100C08u, 0x86848280u, 0x94908C88u}, /* e = -7 */ \
  {0x03020100u, 0x0C080604u, 0x83828180u, 0x8C888684u}, /* e = -8 */ \
  {0x01010000u, 0x06040302u, 0x81818080u, 0x86848382u}, /* e = -9 */ \
  {0x00000000u, 0x03020101u, 0x80808080u, 0x83828181u}, /* e = -10 */ \
  {0x00000000u, 0x01010000u, 0x80808080u, 0x81818080u}, /* e = -11 */ \
  {0x00000000u, 0x00000000u, 0x80808080u, 0x80808080u}, /* e = -12 */ \
  {0x00000000u, 0x00000000u, 0x80808080u, 0x80808080u}, /* e = -13 */ \
  {0x00000000u, 0x00000000u, 0x80808080u, 0x80808080u}, /* e = -14 */ \
  {0x00000000u, 0x00000000u, 0x80808080u, 0x80808080u}, /* e = -15 */ \
  /* INT4 */ \
  {0x44403800u, 0x4E4C4A48u, 0xCACCCED0u, 0xB8C0C4C8u}, /* e = -0 */ \
  {0x3C383000u, 0x46444240u, 0xC2C4C6C8u, 0xB0B8BCC0u}, /* e = -1 */ \
  {0x34302800u, 0x3E3C3A38u, 0xBABCBEC0u, 0xA8B0B4B8u}, /* e = -2 */ \
  {0x2C282000u, 0x36343230u, 0xB2B4B6B8u, 0xA0A8ACB0u}, /* e = -3 */ \
  {0x24201800u, 0x2E2C2A28u, 0xAAACAEB0u, 0x98A0A4A8u}, /* e = -4 */ \
  {0x1C181000u, 0x26242220u, 0xA2A4A6A8u, 0x90989CA0u}, /* e = -5 */ \
  {0x14100800u, 0x1E1C1A18u, 0x9A9C9EA0u, 0x88909498u}, /* e = -6 */ \
  {0x0C080400u, 0x16141210u, 0x92949698u, 0x84888C90u}, /* e = -7 */ \
  {0x06040200u, 0x0E0C0A08u, 0x8A8C8E90u, 0x82848688u}, /* e = -8 */ \
  {0x03020100u, 0x07060504u, 0x85868788u, 0x81828384u}, /* e = -9 */ \
  {0x01010000u, 0x03030202u, 0x82838384u, 0x80818182u}, /* e = -10 */ \
  {0x00000000u, 0x01010101u, 0x81818182u, 0x80808081u}, /* e = -11 */ \
  {0x00000000u, 0x00000000u, 0x80808081u, 0x80808080u}, /* e = -12 */ \
  {0x00000000u, 0x00000000u, 0x80808080u, 0x80808080u}, /* e = -13 */ \
  {0x00000000u, 0x00000000u, 0x80808080u, 0x80808080u}, /* e = -14 */ \
  {0x00000000u, 0x00000000u, 0x80808080u, 0x80808080u}, /* e = -15 */ \

#endif

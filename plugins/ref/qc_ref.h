/* CPU reference library (qc_ref): decodes the packed layouts with the same decode.h functions the
 * CUDA kernels run, for tests on machines without a GPU. All arrays host, C-contiguous.
 * FP16 values are passed as their uint16 bit patterns. Every function returns a QC_* status. */
#ifndef QC_REF_H
#define QC_REF_H

#include <stdint.h>

#include "qc_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* FP6 codes (one per byte) -> FP16 bits of decode(code) * 2^-12 (E3M2) / 2^-14 (E2M3). */
int qc_ref_fp6_to_half_bits(const uint8_t* codes, long long n, int format, uint16_t* out);

/* out[N,K] = decode(W) * scales[n], W in layout 1 (fp6_4+2) or 2 (fp6_v2, through fp6_v2.h). */
int qc_ref_decode_w6a16(const uint8_t* lo4, const uint8_t* hi2, const uint16_t* scales, int N,
                        int K, int format, int layout, float* out);

/* out[N,K] = (decode(W) - zero) * scale[n, k/g]; zeros may be NULL; W in layout 1 (nibble), 2
 * (int4_v2, through decode_v2.h) or 3 (int4_sm90, reordered to layout 1 through int4_sm90.h). */
int qc_ref_decode_w4a16(const uint8_t* w, const uint16_t* scales, const uint8_t* zeros, int N,
                        int K, int group_size, int format, int layout, float* out);

/* out[i] = E4M3 byte of decode(codes[i]) * 2^exps[i] by the scalar integer rule. */
int qc_ref_w4_to_fp8(const uint8_t* codes, const int8_t* exps, long long n, int format, uint8_t* out);

/* The 16-entry code -> E4M3 table the kernels build for one group exponent. */
int qc_ref_w4a8_lut(int format, int e, uint8_t out[16]);

/* out_bytes[N,K] = the E4M3 weight operand the W4A8 kernel feeds its MMA (through the LUT and
 * the 8-nibble conversion of decode.h). */
int qc_ref_decode_w4a8_fp8(const uint8_t* w, const int8_t* group_exp, int N, int K, int group_size,
                           int format, uint8_t* out_bytes);

/* out[i] = E4M3 byte of x[i] * inv_scale (float32 product), round to nearest even, saturating
 * at +-448, NaN -> 0x7F: the activation rounding of the W4A8 kernel. */
int qc_ref_float_to_e4m3(const float* x, long long n, float inv_scale, uint8_t* out);

/* Value of E4M3 bytes as float32. */
int qc_ref_e4m3_to_float(const uint8_t* b, long long n, float* out);

/* y[M,N] = x[M,K] @ w[N,K]^T in float32 (plain loops, for small checks). */
int qc_ref_gemm_f32(const float* x, const float* w, int M, int N, int K, float* y);

#ifdef __cplusplus
}
#endif
#endif

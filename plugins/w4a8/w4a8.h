/* W4A8 GEMM (ZeroQuant-FP): y[M,N] = fp8(x / s_act) @ fp8(decode(W) * 2^group_exp)^T
 * * s_act * channel_scale[n], FP8 E4M3 tensor cores (sm_89+). */
#ifndef QC_W4A8_H
#define QC_W4A8_H

#include <stddef.h>
#include <stdint.h>

#include "qc_status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct CUstream_st;

/* M >= 0, N > 0 and a multiple of 8, group_size in {32, 64, 128}, K > 0 and a multiple of
 * group_size; format QC_FMT_INT4 or QC_FMT_FP4_E2M1; act_quant QC_ACT_PER_TENSOR or
 * QC_ACT_PER_TOKEN (else QC_ERR_ARG). */
int qc_w4a8_check_shape(int M, int N, int K, int group_size, int format, int act_quant);

/* Host check of a group_exp array (count entries): QC_ERR_FORMAT unless every e is in
 * [QC_W4A8_EXP_MIN_FP4 (-8) or _INT4 (-9), 0], the range where the FP8 conversion is exact. */
int qc_w4a8_check_group_exp(const int8_t* group_exp, long long count, int format);

/* Per token, M fp32 row scales, then the split-K partial sums and per-tile counters; non-decreasing
 * in M (enough for every M' <= M). */
size_t qc_w4a8_workspace_size(int M, int N, int K, int group_size, int act_quant);

/* x fp16 [M,K], w uint8 [N,K/2], group_exp int8 [N,K/g], channel_scale fp32 [N], act_scale fp32
 * [1] (per-tensor; unused per token), y fp16 [M,N]; x/w/workspace 16-byte aligned. Returns
 * QC_ERR_UNSUPPORTED_ARCH below compute capability 8.9, QC_ERR_WORKSPACE if a per-token run gets
 * less than 256-rounded M*4 bytes. */
int qc_w4a8_gemm(const void* x, const void* w, const void* group_exp, const void* channel_scale,
                 const void* act_scale, void* y, int M, int N, int K, int group_size, int format,
                 int act_quant, void* workspace, size_t workspace_bytes, struct CUstream_st* stream);

#ifdef __cplusplus
}
#endif
#endif

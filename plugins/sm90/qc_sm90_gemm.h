/* Hopper (sm_90a) paths of W4A16 and W4A8 on CUTLASS's SM90 mixed-input GEMM: TMA loads,
 * warp-specialized producer / consumer warpgroups, weights converted in registers and fed to
 * register-sourced wgmma; stream-K over the SMs. Built only when CUTLASS is found and
 * QC_CUDA_ARCHS has 90a (plugins/sm90/README.md).
 *
 * The entry points take the arguments of qc_w4a16_gemm / qc_w4a8_gemm, after those have checked
 * shapes, pointers and alignment. A call this path does not take returns QC_SM90_FALLBACK and
 * touches nothing: the caller runs its own kernel. Other codes are final (QC_OK, QC_ERR_CUDA). */
#ifndef QC_SM90_GEMM_H
#define QC_SM90_GEMM_H

#include <stddef.h>

#include "qc_status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct CUstream_st;

/* Not taken here (format, group size, shape, workspace or device): run the sm_80/89 kernel. */
#define QC_SM90_FALLBACK (-1)

/* 1 when this library holds the sm_90a kernels and the current device is compute capability 9.0,
 * else 0. */
int qc_sm90_available(void);

/* Workspace the sm_90a W4A16 path needs for this M and every M' <= M: the group scales (and zero
 * offsets) transposed for TMA, plus CUTLASS's stream-K partials for the current device. A smaller
 * workspace that still holds the scales runs without stream-K (one CTA per output tile); one that
 * does not returns QC_SM90_FALLBACK. 0 when the path does not take this shape. */
size_t qc_sm90_w4a16_workspace_size(int M, int N, int K, int group_size, int format, int has_zeros);

/* qc_w4a16_gemm's arguments. Takes INT4 (ConvertAndScale) and UINT4 with or without zeros
 * (ConvertAndScaleWithZero) in layout 1 (nibble) or 3 (int4_sm90, N a multiple of 16), group size 64
 * or 128; everything else (FP4, layout 2, group 32) falls back. */
int qc_sm90_w4a16_gemm(const void* x, const void* w, const void* scales, const void* zeros, void* y,
                       int M, int N, int K, int group_size, int format, int layout, void* workspace,
                       size_t workspace_bytes, struct CUstream_st* stream);

/* Workspace of the sm_90a W4A8 path for this M and every M' <= M: the activations quantized to
 * FP8 (M*K bytes), the M row scales, the per-group FP8 tables, plus CUTLASS's stream-K partials
 * (as for W4A16). 0 when the path does not take this shape. */
size_t qc_sm90_w4a8_workspace_size(int M, int N, int K, int group_size, int format, int act_quant);

/* qc_w4a8_gemm's arguments. Takes FP4 E2M1 (layout 1) with group size 128 (a multiple of the
 * 128-wide K tile), both activation modes; INT4 and other group sizes fall back. */
int qc_sm90_w4a8_gemm(const void* x, const void* w, const void* group_exp, const void* channel_scale,
                      const void* act_scale, void* y, int M, int N, int K, int group_size, int format,
                      int act_quant, void* workspace, size_t workspace_bytes, struct CUstream_st* stream);

#ifdef __cplusplus
}
#endif
#endif

/* W4A16 GEMM: y[M,N] = x[M,K] @ ((decode(W) - zero) * scale[n, k/g])^T, W in the nibble layout
 * (layout 1), int4_v2 (layout 2) or int4_sm90 (layout 3, Hopper only), docs/LAYOUTS.md. */
#ifndef QC_W4A16_H
#define QC_W4A16_H

#include <stddef.h>

#include "qc_status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct CUstream_st;

/* M >= 0, N > 0 and a multiple of 8, group_size in {32, 64, 128} (else QC_ERR_ARG), K > 0 and a
 * multiple of group_size; format QC_FMT_INT4, QC_FMT_UINT4 or QC_FMT_FP4_E2M1; has_zeros only
 * with UINT4 (else QC_ERR_FORMAT); layout 1, 2 or 3 (else QC_ERR_ARG). Layout 2: INT4 or UINT4 only
 * (else QC_ERR_FORMAT), N a multiple of 16 and K of 64 (else QC_ERR_SHAPE). Layout 3 (what the
 * sm_90a path takes): group_size 64 or 128 (else QC_ERR_ARG), INT4 or UINT4 only (else
 * QC_ERR_FORMAT), N and K multiples of 16 (else QC_ERR_SHAPE). */
int qc_w4a16_check_shape(int M, int N, int K, int group_size, int format, int has_zeros, int layout);

/* Split-K bytes (fp32 partial sums, then per-tile counters; split-K finishes inside the one launch)
 * for every M' <= M: non-decreasing in M (one reservation per profile). */
size_t qc_w4a16_workspace_size(int M, int N, int K, int group_size);

/* x fp16 [M,K], w uint8 [N,K/2] (layout 1, 2 or 3), scales fp16 [N,K/g], zeros uint8 [N,K/g] or NULL,
 * y fp16 [M,N]; x/w/workspace 16-byte aligned. A workspace smaller than qc_w4a16_workspace_size only
 * disables split-K. Layout 3 runs on the sm_90a path only: QC_ERR_UNSUPPORTED_ARCH where it
 * declines (another device, a library without sm_90a code, a workspace or alignment it refuses). */
int qc_w4a16_gemm(const void* x, const void* w, const void* scales, const void* zeros, void* y,
                  int M, int N, int K, int group_size, int format, int layout, void* workspace,
                  size_t workspace_bytes, struct CUstream_st* stream);

#ifdef __cplusplus
}
#endif
#endif

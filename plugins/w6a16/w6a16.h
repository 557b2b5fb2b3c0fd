/* W6A16 GEMM: y[M,N] = x[M,K] @ (decode(W) * scales[n])^T, FP6 weights in the fp6_4+2 layout (layout 1)
 * or fp6_v2 (layout 2), docs/LAYOUTS.md. */
#ifndef QC_W6A16_H
#define QC_W6A16_H

#include <stddef.h>

#include "qc_status.h"

#ifdef __cplusplus
extern "C" {
#endif

struct CUstream_st; /* cudaStream_t is `struct CUstream_st*` */

/* M >= 0 (0: nothing to do), N > 0 and a multiple of 8, K > 0 and a multiple of 64;
 * format QC_FMT_FP6_E3M2 or QC_FMT_FP6_E2M3; layout 1 or 2 (else QC_ERR_ARG); layout 2: N a
 * multiple of 16 (else QC_ERR_SHAPE). Returns a QC_* status. */
int qc_w6a16_check_shape(int M, int N, int K, int format, int layout);

/* Bytes of workspace for split-K at every M' <= M (fp32 partial sums, then per-tile counters; split-K
 * finishes inside the one launch): non-decreasing in M, so one reservation for a profile's largest
 * M serves every smaller M; 0 when no M' <= M splits. */
size_t qc_w6a16_workspace_size(int M, int N, int K);

/* x fp16 [M,K], w_lo4 uint8 [N,K/2], w_hi2 uint8 [N,K/4] (layout 1 or 2), scales fp16 [N], y fp16
 * [M,N]; all device pointers, x/w_lo4/w_hi2/workspace 16-byte aligned. A workspace smaller than
 * qc_w6a16_workspace_size only disables split-K. */
int qc_w6a16_gemm(const void* x, const void* w_lo4, const void* w_hi2, const void* scales, void* y,
                  int M, int N, int K, int format, int layout, void* workspace, size_t workspace_bytes,
                  struct CUstream_st* stream);

#ifdef __cplusplus
}
#endif
#endif

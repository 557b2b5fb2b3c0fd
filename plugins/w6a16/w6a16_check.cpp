// Host-side shape rules and workspace size of qc_w6a16_gemm (built into qc_ref and qc_kernels).
#include "w6a16.h"
#include "split_k.h"

extern "C" int qc_w6a16_check_shape(int M, int N, int K, int format, int layout) {
  if (format != QC_FMT_FP6_E3M2 && format != QC_FMT_FP6_E2M3) return QC_ERR_FORMAT;
  if (layout != 1 && layout != 2) return QC_ERR_ARG;
  if (M < 0 || N <= 0 || K <= 0 || N % 8 || K % 64) return QC_ERR_SHAPE;
  if (layout == 2 && N % 16) return QC_ERR_SHAPE;
  return QC_OK;
}

extern "C" size_t qc_w6a16_workspace_size(int M, int N, int K) {
  if (qc_w6a16_check_shape(M, N, K, QC_FMT_FP6_E3M2, 1) != QC_OK || M == 0) return 0;
  return qc_splitk_bytes_upto(M, N, K, 64);
}

// Host-side shape rules and workspace size of qc_w4a16_gemm (built into qc_ref and qc_kernels).
#include "w4a16.h"
#include "split_k.h"

extern "C" int qc_w4a16_check_shape(int M, int N, int K, int group_size, int format, int has_zeros, int layout) {
  if (format != QC_FMT_INT4 && format != QC_FMT_UINT4 && format != QC_FMT_FP4_E2M1) return QC_ERR_FORMAT;
  if (has_zeros && format != QC_FMT_UINT4) return QC_ERR_FORMAT;
  if (group_size != 32 && group_size != 64 && group_size != 128) return QC_ERR_ARG;
  if (layout != 1 && layout != 2 && layout != 3) return QC_ERR_ARG;
  if (layout == 3 && group_size == 32) return QC_ERR_ARG;  // the sm_90a path takes groups of 64 and 128
  if (M < 0 || N <= 0 || K <= 0 || N % 8 || K % group_size) return QC_ERR_SHAPE;
  if (layout != 1 && format == QC_FMT_FP4_E2M1) return QC_ERR_FORMAT;
  if (layout == 2 && (N % 16 || K % 64)) return QC_ERR_SHAPE;
  if (layout == 3 && (N % 16 || K % 16)) return QC_ERR_SHAPE;
  return QC_OK;
}

extern "C" size_t qc_w4a16_workspace_size(int M, int N, int K, int group_size) {
  if (qc_w4a16_check_shape(M, N, K, group_size, QC_FMT_INT4, 0, 1) != QC_OK || M == 0) return 0;
  return qc_splitk_bytes_upto(M, N, K, QC_W4A16_K_BLOCK);
}

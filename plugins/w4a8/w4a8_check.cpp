// Host-side shape rules, group-exponent check and workspace size of qc_w4a8_gemm.
#include "decode.h"
#include "split_k.h"
#include "w4a8.h"

extern "C" int qc_w4a8_check_shape(int M, int N, int K, int group_size, int format, int act_quant) {
  if (format != QC_FMT_INT4 && format != QC_FMT_FP4_E2M1) return QC_ERR_FORMAT;
  if (act_quant != QC_ACT_PER_TENSOR && act_quant != QC_ACT_PER_TOKEN) return QC_ERR_ARG;
  if (group_size != 32 && group_size != 64 && group_size != 128) return QC_ERR_ARG;
  if (M < 0 || N <= 0 || K <= 0 || N % 8 || K % group_size) return QC_ERR_SHAPE;
  return QC_OK;
}

extern "C" int qc_w4a8_check_group_exp(const int8_t* group_exp, long long count, int format) {
  if (format != QC_FMT_INT4 && format != QC_FMT_FP4_E2M1) return QC_ERR_FORMAT;
  if (count > 0 && !group_exp) return QC_ERR_NULL;
  int lo = format == QC_FMT_INT4 ? QC_W4A8_EXP_MIN_INT4 : QC_W4A8_EXP_MIN_FP4;
  for (long long i = 0; i < count; ++i)
    if (group_exp[i] < lo || group_exp[i] > 0) return QC_ERR_FORMAT;
  return QC_OK;
}

/* per-token row scales first (256-byte aligned), then the split-K partial sums */
extern "C" size_t qc_w4a8_workspace_size(int M, int N, int K, int group_size, int act_quant) {
  if (qc_w4a8_check_shape(M, N, K, group_size, QC_FMT_FP4_E2M1, act_quant) != QC_OK || M == 0) return 0;
  size_t rows = act_quant == QC_ACT_PER_TOKEN ? qc_align256((size_t)M * sizeof(float)) : 0;
  return rows + qc_splitk_bytes_upto(M, N, K, 128);
}

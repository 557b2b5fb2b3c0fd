// qc_w4a8_gemm when no sm_89+ architecture was compiled: shapes are still checked.
#include "w4a8.h"

extern "C" int qc_w4a8_gemm(const void*, const void*, const void*, const void*, const void*, void*, int M,
                            int N, int K, int group_size, int format, int act_quant, void*, size_t,
                            struct CUstream_st*) {
  int st = qc_w4a8_check_shape(M, N, K, group_size, format, act_quant);
  return st != QC_OK ? st : QC_ERR_UNSUPPORTED_ARCH;
}

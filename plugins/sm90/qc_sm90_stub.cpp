// The sm_90a CUTLASS path left out of this build (no 90a in QC_CUDA_ARCHS, or CUTLASS not found):
// every call falls back to the sm_80/89 kernels.
#include "qc_sm90_gemm.h"

extern "C" int qc_sm90_available(void) { return 0; }

extern "C" size_t qc_sm90_w4a16_workspace_size(int, int, int, int, int, int) { return 0; }

extern "C" int qc_sm90_w4a16_gemm(const void*, const void*, const void*, const void*, void*, int, int, int, int,
                                  int, int, void*, size_t, struct CUstream_st*) {
  return QC_SM90_FALLBACK;
}

extern "C" size_t qc_sm90_w4a8_workspace_size(int, int, int, int, int, int) { return 0; }

extern "C" int qc_sm90_w4a8_gemm(const void*, const void*, const void*, const void*, const void*, void*, int, int,
                                 int, int, int, int, void*, size_t, struct CUstream_st*) {
  return QC_SM90_FALLBACK;
}

// Device checks of the sm_90a path: this file is built only with the sm_90a kernels, so their
// presence is known here; the device must be compute capability 9.0 exactly (sm_90a code runs on
// no other architecture).
#include <cuda_runtime.h>

#include "qc_sm90_gemm.h"
#include "sm90_common.h"

extern "C" int qc_sm90_available(void) {
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 0;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess)
    return 0;
  return major == 9 && minor == 0;
}

int qc_sm90_sm_count() {
  int dev = 0, count = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return -1;
  if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) return -1;
  return count;
}

// W4A16 on Hopper (sm_90a), layout 3 (int4_sm90, docs/LAYOUTS.md): the weights pre-shuffled in
// CUTLASS's reordering atom (sm90_mixed_gemm.cuh, ShuffleAtom), so that each thread's 8 weights of
// a wgmma are one 32-bit shared-memory load and CUTLASS's [0,2,4,6,1,3,5,7] INT4 -> FP16 converter
// applies. Its own translation unit: four more CUTLASS instantiations, compiled beside layout 1's.
#include "sm90_w4a16_launch.cuh"

int qc_sm90_w4a16_run_shuffled(bool uint4, bool small, const void* x, const void* w, const void* scales,
                               const void* zeros, void* y, int M, int N, int K, int group_size, int sm_count,
                               void* workspace, size_t workspace_bytes, CUstream_st* stream) {
  return run<true>(uint4, small, x, w, scales, zeros, y, M, N, K, group_size, sm_count, workspace,
                            workspace_bytes, stream);
}

// W4A16 on Hopper (sm_90a), the entry point: CUTLASS's SM90 mixed-input GEMM for INT4 / UINT4 in
// layout 1 (nibble; CUTLASS's int4b_t / uint4b_t packing is the same: element 2j in bits 0-3 of
// byte j) and, through qc_sm90_w4a16_shuffled.cu, layout 3 (int4_sm90). Launch and numerics:
// sm90_w4a16_launch.cuh.
#include "sm90_w4a16_launch.cuh"

namespace {

struct Plan {
  bool taken;
  bool uint4;
  bool small;     // 16-token tile (M <= 16), else 128
  bool shuffled;  // layout 3 (int4_sm90)
};

Plan plan(int M, int N, int K, int group_size, int format, int layout) {
  Plan p{false, format == QC_FMT_UINT4, M <= 16, layout == 3};
  // K tile 64: the group must be a multiple of it (CUTLASS reloads scales per K tile). Layout 3
  // (int4_sm90) is cut in 16 x 16 atoms.
  p.taken = M > 0 && N > 0 && N % 8 == 0 && K > 0 && (layout == 1 || (layout == 3 && N % 16 == 0)) &&
            (format == QC_FMT_INT4 || format == QC_FMT_UINT4) && (group_size == 64 || group_size == 128) &&
            K % group_size == 0;
  return p;
}

}  // namespace

extern "C" size_t qc_sm90_w4a16_workspace_size(int M, int N, int K, int group_size, int format, int has_zeros) {
  (void)has_zeros;  // UINT4 always runs the zero mode (z' = 0 without zeros)
  const Plan p = plan(M, N, K, group_size, format, 1);
  const int sm_count = qc_sm90_sm_count();
  if (!p.taken || sm_count <= 0) return 0;
  // CUTLASS's part depends on the tile scheduler only (tile shape, problem, SMs), the same for the
  // layout 1 and layout 3 kernels and for INT4 and UINT4; below 17 tokens the 16-token kernel runs.
  const size_t cut = M <= 16 ? cutlass_bytes_upto<Int4Gemm<false, 16>>(M, N, K, group_size, sm_count, 16)
                             : cutlass_bytes_upto<Int4Gemm<false, 128>>(M, N, K, group_size, sm_count, 128);
  const size_t small = M > 16 ? cutlass_bytes_upto<Int4Gemm<false, 16>>(16, N, K, group_size, sm_count, 16) : 0;
  return scale_bytes(N, K, group_size, p.uint4) + (cut > small ? cut : small);
}

extern "C" int qc_sm90_w4a16_gemm(const void* x, const void* w, const void* scales, const void* zeros, void* y,
                                  int M, int N, int K, int group_size, int format, int layout, void* workspace,
                                  size_t workspace_bytes, struct CUstream_st* stream) {
  const Plan p = plan(M, N, K, group_size, format, layout);
  if (!p.taken || !qc_sm90_available() || !x || !w || !scales || !y) return QC_SM90_FALLBACK;
  // TMA: 16-byte aligned global addresses (qc_w4a16_gemm asks y for 2 bytes only)
  if (((size_t)x & 15) || ((size_t)w & 15) || ((size_t)y & 15)) return QC_SM90_FALLBACK;
  if (zeros && !p.uint4) return QC_SM90_FALLBACK;
  if (!workspace || workspace_bytes < scale_bytes(N, K, group_size, p.uint4) || ((size_t)workspace & 15))
    return QC_SM90_FALLBACK;
  const int sm_count = qc_sm90_sm_count();
  if (sm_count <= 0) return QC_ERR_CUDA;
  if (p.shuffled)
    return qc_sm90_w4a16_run_shuffled(p.uint4, p.small, x, w, scales, zeros, y, M, N, K, group_size, sm_count,
                                      workspace, workspace_bytes, stream);
  return run<false>(p.uint4, p.small, x, w, scales, zeros, y, M, N, K, group_size, sm_count, workspace,
                    workspace_bytes, stream);
}

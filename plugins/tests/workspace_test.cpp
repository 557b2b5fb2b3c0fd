// ctest: the workspace functions are non-decreasing in M, and a launch at any M of a profile
// given the profile's reservation (workspace_size(max M)) keeps its split-K plan and never needs
// more bytes than reserved: the TensorRT plugin reserves once at build time for max M.
#include <stdio.h>

#include "split_k.h"
#include "w4a16.h"
#include "w4a8.h"
#include "w6a16.h"

static int failures = 0;
#define EXPECT(cond, M)                                                                              \
  do {                                                                                               \
    if (!(cond)) {                                                                                   \
      if (failures < 20) printf("FAIL %s:%d M=%d: %s\n", __FILE__, __LINE__, M, #cond);       \
      ++failures;                                                                                    \
    }                                                                                                \
  } while (0)

enum { W6A16, W4A16, W4A8_TENSOR, W4A8_TOKEN };

static size_t workspace(int kind, int M, int N, int K) {
  switch (kind) {
    case W6A16: return qc_w6a16_workspace_size(M, N, K);
    case W4A16: return qc_w4a16_workspace_size(M, N, K, 128);
    case W4A8_TENSOR: return qc_w4a8_workspace_size(M, N, K, 128, QC_ACT_PER_TENSOR);
    default: return qc_w4a8_workspace_size(M, N, K, 128, QC_ACT_PER_TOKEN);
  }
}

// What the launch at M carves out of the workspace before the split-K partial sums.
static size_t rows_bytes(int kind, int M) {
  return kind == W4A8_TOKEN ? qc_align256((size_t)M * sizeof(float)) : 0;
}

static void check_profile(int kind, int max_m, int N, int K) {
  const int k_block = kind == W6A16 ? QC_W6A16_K_BLOCK : (kind == W4A16 ? QC_W4A16_K_BLOCK : QC_W4A8_K_BLOCK);
  const size_t reserved = workspace(kind, max_m, N, K);
  static char dummy;
  size_t prev = 0;
  for (int M = 1; M <= max_m; ++M) {
    size_t ws = workspace(kind, M, N, K);
    EXPECT(ws >= prev, M);
    EXPECT(ws <= reserved, M);
    prev = ws;
    qc_plan plan = qc_plan_gemm(M, N, K, k_block);
    qc_plan fit = qc_fit_workspace(plan, M, N, K, rows_bytes(kind, M), &dummy, reserved);
    EXPECT(fit.splits == plan.splits, M);  // the profile's reservation never drops split-K
    EXPECT(rows_bytes(kind, M) + qc_splitk_bytes(fit, M, N) <= reserved, M);
    // the plan's own need at M fits in workspace_size(M) as well
    EXPECT(rows_bytes(kind, M) + qc_splitk_bytes(plan, M, N) <= ws, M);
  }
  // a smaller buffer drops split-K instead of overrunning it
  qc_plan p1 = qc_plan_gemm(1, N, K, k_block);
  if (p1.splits > 1) {
    qc_plan fit = qc_fit_workspace(p1, 1, N, K, rows_bytes(kind, 1), &dummy, qc_splitk_bytes(p1, 1, N) - 1);
    EXPECT(fit.splits == 1 && fit.k_chunk == K, 1);
  }
}

int main(void) {
  // N=K=4096 is the shape that exposed the defect: 4 MB at M=32-128, none from M=256.
  const int shapes[][2] = {{4096, 4096}, {11008, 4096}, {4096, 11008}, {128, 1024}, {8, 256}, {64, 8192}};
  const int max_ms[] = {512, 2048};
  for (const auto& s : shapes)
    for (int max_m : max_ms)
      for (int kind = W6A16; kind <= W4A8_TOKEN; ++kind) check_profile(kind, max_m, s[0], s[1]);
  // the defect's numbers: the workspace at M=512 covers M=64 (4 MB of partial sums)
  EXPECT(qc_w6a16_workspace_size(512, 4096, 4096) >= qc_w6a16_workspace_size(64, 4096, 4096), 512);
  EXPECT(qc_w6a16_workspace_size(64, 4096, 4096) > 0, 64);
  if (!failures) printf("workspace_test: ok\n");
  return failures != 0;
}

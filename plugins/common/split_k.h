/* Tiling and split-K plan shared by the launch functions and their workspace_size functions.
 * Host-only, a pure function of the shapes, so the workspace a plugin reserves at build time is
 * exactly what the launch uses. */
#ifndef QC_SPLIT_K_H
#define QC_SPLIT_K_H

#include <stddef.h>

#define QC_TILE_N 64        /* output channels per CTA: 4 warps x 16 rows */
#define QC_TARGET_CTAS 264  /* about two waves on a 132-SM H100 */
#define QC_MAX_SPLITS 16

/* K per main-loop block of each kernel: split-K slices are whole blocks (plan and workspace use
 * the same value). All run the pipelined loop of common/pipeline.cuh: W4A16 and W4A8 in 128-k
 * stages, W6A16 in 64-k stages (its 3 KB of weights per 64 k keep 6 stages in 48 KB at MF 4). */
#define QC_W6A16_K_BLOCK 64
#define QC_W4A16_K_BLOCK 128
#define QC_W4A8_K_BLOCK 128

typedef struct {
  int m_frags; /* 8-column MMA fragments of M per warp: 1, 2 or 4 */
  int splits;  /* K slices (grid.z) */
  int k_chunk; /* K per slice, a multiple of k_block */
} qc_plan;

static inline qc_plan qc_plan_gemm(int M, int N, int K, int k_block) {
  qc_plan p;
  p.m_frags = M <= 8 ? 1 : (M <= 16 ? 2 : 4);
  long long tiles = (long long)((N + QC_TILE_N - 1) / QC_TILE_N) * ((M + 8 * p.m_frags - 1) / (8 * p.m_frags));
  int kblocks = (K + k_block - 1) / k_block;
  int s = 1;
  /* split while the grid is small and every slice keeps at least 4 K blocks */
  while (s < QC_MAX_SPLITS && tiles * s < QC_TARGET_CTAS && kblocks >= 8 * s) s *= 2;
  int per = (kblocks + s - 1) / s;
  p.k_chunk = per * k_block;
  p.splits = (kblocks + per - 1) / per;
  return p;
}

static inline size_t qc_align256(size_t n) { return (n + 255) & ~(size_t)255; }

/* fp32 partial sums [splits, M, N], 256-byte rounded (none without split-K) */
static inline size_t qc_splitk_partial_bytes(qc_plan p, int M, int N) {
  return p.splits > 1 ? qc_align256((size_t)p.splits * (size_t)M * (size_t)N * sizeof(float)) : 0;
}

/* The split-K workspace: the partial sums, then one int counter per output tile (the pipelined
 * kernels' last-CTA reduction, common/pipeline.cuh); none without split-K. */
static inline size_t qc_splitk_bytes(qc_plan p, int M, int N) {
  if (p.splits <= 1) return 0;
  size_t tiles = (size_t)((N + QC_TILE_N - 1) / QC_TILE_N) * (size_t)((M + 8 * p.m_frags - 1) / (8 * p.m_frags));
  return qc_splitk_partial_bytes(p, M, N) + qc_align256(tiles * sizeof(int));
}

/* The largest qc_splitk_bytes over every M' in [1, M]: what a caller that reserves once for a
 * range of M (a TensorRT profile) must hold. qc_splitk_bytes alone is not monotonic in M (more
 * tiles, fewer splits), so workspace sizes are defined through this function. Splits never rise
 * with M (the tile count never falls), so the scan stops at the first M' without split-K. */
static inline size_t qc_splitk_bytes_upto(int M, int N, int K, int k_block) {
  size_t most = 0;
  for (int m = 1; m <= M; ++m) {
    qc_plan p = qc_plan_gemm(m, N, K, k_block);
    if (p.splits <= 1) break;
    size_t b = qc_splitk_bytes(p, m, N);
    if (b > most) most = b;
  }
  return most;
}

/* Drops split-K when the workspace (from `offset` on) cannot hold the partial sums: a launch never
 * writes past the bytes it is given. */
static inline qc_plan qc_fit_workspace(qc_plan p, int M, int N, int K, size_t offset, const void* ws,
                                       size_t ws_bytes) {
  size_t need = qc_splitk_bytes(p, M, N);
  if (p.splits > 1 && (!ws || ws_bytes < offset + need)) {
    p.splits = 1;
    p.k_chunk = K;
  }
  return p;
}

/* log2 of a group size the shape checks admit (32, 64 or 128): kernels index groups by shifts. */
static inline int qc_group_shift(int group) { return group == 32 ? 5 : (group == 64 ? 6 : 7); }

static inline int qc_is_aligned16(const void* p) { return ((size_t)p & 15) == 0; }

#endif

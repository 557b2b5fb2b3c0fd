// The FP16-MMA side of the pipelined loop (pipeline.cuh) for weight operators that decode to FP16
// (W4A16 both layouts, 128-k stages; W6A16 both layouts, 64-k stages): stage geometry, the
// activation rearrangement pass and the B fragments of mma.sync m16n8k16.
#pragma once

#include "pipeline.cuh"

// The m16n8k16 A registers of MMAs 0-3 from a thread's two rows (r0: h0, r0 + 8: h1), each 8 FP16
// pairs in k order.
__device__ __forceinline__ void qc_rows_to_a_frags(const uint32_t (&h0)[8], const uint32_t (&h1)[8],
                                                   uint32_t (&af)[4][4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    af[i][0] = h0[2 * i];
    af[i][1] = h1[2 * i];
    af[i][2] = h0[2 * i + 1];
    af[i][3] = h1[2 * i + 1];
  }
}

// A stage is KB = 128 k = 2 sub-blocks of 64 (4 x m16n8k16 each), or KB = 64 k = 1 sub-block; in
// sub-block sb thread t's k run is [64 sb + 16t, 64 sb + 16t + 16), words 2i and 2i + 1 of it the
// B fragment of MMA i (the slot order of gemm_common.cuh). QC_PIPE_F16_LDSM 1 (default): one
// pass per CTA and stage transposes the activation tile in place (4 x 4 words per task, no
// arithmetic) so that warps load their B fragments with ldmatrix.x4; 0: warps read their 32-byte
// runs directly with two ld.shared.v4 per sub-block (one barrier and one pass less). Same
// fragments either way (qc_pipeline_layout_test).
#ifndef QC_PIPE_F16_LDSM
#define QC_PIPE_F16_LDSM 1
#endif

template <int KB>
struct QcPipeF16K {
  static_assert(KB == 128 || KB == 64, "128-k or 64-k stages");
  static constexpr int kBlock = KB, kSub = KB / 64;
  static constexpr bool kConvertX = QC_PIPE_F16_LDSM != 0;
  template <int MF>
  static constexpr int kStages = MF == 1 ? 8 : (MF == 2 ? 6 : 4);  // 128 k: S x (4 + 2 MF) KB = 48 KB
  template <int MF>
  __device__ __forceinline__ void begin(int, int) {}

  __device__ __forceinline__ static int xoff(int r, int c) { return qc_x_offset_kb(r, qc_x_slot(r, c), KB); }

  // transposition task (r, sb, q) of this thread: chunks 8 sb + 2t + q of token row r, in place
  template <int MF, int P>
  __device__ __forceinline__ void convert_x(uint8_t* sx, const int (&)[P]) const {
    constexpr int kTasks = 16 * MF * kSub;  // 32 MF (128 k) or 16 MF (64 k)
    if (kTasks < QC_PIPE_THREADS && threadIdx.x >= kTasks) return;
    const int r = qc_f16_task_row(threadIdx.x, MF), sb = qc_f16_task_sb(threadIdx.x, MF);
    const int q = qc_f16_task_q(threadIdx.x, MF);
    uint4 u[4];
#pragma unroll
    for (int t = 0; t < 4; ++t) u[t] = *reinterpret_cast<const uint4*>(sx + xoff(r, qc_x_read_chunk_f16(sb, t, q)));
    *reinterpret_cast<uint4*>(sx + xoff(r, qc_x_read_chunk_f16(sb, 0, q))) = make_uint4(u[0].x, u[1].x, u[2].x, u[3].x);
    *reinterpret_cast<uint4*>(sx + xoff(r, qc_x_read_chunk_f16(sb, 1, q))) = make_uint4(u[0].y, u[1].y, u[2].y, u[3].y);
    *reinterpret_cast<uint4*>(sx + xoff(r, qc_x_read_chunk_f16(sb, 2, q))) = make_uint4(u[0].z, u[1].z, u[2].z, u[3].z);
    *reinterpret_cast<uint4*>(sx + xoff(r, qc_x_read_chunk_f16(sb, 3, q))) = make_uint4(u[0].w, u[1].w, u[2].w, u[3].w);
  }

  template <int MF>
  __device__ __forceinline__ void b_frags(const uint8_t* sx, int sb, int f, uint32_t (&b)[4][2]) const {
    const int lane = threadIdx.x & 31;
    if constexpr (kConvertX) {
#pragma unroll
      for (int p = 0; p < 2; ++p) {
        uint32_t d[4];
        qc_ldmatrix_x4(d, sx + qc_f16_ldsm_offset_kb(f, sb, p, lane, KB));
        b[2 * p][0] = d[0];
        b[2 * p][1] = d[1];
        b[2 * p + 1][0] = d[2];
        b[2 * p + 1][1] = d[3];
      }
    } else {
      const int r = 8 * f + (lane >> 2), t = lane & 3;
      const uint4 u0 = *reinterpret_cast<const uint4*>(sx + xoff(r, qc_x_read_chunk_f16(sb, t, 0)));
      const uint4 u1 = *reinterpret_cast<const uint4*>(sx + xoff(r, qc_x_read_chunk_f16(sb, t, 1)));
      b[0][0] = u0.x; b[0][1] = u0.y; b[1][0] = u0.z; b[1][1] = u0.w;
      b[2][0] = u1.x; b[2][1] = u1.y; b[3][0] = u1.z; b[3][1] = u1.w;
    }
  }

  __device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) const {
    qc_mma_f16(c, a, b);
  }
};

using QcPipeF16 = QcPipeF16K<128>;

// The same tile, transposed by ldmatrix (pipeline_layout.h, qc_f16_tr_*): per op one ldmatrix.x4 and
// one 16-byte store per thread instead of 4 loads, 12-16 register moves and 4 stores per task
// (W6A16's 64-k stages use it; W4A16's 128-k stages keep the register transposition above, so their
// SASS is unchanged). Warp w does ops w and, at MF 4, w + 4: 16 token rows (2 KB) further on, the
// same swizzle, so one pair of offsets per thread serves both. The B-fragment ldmatrix addresses
// are precomputed too (token fragment f is 8 rows = 1 KB further on). The offsets pass through a
// shuffle of the thread with itself, which ptxas cannot recompute, so they stay in registers instead
// of being rebuilt from the thread index in every iteration (about 10-18 SASS instructions per
// stage).
struct QcPipeF16T : QcPipeF16K<64> {
  int tr_ld, tr_st;  // this thread's ldmatrix row address and store offset for op `warp`
  int b_ld[2];       // the B-fragment ldmatrix row address of load p (token fragment 0)

  __device__ __forceinline__ static int pinned(int v) { return __shfl_sync(0xffffffffu, v, threadIdx.x & 31); }

  template <int MF>
  __device__ __forceinline__ void begin_tr() {
    const int o = min((int)(threadIdx.x >> 5), 2 * MF - 1), lane = threadIdx.x & 31;
    tr_ld = pinned(qc_f16_tr_load_offset(o, lane, 64));
    tr_st = pinned(qc_f16_tr_store_offset(o, lane, 64));
    b_ld[0] = pinned(qc_f16_ldsm_offset_kb(0, 0, 0, lane, 64));
    b_ld[1] = pinned(qc_f16_ldsm_offset_kb(0, 0, 1, lane, 64));
  }

  template <int MF, int P>
  __device__ __forceinline__ void convert_x(uint8_t* sx, const int (&)[P]) const {
    constexpr int kOps = 2 * MF, kRows16 = 16 * 2 * 64;  // ops; bytes of 16 token rows
#pragma unroll
    for (int j = 0; j < (kOps + 3) / 4; ++j)
      if (kOps % 4 == 0 || (int)(threadIdx.x >> 5) + 4 * j < kOps) {  // MF 1: warps 0, 1 (warp-uniform)
        uint32_t d[4];
        qc_ldmatrix_x4(d, sx + tr_ld + j * kRows16);
        __syncwarp();  // the warp's reads before its stores (which also wait for d)
        *reinterpret_cast<uint4*>(sx + tr_st + j * kRows16) = make_uint4(d[0], d[1], d[2], d[3]);
      }
  }

  template <int MF>
  __device__ __forceinline__ void b_frags(const uint8_t* sx, int sb, int f, uint32_t (&b)[4][2]) const {
    if constexpr (!kConvertX) {
      QcPipeF16K<64>::b_frags<MF>(sx, sb, f, b);
    } else {
#pragma unroll
      for (int p = 0; p < 2; ++p) {  // qc_f16_ldsm_offset_kb(f, 0, p, lane, 64) = b_ld[p] + 1024 f
        uint32_t d[4];
        qc_ldmatrix_x4(d, sx + b_ld[p] + f * 8 * 2 * 64);
        b[2 * p][0] = d[0];
        b[2 * p][1] = d[1];
        b[2 * p + 1][0] = d[2];
        b[2 * p + 1][1] = d[3];
      }
    }
  }
};

// The loop with weight operator Op, whose parameters are its member `a` (W4Args, W6Args).
template <class Op, class Args>
int qc_launch_op(const qc_plan& p, const __half* x, __half* y, void* ws, int M, int N, int K, const Args& args,
                 const QcEpilogue& epi, cudaStream_t stream) {
  Op op{};
  op.a = args;
  return qc_launch_pipe(p, x, y, ws, M, N, K, op, epi, stream);
}

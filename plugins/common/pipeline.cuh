// The pipelined GEMM main loop (sm_80+): a multi-stage cp.async ring in shared memory for the
// weights and the activations, fragments read from shared memory, dequantization in registers
// interleaved with the MMAs, group parameters loaded once per group, and split-K finished inside
// the same launch. One template over a weight-tile operator `Op` (W4A16 nibble, W4A16 int4_v2,
// W4A8, W6A16 fp6_4+2 and fp6_v2); a new weight format plugs in by writing one more Op.
//
// CTA: 4 warps x 16 output channels = 64 channels (QC_TILE_N), 8*MF tokens, K in blocks of
// Op::kBlock (128; 64 for W6A16, whose stage is 3 KB of weights). Per K block each thread owns a
// contiguous run of k (16 for m16n8k16, 32 for m16n8k32)
// of its rows r0 = 16 w + g, r1 = r0 + 8 and of its tokens g + 8f (the k permutation of
// gemm_common.cuh, which int4_v2 bakes into its bytes), so its activation fragments are 32 or 64
// contiguous bytes of one token row. ldmatrix hands thread (g, t) word t of a 16-byte row, the
// MMA's standard k slots; so once per stage the CTA rearranges the landed activation tile in place
// (W4A16: a 4 x 4 word transposition per task; W4A8: the E4M3 conversion, written transposed), a
// barrier, then every warp loads its B fragments with ldmatrix.x4 (pipeline_layout.h).
//
// An Op provides:
//   kBlock, kWBytes, kStages<MF>            K per block, weight bytes per CTA and stage, ring depth
//   kSub                                    sub-blocks of 4 MMAs per block
//   begin<MF>(m_base, M)                    per-thread set-up (source pointers, token scales)
//   Params, params(p, kb)                   per-thread group parameters (scales, zeros, LUTs) of
//                                            the block at kb (k_chunk is a multiple of kBlock, so
//                                            every block starts at a multiple of kBlock); group
//                                            indices clamped, no branch around a load
//   copy_w(smem_w, kb, k_end)               cp.async of this thread's share of the weight tile,
//                                            zero-filled at and past k_end
//   a_frags(smem_w, sb, params, a)          the A fragments of sub-block sb's 4 MMAs, dequantized
//   kConvertX, convert_x<MF>(smem_x, dst)   optional: rearrange the landed activation tile in
//                                            place (tasks own disjoint chunks), then a barrier
//   b_frags<MF>(smem_x, sb, f, b)           the B fragments of token fragment f
//   mma(acc, a, b)
#pragma once

#include "gemm_common.cuh"
#include "pipeline_layout.h"

// ---------------------------------------------------------------- cp.async and shared memory

__device__ __forceinline__ uint32_t qc_smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, bypassing L1. valid == false: reads nothing, writes 16 zero bytes (the
// source address must still be a legal one: callers clamp it).
__device__ __forceinline__ void qc_cp_async16(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(qc_smem_u32(smem)), "l"(gmem),
               "r"(valid ? 16 : 0)
               : "memory");
}

__device__ __forceinline__ void qc_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int N>
__device__ __forceinline__ void qc_cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Four 8x8 b16 matrices from shared memory: lane L gives the address of row L % 8 of matrix L / 8;
// register j of thread (g, t) is word t of row g of matrix j.
__device__ __forceinline__ void qc_ldmatrix_x4(uint32_t (&d)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
               : "r"(qc_smem_u32(smem))
               : "memory");
}

// ---------------------------------------------------------------- predicated loads

// A group parameter loaded only when `pred` (e.g. the sub-block has a group of its own), else
// `keep`: a predicated ld.global.nc, not a branch.
__device__ __forceinline__ uint32_t qc_ldg_u16_if(const void* p, bool pred, uint32_t keep) {
  asm("{\n .reg .pred q;\n setp.ne.b32 q, %2, 0;\n @q ld.global.nc.u16 %0, [%1];\n}\n"
      : "+r"(keep)
      : "l"(p), "r"((int)pred));
  return keep;
}

__device__ __forceinline__ uint32_t qc_ldg_u8_if(const void* p, bool pred, uint32_t keep) {
  asm("{\n .reg .pred q;\n setp.ne.b32 q, %2, 0;\n @q ld.global.nc.u8 %0, [%1];\n}\n"
      : "+r"(keep)
      : "l"(p), "r"((int)pred));
  return keep;
}

// ---------------------------------------------------------------- the activation tile

// One stage holds x[m_base + r][kb + 8c .. + 7] for r < 8*MF, c < KB / 8 as 16-byte chunks, row r at
// r * 2 KB bytes, chunk c at slot qc_x_slot(r, c) (an XOR swizzle that keeps the fragment reads
// conflict-free; pipeline_layout.h, checked by the ctest qc_pipeline_layout_test). KB = 128: thread
// tid copies chunk tid % 16 of rows tid / 16 + 8 j (MF rounds); KB = 64 (W6A16): chunk tid % 8 of
// rows tid / 8 + 16 j (MF / 2 rounds; at MF 1 only threads 0-63, a warp-uniform test).
template <int MF, int KB>
struct QcXCopy {
  static_assert(KB == 128 || KB == 64, "pipeline_layout.h describes 128-k and 64-k stages");
  static constexpr int kRowsPerRound = QC_PIPE_THREADS / (KB / 8);
  static constexpr bool kPartial = 8 * MF < kRowsPerRound;  // some threads copy nothing
  static constexpr int kPer = kPartial ? 1 : 8 * MF / kRowsPerRound;
  const __half* src[kPer];  // row start, row clamped to M - 1
  int dst[kPer];            // byte offset in the stage's activation tile
  int c, K;
  int row_ok;  // bit j: row of round j < M

  __device__ __forceinline__ QcXCopy(const __half* __restrict__ x, int m_base, int M, int K_) : K(K_) {
    c = qc_x_copy_chunk_kb(threadIdx.x, KB);
    row_ok = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int r0 = qc_x_copy_row_kb(threadIdx.x, j, KB), r = kPartial ? min(r0, 8 * MF - 1) : r0;
      const int m = m_base + r;
      src[j] = x + (size_t)min(m, M - 1) * K;
      dst[j] = qc_x_offset_kb(r, qc_x_slot(r, c), KB);
      row_ok |= (m < M) << j;
    }
  }

  // rows past M and k past the slice are zero-filled from a clamped (legal) address
  __device__ __forceinline__ void copy(uint8_t* sx, int kb, int k_end) const {
    if (kPartial && (int)threadIdx.x >= 8 * MF * (KB / 8)) return;
    const int k = kb + 8 * c;
    const int kc = min(k, K - 8);
    const bool valid = k < k_end;
#pragma unroll
    for (int j = 0; j < kPer; ++j) qc_cp_async16(sx + dst[j], src[j] + kc, valid && ((row_ok >> j) & 1));
  }
};

// ---------------------------------------------------------------- a row-major packed weight tile

// The CTA's 64 rows x 128 k of a row-major [N, K/2] byte array (4-bit codes: `nibble`, FP6 `lo4`)
// per stage: 64 bytes per row, 16-byte chunk q (k 32q .. 32q + 31) of row r at qc_w_offset(r, q)
// (pipeline_layout.h: the swizzle keeps 8-byte reads of a half warp and 16-byte reads of a quarter
// warp conflict-free); two cp.async per thread.
struct QcNibbleRows {
  static constexpr int kBytes = 64 * 64;
  const uint8_t* src[2];  // the rows of rounds 0 and 1 (clamped to N - 1) at k = 0
  int n_ok;               // bit j: row of round j < N

  __device__ __forceinline__ void begin(const uint8_t* w, int N, int K) {
    n_ok = 0;
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int n = blockIdx.x * QC_TILE_N + qc_w_copy_row(threadIdx.x, j);
      src[j] = w + (size_t)min(n, N - 1) * (K / 2);
      n_ok |= (n < N) << j;
    }
  }

  __device__ __forceinline__ void copy(uint8_t* sw, int kb, int k_end, int K) const {
    const int q = qc_w_copy_chunk(threadIdx.x), k = kb + 32 * q;
    const int kc = min(k, K - 32) / 2;
#pragma unroll
    for (int j = 0; j < 2; ++j)
      qc_cp_async16(sw + qc_w_offset(qc_w_copy_row(threadIdx.x, j), q), src[j] + kc,
                    k < k_end && ((n_ok >> j) & 1));
  }
};

// ---------------------------------------------------------------- split-K inside the launch

// Without split-K: fp16 output. With it: every slice writes its fp32 partial sums to
// ws[z][M][N]; the last slice of the tile to finish (a counter per tile, atomicAdd after a
// __threadfence) adds the slices in the order z = 0, 1, ... (the same sum whichever CTA is
// last), applies the epilogue and writes fp16, then resets its counter. The counters are zeroed by
// a cudaMemsetAsync before the launch (the workspace arrives uninitialized).
template <int MF>
__device__ __forceinline__ void qc_pipe_store(const float (&acc)[MF][4], int m_base, int r0, int r1, int M, int N,
                                              __half* __restrict__ y, float* __restrict__ ws,
                                              int* __restrict__ counters, const QcEpilogue& epi, int* flag) {
  const int t = threadIdx.x & 3;
  if (gridDim.z == 1) {
#pragma unroll
    for (int f = 0; f < MF; ++f)
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int m = m_base + 8 * f + 2 * t + (j & 1), n = j < 2 ? r0 : r1;
        if (m < M && n < N) y[(size_t)m * N + n] = __float2half_rn(acc[f][j] * epi.factor(m, n));
      }
    return;
  }
  const size_t mn = (size_t)M * N;
#pragma unroll
  for (int f = 0; f < MF; ++f)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int m = m_base + 8 * f + 2 * t + (j & 1), n = j < 2 ? r0 : r1;
      if (m < M && n < N) ws[blockIdx.z * mn + (size_t)m * N + n] = acc[f][j];
    }
  __threadfence();
  __syncthreads();
  const int tile = blockIdx.y * gridDim.x + blockIdx.x;
  if (threadIdx.x == 0) *flag = atomicAdd(&counters[tile], 1) == (int)gridDim.z - 1;
  __syncthreads();
  if (!*flag) return;
  __threadfence();
#pragma unroll
  for (int f = 0; f < MF; ++f)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int m = m_base + 8 * f + 2 * t + (j & 1), n = j < 2 ? r0 : r1;
      if (m < M && n < N) {
        float s = 0.0f;
        for (int z = 0; z < (int)gridDim.z; ++z) s += __ldcg(ws + z * mn + (size_t)m * N + n);
        y[(size_t)m * N + n] = __float2half_rn(s * epi.factor(m, n));
      }
    }
  if (threadIdx.x == 0) counters[tile] = 0;
}

// ---------------------------------------------------------------- the kernel

template <int MF, class Op>
__global__ void __launch_bounds__(128, 3) qc_pipe_kernel(const __half* __restrict__ x, __half* __restrict__ y,
                                                      float* __restrict__ ws, int* __restrict__ counters, int M,
                                                      int N, int K, int k_chunk, Op op, QcEpilogue epi) {
  constexpr int KB = Op::kBlock, S = Op::template kStages<MF>;
  constexpr int kXBytes = 8 * MF * KB * 2, kStageBytes = Op::kWBytes + kXBytes;
  static_assert(S >= 4 && S * kStageBytes <= 48 * 1024, "pipeline depth or static shared memory");
  __shared__ __align__(128) uint8_t smem[S * kStageBytes];

  const int warp = threadIdx.x >> 5, g = (threadIdx.x & 31) >> 2;
  const int r0 = blockIdx.x * QC_TILE_N + warp * 16 + g, r1 = r0 + 8;
  const int m_base = blockIdx.y * (8 * MF);
  const int k_begin = blockIdx.z * k_chunk;
  const int k_end = min(K, k_begin + k_chunk);
  op.template begin<MF>(m_base, M);
  const QcXCopy<MF, KB> xc(x, m_base, M, K);

  // prologue: blocks 0 .. S-2 in flight (empty groups past the slice keep the wait counts right)
#pragma unroll
  for (int s = 0; s < S - 1; ++s) {
    const int kb = k_begin + s * KB;
    op.copy_w(smem + s * kStageBytes, kb, k_end);
    xc.copy(smem + s * kStageBytes + Op::kWBytes, kb, k_end);
    qc_cp_async_commit();
  }
  typename Op::Params cur;
  op.params(cur, k_begin);
  float acc[MF][4];
#pragma unroll
  for (int f = 0; f < MF; ++f) acc[f][0] = acc[f][1] = acc[f][2] = acc[f][3] = 0.0f;

  int read = 0, write = (S - 1) * kStageBytes;  // byte offsets of the slots of blocks it, it + S - 1
  for (int kb = k_begin; kb < k_end; kb += KB) {
    qc_cp_async_wait<S - 2>();  // this thread's copies of block kb have landed ...
    __syncthreads();            // ... everyone's; and everyone is done with slot `write` (last block's)
    const int kn = kb + (S - 1) * KB;
    op.copy_w(smem + write, kn, k_end);
    xc.copy(smem + write + Op::kWBytes, kn, k_end);
    qc_cp_async_commit();
    typename Op::Params next;
    op.params(next, kb + KB);  // the next block's group parameters, loaded one block ahead

    uint8_t* stage = smem + read;
    if constexpr (Op::kConvertX) {  // each thread converts the chunks it copied, in place
      op.template convert_x<MF>(stage + Op::kWBytes, xc.dst);
      __syncthreads();
    }
#pragma unroll
    for (int sb = 0; sb < Op::kSub; ++sb) {
      uint32_t a[4][4];
      op.a_frags(stage, sb, cur, a);
#pragma unroll
      for (int f = 0; f < MF; ++f) {
        uint32_t b[4][2];
        op.template b_frags<MF>(stage + Op::kWBytes, sb, f, b);
#pragma unroll
        for (int i = 0; i < 4; ++i) op.mma(acc[f], a[i], b[i]);
      }
    }
    cur = next;
    read = read == (S - 1) * kStageBytes ? 0 : read + kStageBytes;
    write = write == (S - 1) * kStageBytes ? 0 : write + kStageBytes;
  }
  qc_cp_async_wait<0>();
  __syncthreads();  // the ring is free: its first word carries the last-slice flag
  qc_pipe_store<MF>(acc, m_base, r0, r1, M, N, y, ws, counters, epi, reinterpret_cast<int*>(smem));
}

// ---------------------------------------------------------------- host launch

// The split-K workspace (from `ws` on): fp32 partial sums [splits, M, N], then one int counter per
// output tile (qc_splitk_bytes). No second kernel: the counters are zeroed here and the last CTA of
// each tile reduces.
template <class Op>
int qc_launch_pipe(const qc_plan& p, const __half* x, __half* y, void* ws, int M, int N, int K, const Op& op,
                   const QcEpilogue& epi, cudaStream_t stream) {
  if (p.splits > 1 && p.k_chunk % Op::kBlock) return QC_ERR_ARG;  // slices must be whole blocks
  const int m_tile = 8 * p.m_frags;
  const unsigned gy = (unsigned)((M + m_tile - 1) / m_tile);
  if (gy > 65535u) return QC_ERR_SHAPE;
  dim3 grid((unsigned)((N + QC_TILE_N - 1) / QC_TILE_N), gy, (unsigned)p.splits);
  float* partial = nullptr;
  int* counters = nullptr;
  if (p.splits > 1) {
    partial = static_cast<float*>(ws);
    counters = reinterpret_cast<int*>(static_cast<char*>(ws) + qc_splitk_partial_bytes(p, M, N));
    if (cudaMemsetAsync(counters, 0, (size_t)grid.x * grid.y * sizeof(int), stream) != cudaSuccess)
      return QC_ERR_CUDA;
  }
  switch (p.m_frags) {
    case 1: qc_pipe_kernel<1, Op><<<grid, 128, 0, stream>>>(x, y, partial, counters, M, N, K, p.k_chunk, op, epi); break;
    case 2: qc_pipe_kernel<2, Op><<<grid, 128, 0, stream>>>(x, y, partial, counters, M, N, K, p.k_chunk, op, epi); break;
    default: qc_pipe_kernel<4, Op><<<grid, 128, 0, stream>>>(x, y, partial, counters, M, N, K, p.k_chunk, op, epi); break;
  }
  return qc_cuda_status();
}

// W6A16: FP6 (E3M2 / E2M3, fp6_4+2 layout, or fp6_v2) x FP16 on FP16 tensor cores, per-channel scale
// in the fp32 epilogue. Both layouts run the pipelined loop of common/pipeline.cuh with its FP16
// side, common/pipeline_f16.cuh, in 64-k stages (3 KB of weights + 1 KB per 8 tokens: 12 / 9 / 6
// stages at MF 1 / 2 / 4 in 48 KB); they differ in the weight-tile operator. No group parameters.
// The dequantized FP16 operands, their MMA slots and the epilogue are those of the unpipelined loop
// this replaces, so the outputs are unchanged bit for bit.
#include "decode.h"
#include "fp6_v2.h"
#include "pipeline_f16.cuh"
#include "w6a16.h"

namespace {

struct W6Args {
  const uint8_t* lo4;
  const uint8_t* hi2;
  int N, K;
};

// What both operators share: 64-k stages of QC_W6_STAGE_BYTES (lo4, then hi2; pipeline_layout.h),
// the ring depth, the activation transposition by ldmatrix (QcPipeF16T), no group parameters.
struct W6OpBase : QcPipeF16T {
  static constexpr int kWBytes = QC_W6_STAGE_BYTES;
  template <int MF>
  static constexpr int kStages = MF == 1 ? 12 : (MF == 2 ? 9 : 6);  // S x (3 + MF) KB <= 48 KB
  W6Args a;
  int lo_rd, hi_rd;  // this thread's read offsets in the stage (pinned in registers, QcPipeF16T)
  struct Params {};
  __device__ __forceinline__ void params(Params&, int) const {}
};

// Layout 1 (fp6_4+2): per stage the CTA's 64 rows x 32 lo4 bytes (two cp.async of 16 bytes per row)
// and 64 x 16 hi2 bytes (one per row, threads 0-63). Thread (g, t) decodes 16 k of rows r0 and r1
// (8 lo4 + 4 hi2 bytes each) with decode.h's qc_fp6_decode16, then one exact HMUL2 by 2^12 (2^14):
// decode(c) in FP16, as before the pipeline; the channel scale waits for the fp32 epilogue.
template <bool E2M3>
struct W6Op : W6OpBase {
  const uint8_t* lo_src;  // row qc_w6_lo4_copy_row(tid) (clamped to N - 1), its chunk, at k = 0
  const uint8_t* hi_src;  // threads 0-63: row tid (clamped) at k = 0
  int ok;                 // bit 0: lo4 row < N; bit 1: hi2 row < N

  template <int MF>
  __device__ __forceinline__ void begin(int, int) {
    this->template begin_tr<MF>();
    const int tid = threadIdx.x, base = blockIdx.x * QC_TILE_N;
    const int nl = base + qc_w6_lo4_copy_row(tid), nh = base + (tid & 63);
    lo_src = a.lo4 + (size_t)min(nl, a.N - 1) * (a.K / 2) + 16 * qc_w6_lo4_copy_chunk(tid);
    hi_src = a.hi2 + (size_t)min(nh, a.N - 1) * (a.K / 4);
    ok = (nl < a.N) | ((nh < a.N) << 1);
    const int rl = (tid >> 5) * 16 + ((tid & 31) >> 2);  // row r0 in the CTA tile; r1 = r0 + 8
    lo_rd = pinned(qc_w6_lo4_read_offset(rl, tid & 3));
    hi_rd = pinned(qc_w6_hi2_read_offset(rl, tid & 3));
  }

  // k past the slice and rows past N are zero-filled (from k = 0 of the clamped row: a legal address)
  __device__ __forceinline__ void copy_w(uint8_t* sw, int kb, int k_end) const {
    const int tid = threadIdx.x;
    const bool kv = kb < k_end;  // k_end <= K
    const int kc = kv ? kb : 0;
    qc_cp_async16(sw + qc_w6_lo4_offset(qc_w6_lo4_copy_row(tid), qc_w6_lo4_copy_chunk(tid)), lo_src + kc / 2,
                  kv && (ok & 1));
    if (tid < 64) qc_cp_async16(sw + qc_w6_hi2_offset(tid), hi_src + kc / 4, kv && (ok & 2));
  }

  // row r0 (hi8 = 0) or r1 = r0 + 8 (hi8 = 1): 8 rows further on in both arrays
  __device__ __forceinline__ void decode_row(const uint8_t* sw, int hi8, uint32_t (&h)[8]) const {
    const int lo8 = qc_w6_lo4_read_offset(8, 0) - qc_w6_lo4_read_offset(0, 0);  // 256
    const int hi8b = qc_w6_hi2_read_offset(8, 0) - qc_w6_hi2_read_offset(0, 0);  // 128
    const uint2 lo = *reinterpret_cast<const uint2*>(sw + lo_rd + hi8 * lo8);
    const uint32_t hi = *reinterpret_cast<const uint32_t*>(sw + hi_rd + hi8 * hi8b);
    qc_fp6_decode16(lo.x, lo.y, hi, E2M3, h);
    const __half2 bias = __float2half2_rn(qc_fp6_bias_factor(E2M3));
#pragma unroll
    for (int j = 0; j < 8; ++j) h[j] = qc_as_u32(__hmul2(qc_as_h2(h[j]), bias));
  }

  __device__ __forceinline__ void a_frags(const uint8_t* sw, int, const Params&, uint32_t (&af)[4][4]) const {
    uint32_t h0[8], h1[8];
    decode_row(sw, 0, h0);
    decode_row(sw, 1, h1);
    qc_rows_to_a_frags(h0, h1, af);
  }
};

// Layout 2 (fp6_v2): per 64-k block a warp tile is 512 lo4 bytes (16 per lane) and 256 hi2 bytes (8
// per lane). Each thread copies its own 16 lo4 bytes, threads 0-63 the hi2 bytes of two lanes, and
// each reads back its 16 + 8 bytes, which hold the 4 A fragments of rows r0 = 16 nt + g and
// r1 = r0 + 8 over its 16 k. fp6_v2.h makes each A register's FP16 bits decode(c) * 2^-12 (2^-14)
// with a lop3 select, a rotation and a mask; they go to the MMA as they are and the power of two
// is applied in the fp32 epilogue with the channel scale (Marlin folds its FP8 exponent bias into
// the scales the same way). Exact if the tensor cores take FP16 subnormal operands exactly: every
// nonzero product x * w 2^-12 is at least 2^-40, far from the fp32 subnormals, so the accumulation
// is layout 1's scaled by 2^-12 and the epilogue's acc * (scale * 2^12) is the same fp32 product as
// layout 1's (tests/gpu compares the two outputs bit for bit). The format is a template argument,
// so each kernel carries one decode. N is a multiple of 16: a warp tile is in range or not as a
// whole; tiles past N and k past the slice are zero-filled (all-zero segments decode to +0).
template <bool E2M3>
struct W6V2Op : W6OpBase {
  const uint8_t* lo_src;  // this thread's 16 lo4 bytes of its warp's tile (clamped) at k = 0
  const uint8_t* hi_src;  // threads 0-63: 16 hi2 bytes of warp tile tid / 16 (clamped) at k = 0
  int ok;                 // bit 0: lo4 tile < N / 16; bit 1: hi2 tile < N / 16

  template <int MF>
  __device__ __forceinline__ void begin(int, int) {
    this->template begin_tr<MF>();
    const int tid = threadIdx.x, tiles = a.N >> 4;
    const int tl = blockIdx.x * 4 + (tid >> 5), th = blockIdx.x * 4 + qc_w6v2_hi2_copy_tile(tid & 63);
    lo_src = a.lo4 + qc_fp6v2_lo4_offset(min(tl, tiles - 1), 0, a.K, tid & 31);
    hi_src = a.hi2 + qc_fp6v2_hi2_offset(min(th, tiles - 1), 0, a.K, qc_w6v2_hi2_copy_lane(tid & 63));
    ok = (tl < tiles) | ((th < tiles) << 1);
    lo_rd = pinned(qc_w6v2_lo4_offset(tid));
    hi_rd = pinned(qc_w6v2_hi2_read_offset(tid));
  }

  // the k tile kb / 64 of a tile row is kb / 64 tiles on (512 / 256 bytes each); k past the slice
  // is zero-filled from k tile 0 (a legal address)
  __device__ __forceinline__ void copy_w(uint8_t* sw, int kb, int k_end) const {
    const int tid = threadIdx.x;
    const bool kv = kb < k_end;  // k_end <= K
    const int kc = kv ? kb : 0;
    qc_cp_async16(sw + qc_w6v2_lo4_offset(tid), lo_src + kc * (QC_FP6V2_LO4_TILE_BYTES / 64), kv && (ok & 1));
    if (tid < 64)
      qc_cp_async16(sw + qc_w6v2_hi2_copy_offset(tid), hi_src + kc * (QC_FP6V2_HI2_TILE_BYTES / 64), kv && (ok & 2));
  }

  __device__ __forceinline__ void a_frags(const uint8_t* sw, int, const Params&, uint32_t (&af)[4][4]) const {
    const uint4 l = *reinterpret_cast<const uint4*>(sw + lo_rd);
    const uint2 h = *reinterpret_cast<const uint2*>(sw + hi_rd);
    const uint32_t L[4] = {l.x, l.y, l.z, l.w}, H[2] = {h.x, h.y};
    qc_fp6v2_decode(L, H, E2M3, af);
  }
};

// The epilogue factor of layout 2 (QcEpilogue::act_scale): qc_fp6_bias_factor of E3M2 and E2M3.
__device__ const float qc_fp6v2_bias[2] = {4096.0f, 16384.0f};

}  // namespace

extern "C" int qc_w6a16_gemm(const void* x, const void* w_lo4, const void* w_hi2, const void* scales,
                             void* y, int M, int N, int K, int format, int layout, void* workspace,
                             size_t workspace_bytes, struct CUstream_st* stream) {
  int st = qc_w6a16_check_shape(M, N, K, format, layout);
  if (st != QC_OK || M == 0) return st;
  if (!x || !w_lo4 || !w_hi2 || !scales || !y) return QC_ERR_NULL;
  if (!qc_is_aligned16(x) || !qc_is_aligned16(w_lo4) || !qc_is_aligned16(w_hi2) || ((size_t)scales & 1) ||
      ((size_t)y & 1))
    return QC_ERR_ALIGNMENT;
  if (workspace && !qc_is_aligned16(workspace)) return QC_ERR_ALIGNMENT;
  qc_plan p =
      qc_fit_workspace(qc_plan_gemm(M, N, K, QC_W6A16_K_BLOCK), M, N, K, 0, workspace, workspace_bytes);
  const W6Args args{static_cast<const uint8_t*>(w_lo4), static_cast<const uint8_t*>(w_hi2), N, K};
  const auto* xh = static_cast<const __half*>(x);
  auto* yh = static_cast<__half*>(y);
  QcEpilogue epi{static_cast<const __half*>(scales), nullptr, nullptr, nullptr};
  const bool e2m3 = format == QC_FMT_FP6_E2M3;
  if (layout == 2) {
    void* bias = nullptr;
    if (cudaGetSymbolAddress(&bias, qc_fp6v2_bias) != cudaSuccess) return QC_ERR_CUDA;
    epi.act_scale = static_cast<const float*>(bias) + (e2m3 ? 1 : 0);
    return e2m3 ? qc_launch_op<W6V2Op<true>>(p, xh, yh, workspace, M, N, K, args, epi, stream)
                : qc_launch_op<W6V2Op<false>>(p, xh, yh, workspace, M, N, K, args, epi, stream);
  }
  return e2m3 ? qc_launch_op<W6Op<true>>(p, xh, yh, workspace, M, N, K, args, epi, stream)
              : qc_launch_op<W6Op<false>>(p, xh, yh, workspace, M, N, K, args, epi, stream);
}

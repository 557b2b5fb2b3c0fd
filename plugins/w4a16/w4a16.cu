// W4A16: INT4 / UINT4 (+ zeros) / FP4 E2M1 (nibble layout, or int4_v2 for INT4 / UINT4) x FP16 on
// FP16 tensor cores, one fp16 scale per group of K applied at dequantization. Both layouts run the
// pipelined loop of common/pipeline.cuh with its FP16 side, common/pipeline_f16.cuh (cp.async ring,
// ldmatrix fragments, split-K in the launch); they differ in the weight-tile operator. Same FP16
// arithmetic per weight as before the pipeline, and the same MMA slots for the same (n, k) in both
// layouts, so their outputs stay bit-identical.
#include "decode.h"
#include "decode_v2.h"
#include "pipeline_f16.cuh"
#include "qc_sm90_gemm.h"
#include "w4a16.h"
#include "w4a16_params.h"

namespace {

// The fp16 in the low half of `u` in both halves (folds into the HMUL2 operand as .H0_H0).
__device__ __forceinline__ __half2 qc_splat_low(uint32_t u) { return __low2half2(qc_as_h2(u)); }

struct W4Args {
  const uint8_t* w;
  const __half* scales;
  const uint8_t* zeros;
  int N, K;
  int group_shift;  // log2 of the group size
  int fmt;
};

// Group parameters of rows r0, r1 for one 64-k sub-block: the fp16 scales as half2 words and the
// FP16x2 constants of the zero points (w4a16_params.h: the bits of the float constants of decode.h
// / decode_v2.h, exact).
struct W4Sub {
  uint32_t s0, s1;  // scale of r0, r1 in the low half (HMUL2 reads it with .H0_H0)
  uint32_t c0, c1;  // layout 1: pair addends of r0, r1; layout 2: low (r0) and high (r1) addends
};

// Stages are 128 k and start at multiples of 128 (the plan's k_block), so a thread's groups are
// fixed per stage: group 128 covers both sub-blocks (loaded once, the second sub-block copies it),
// groups 64 and 32 change every sub-block. No loads depend on data: group indices past K (a tail
// sub-block) are clamped; the weights and activations there are zero-filled.
template <bool V2, bool Z>
struct W4OpBase : QcPipeF16 {
  static constexpr int kWBytes = 64 * 64;  // 64 rows x 128 k per stage
  W4Args a;
  const __half* srow0;  // scales of rows r0, r1 (clamped to N - 1)
  const __half* srow1;
  const uint8_t* zrow0;  // zero points (Z only)
  const uint8_t* zrow1;
  int last_group;

  struct Params {
    W4Sub sub[2];
  };

  __device__ __forceinline__ void begin_rows() {
    const int r0 = blockIdx.x * QC_TILE_N + (threadIdx.x >> 5) * 16 + ((threadIdx.x & 31) >> 2);
    const int groups = a.K >> a.group_shift;
    const size_t o0 = (size_t)min(r0, a.N - 1) * groups, o1 = (size_t)min(r0 + 8, a.N - 1) * groups;
    srow0 = a.scales + o0;
    srow1 = a.scales + o1;
    zrow0 = Z ? a.zeros + o0 : nullptr;
    zrow1 = Z ? a.zeros + o1 : nullptr;
    last_group = groups - 1;
  }

  __device__ __forceinline__ void constants(W4Sub& d, uint32_t z0, uint32_t z1) const {
    if constexpr (V2) {
      d.c0 = qc_w4v2_low_bits(z0);
      d.c1 = qc_w4v2_high_bits(z1);
    } else {
      d.c0 = qc_w4_pair_addend_bits(z0);  // unused by FP4
      d.c1 = qc_w4_pair_addend_bits(z1);
    }
  }

  __device__ __forceinline__ void params(Params& p, int kb) const {
    const int k = kb + 16 * (threadIdx.x & 3);
    const int g0 = min(k >> a.group_shift, last_group), g1 = min((k + 64) >> a.group_shift, last_group);
    const bool split = a.group_shift < 7;  // the second sub-block has its own group
    const uint32_t zero_default = a.fmt == QC_FMT_INT4 ? 8u : 0u;
    const uint32_t s00 = __ldg(reinterpret_cast<const unsigned short*>(srow0) + g0);
    const uint32_t s01 = __ldg(reinterpret_cast<const unsigned short*>(srow1) + g0);
    const uint32_t s10 = qc_ldg_u16_if(srow0 + g1, split, s00);
    const uint32_t s11 = qc_ldg_u16_if(srow1 + g1, split, s01);
    p.sub[0].s0 = s00;
    p.sub[0].s1 = s01;
    p.sub[1].s0 = s10;
    p.sub[1].s1 = s11;
    if constexpr (Z) {
      const uint32_t z00 = __ldg(zrow0 + g0), z01 = __ldg(zrow1 + g0);
      constants(p.sub[0], z00, z01);
      constants(p.sub[1], qc_ldg_u8_if(zrow0 + g1, split, z00), qc_ldg_u8_if(zrow1 + g1, split, z01));
    } else {
      constants(p.sub[0], zero_default, zero_default);
      p.sub[1].c0 = p.sub[0].c0;
      p.sub[1].c1 = p.sub[0].c1;
    }
  }
};

// Layout 1 (`nibble`): per stage the CTA's 64 rows x 64 bytes (QcNibbleRows); thread (g, t) reads
// 8 bytes of rows r0 and r1 per sub-block and decodes them to the FP16 weights of decode.h: the exact
// integer u - zero (or the FP4 value), then * scale, one FP16 rounding per weight.
template <bool Z, bool FP4>
struct W4Op : W4OpBase<false, Z> {
  using Base = W4OpBase<false, Z>;
  using typename Base::Params;
  using Base::a;
  QcNibbleRows rows;

  template <int MF>
  __device__ __forceinline__ void begin(int, int) {
    this->begin_rows();
    rows.begin(a.w, a.N, a.K);
  }

  __device__ __forceinline__ void copy_w(uint8_t* sw, int kb, int k_end) const { rows.copy(sw, kb, k_end, a.K); }

  // 16 codes of one row (8 bytes) -> 8 FP16 pairs: INT4 / UINT4 one byte at a time, placed at bytes
  // 0 and 2 by a prmt, one lop3 to (1024 + u_lo, 1024 + 16 u_hi), one HFMA2 to the exact integers
  // (w4a16_params.h), one HMUL2 by the scale; FP4 through a table of FP16 high bytes (the values
  // exactly, w4a16_params.h), one HMUL2 by the scale.
  __device__ __forceinline__ void decode_row(uint2 p, uint32_t add, uint32_t s, uint32_t (&h)[8]) const {
    if constexpr (FP4) {
      qc_fp4_to_half8(p.x, h);
      qc_fp4_to_half8(p.y, h + 4);
#pragma unroll
      for (int j = 0; j < 8; ++j) h[j] = qc_as_u32(__hmul2(qc_as_h2(h[j]), qc_splat_low(s)));
    } else {
      const uint32_t magic = qc_w4_pair_magic(a.fmt);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const uint32_t b = j & 3, placed = __byte_perm(j < 4 ? p.x : p.y, 0u, b | 0x40u | (b << 8) | 0x4000u);
        const uint32_t m = qc_lop3_and_xor(placed, 0x00F0000Fu, magic);
        const __half2 q = __hfma2(qc_as_h2(m), qc_as_h2(QC_W4_PAIR_FACTOR_BITS), qc_as_h2(add));
        h[j] = qc_as_u32(__hmul2(q, qc_splat_low(s)));
      }
    }
  }

  __device__ __forceinline__ void a_frags(const uint8_t* sw, int sb, const Params& p, uint32_t (&af)[4][4]) const {
    const int lane = threadIdx.x & 31, rl = (threadIdx.x >> 5) * 16 + (lane >> 2), t = lane & 3;
    const W4Sub& s = p.sub[sb];
    uint32_t h0[8], h1[8];
    decode_row(*reinterpret_cast<const uint2*>(sw + qc_w_read_offset_f16(rl, sb, t)), s.c0, s.s0, h0);
    decode_row(*reinterpret_cast<const uint2*>(sw + qc_w_read_offset_f16(rl + 8, sb, t)), s.c1, s.s1, h1);
    qc_rows_to_a_frags(h0, h1, af);
  }
};

// Layout 2 (int4_v2): a warp's 16 x 64 tile is 512 contiguous bytes; each thread copies and later
// reads its own 16 bytes per sub-block (the A fragments of rows r0 = 16 nt + g and r1 = r0 + 8 over
// its 16 k). Per word one lop3 per FP16 pair, one exact HSUB2 (r0) or HFMA2 (r1) to the integer q,
// one HMUL2 by the group scale (the one rounding of layout 1).
template <bool Z>
struct W4V2Op : W4OpBase<true, Z> {
  using Base = W4OpBase<true, Z>;
  using typename Base::Params;
  using Base::a;
  const uint8_t* wsrc;  // this thread's 16 bytes of its warp's tile at k = 0
  template <int MF>
  __device__ __forceinline__ void begin(int, int) {
    this->begin_rows();
    const int tiles_n = a.N >> 4, nt = min((int)blockIdx.x * 4 + (int)(threadIdx.x >> 5), tiles_n - 1);
    wsrc = a.w + qc_w4v2_offset(nt, 0, a.K, threadIdx.x & 31);
  }

  __device__ __forceinline__ void copy_w(uint8_t* sw, int kb, int k_end) const {
    const bool row_ok = (int)blockIdx.x * 4 + (int)(threadIdx.x >> 5) < (a.N >> 4);
#pragma unroll
    for (int sb = 0; sb < 2; ++sb) {
      const int k = kb + 64 * sb;
      const uint8_t* src = wsrc + (size_t)min(k, a.K - 64) * (QC_W4V2_TILE_BYTES / 64);  // k / 64 tiles
      qc_cp_async16(sw + qc_w4v2_smem_offset(sb, threadIdx.x), src, k < k_end && row_ok);
    }
  }

  __device__ __forceinline__ void a_frags(const uint8_t* sw, int sb, const Params& p, uint32_t (&af)[4][4]) const {
    const uint4 v = *reinterpret_cast<const uint4*>(sw + qc_w4v2_smem_offset(sb, threadIdx.x));
    const W4Sub& s = p.sub[sb];
    const __half2 s0 = qc_splat_low(s.s0), s1 = qc_splat_low(s.s1);
    const __half2 sixteenth = __float2half2_rn(QC_W4V2_HIGH_FACTOR);
    const uint32_t words[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      uint32_t m[4];
      qc_w4v2_magic(words[i], a.fmt, m);
      af[i][0] = qc_as_u32(__hmul2(__hsub2(qc_as_h2(m[0]), qc_as_h2(s.c0)), s0));
      af[i][1] = qc_as_u32(__hmul2(__hfma2(qc_as_h2(m[1]), sixteenth, qc_as_h2(s.c1)), s1));
      af[i][2] = qc_as_u32(__hmul2(__hsub2(qc_as_h2(m[2]), qc_as_h2(s.c0)), s0));
      af[i][3] = qc_as_u32(__hmul2(__hfma2(qc_as_h2(m[3]), sixteenth, qc_as_h2(s.c1)), s1));
    }
  }
};

}  // namespace

extern "C" int qc_w4a16_gemm(const void* x, const void* w, const void* scales, const void* zeros, void* y,
                             int M, int N, int K, int group_size, int format, int layout, void* workspace,
                             size_t workspace_bytes, struct CUstream_st* stream) {
  int st = qc_w4a16_check_shape(M, N, K, group_size, format, zeros != nullptr, layout);
  if (st != QC_OK || M == 0) return st;
  if (!x || !w || !scales || !y) return QC_ERR_NULL;
  if (!qc_is_aligned16(x) || !qc_is_aligned16(w) || ((size_t)scales & 1) || ((size_t)y & 1))
    return QC_ERR_ALIGNMENT;
  if (workspace && !qc_is_aligned16(workspace)) return QC_ERR_ALIGNMENT;
  // Hopper: CUTLASS's SM90 mixed-input GEMM when this library has it and the device is 9.0
  const int sm90 = qc_sm90_w4a16_gemm(x, w, scales, zeros, y, M, N, K, group_size, format, layout, workspace,
                                      workspace_bytes, stream);
  if (sm90 != QC_SM90_FALLBACK) return sm90;
  if (layout == 3) return QC_ERR_UNSUPPORTED_ARCH;  // int4_sm90: the sm_90a path's layout only
  qc_plan p = qc_fit_workspace(qc_plan_gemm(M, N, K, QC_W4A16_K_BLOCK), M, N, K, 0, workspace, workspace_bytes);
  const W4Args args{static_cast<const uint8_t*>(w), static_cast<const __half*>(scales),
                    static_cast<const uint8_t*>(zeros), N, K, qc_group_shift(group_size), format};
  QcEpilogue epi{nullptr, nullptr, nullptr, nullptr};
  const auto* xh = static_cast<const __half*>(x);
  auto* yh = static_cast<__half*>(y);
  if (layout == 2) return zeros ? qc_launch_op<W4V2Op<true>>(p, xh, yh, workspace, M, N, K, args, epi, stream)
                                : qc_launch_op<W4V2Op<false>>(p, xh, yh, workspace, M, N, K, args, epi, stream);
  if (format == QC_FMT_FP4_E2M1) return qc_launch_op<W4Op<false, true>>(p, xh, yh, workspace, M, N, K, args, epi, stream);
  return zeros ? qc_launch_op<W4Op<true, false>>(p, xh, yh, workspace, M, N, K, args, epi, stream)
               : qc_launch_op<W4Op<false, false>>(p, xh, yh, workspace, M, N, K, args, epi, stream);
}

// W4A8 on Hopper (sm_90a): FP4 E2M1 weights (layout 1) x FP8 E4M3 activations on CUTLASS's SM90
// mixed-input GEMM with its lookup-table converter (cutlass::Array<e4m3, 8> as the scale type):
// per group and row, an 8-byte table holds the E4M3 bytes of the negative codes 8..15 (sign set,
// magnitude index 0..7) for that group's exponent; the converter picks a byte by the code's low
// three bits and the table or its sign-flipped copy by the code's sign bit. E2M1 is
// sign-magnitude, so the nibble layout is read as it is; the table is qc_w4a8_lut's (decode.h),
// so the FP8 weights equal those of qc_w4a8_gemm bit for bit. INT4 (two's complement) needs its
// positive codes re-encoded for this converter and falls back (README.md).
//
// Activations: one pre-kernel per row writes fp8(x * (1/s)) (the rounding of qc_w4a8_gemm) and
// s[m] (per token: amax / 448; per tensor: *act_scale) to the workspace. Epilogue (EVT):
// y = fp16(acc * (channel_scale[n] * s[m])), the order of qc_w4a8_gemm's epilogue.
#include <cuda_fp8.h>

#include "decode.h"
#include "qc_sm90_gemm.h"
#include "row_scale.cuh"
#include "sm90_common.h"
#include "sm90_mixed_gemm.cuh"

namespace {

using cutlass::epilogue::fusion::Sm90AccFetch;
using cutlass::epilogue::fusion::Sm90ColBroadcast;
using cutlass::epilogue::fusion::Sm90Compute;
using cutlass::epilogue::fusion::Sm90EVT;
using cutlass::epilogue::fusion::Sm90RowBroadcast;

constexpr int kTileK = 128;  // 128 bytes of FP8: the group size must be a multiple of it

template <int TokenTile>
using TileShape = cute::Shape<cute::_128, cute::Int<TokenTile>, cute::Int<kTileK>>;

// D'[n, m] = acc * (channel_scale[n] * s[m]); n is D''s row (the weights), m its column (tokens).
template <int TokenTile>
using Fusion = Sm90EVT<
    Sm90Compute<cutlass::multiplies, cutlass::half_t, float, cutlass::FloatRoundStyle::round_to_nearest>,
    Sm90AccFetch,
    Sm90EVT<Sm90Compute<cutlass::multiplies, float, float, cutlass::FloatRoundStyle::round_to_nearest>,
            Sm90ColBroadcast<0, TileShape<TokenTile>, float, float, cute::Stride<cute::_1, cute::_0, int64_t>, 4>,
            Sm90RowBroadcast<0, TileShape<TokenTile>, float, float, cute::Stride<cute::_0, cute::_1, int64_t>, 1>>>;

template <int TokenTile>
using Fp4Gemm = qc_sm90::MixedGemm<cute::tuple<cutlass::int4b_t, cutlass::Array<cutlass::float_e4m3_t, 8>>,
                                   cutlass::float_e4m3_t, TokenTile, false, Fusion<TokenTile>>;

// One CTA per token row: s = amax|x[m, :]| / 448 (1 where that is 0 or not finite) per token, or
// *act_scale; writes s[m] and xq[m, :] = fp8(x * (1 / s)), round to nearest even, saturating.
__global__ void __launch_bounds__(256) qc_sm90_quantize_rows(const __half* __restrict__ x, int K,
                                                             const float* __restrict__ act_scale,
                                                             float* __restrict__ row_scale,
                                                             uint8_t* __restrict__ xq) {
  const __half* row = x + (size_t)blockIdx.x * K;
  const float s = act_scale ? *act_scale : qc_row_fp8_scale(row, K), inv = 1.0f / s;  // same branch block-wide
  if (threadIdx.x == 0) row_scale[blockIdx.x] = s;
  uint8_t* out = xq + (size_t)blockIdx.x * K;
  for (int k = 2 * threadIdx.x; k < K; k += 2 * blockDim.x) {  // K is even (a multiple of 128)
    const float2 v = __half22float2(*reinterpret_cast<const __half2*>(row + k));
    const __nv_fp8x2_storage_t b = __nv_cvt_float2_to_fp8x2(make_float2(v.x * inv, v.y * inv), __NV_SATFINITE, __NV_E4M3);
    *reinterpret_cast<__nv_fp8x2_storage_t*>(out + k) = b;
  }
}

// group_exp [N, G] -> tables [G, N] of 8 E4M3 bytes: codes 8..15 (lut words 2 and 3) for that e.
__global__ void __launch_bounds__(256) qc_sm90_fp4_tables(const int8_t* __restrict__ group_exp, int N, int G,
                                                          uint2* __restrict__ tables) {
  const size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;  // over [G, N], n fastest
  if (i >= (size_t)N * G) return;
  const int n = (int)(i % N), j = (int)(i / N);
  uint32_t lut[4];
  qc_w4a8_lut(QC_FMT_FP4_E2M1, group_exp[(size_t)n * G + j], lut);
  tables[i] = make_uint2(lut[2], lut[3]);
}

struct Layout {
  size_t xq, rows, tables, fixed;  // byte offsets; fixed = bytes before CUTLASS's workspace
};

Layout layout(int M, int N, int K, int group_size) {
  Layout l;
  l.xq = 0;
  l.rows = qc_sm90_align256((size_t)M * K);
  l.tables = l.rows + qc_sm90_align256((size_t)M * sizeof(float));
  l.fixed = l.tables + qc_sm90_align256((size_t)N * (K / group_size) * 8);
  return l;
}

bool taken(int M, int N, int K, int group_size, int format) {
  return M > 0 && N > 0 && N % 8 == 0 && K > 0 && format == QC_FMT_FP4_E2M1 && group_size % kTileK == 0 &&
         K % group_size == 0;
}

template <class G>
typename G::Arguments arguments(const void* xq, const void* w, const void* tables, const float* channel_scale,
                                const float* row_scale, void* y, int M, int N, int K, int group_size, int sm_count,
                                bool stream_k) {
  auto args = G::arguments(xq, w, tables, nullptr, y, M, N, K, group_size, sm_count, stream_k);
  // {acc, {channel_scale[n], s[m], multiply}, multiply}
  args.epilogue.thread = {{}, {{channel_scale, 0.0f, {}}, {row_scale, 0.0f, {}}, {}}, {}};
  return args;
}

template <class G>
size_t cutlass_bytes_upto(int M, int N, int K, int group_size, int sm_count, int tile) {
  size_t most = 0;
  for (int t = 1; (t - 1) * tile < M; ++t) {
    const auto args = arguments<G>(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                   t * tile < M ? t * tile : M, N, K, group_size, sm_count, true);
    const size_t b = G::Gemm::get_workspace_size(args);
    most = b > most ? b : most;
  }
  return most;
}

template <class G>
int launch(const void* x, const void* w, const void* group_exp, const float* channel_scale, const float* act_scale,
           void* y, int M, int N, int K, int group_size, int sm_count, void* workspace, size_t workspace_bytes,
           cudaStream_t stream) {
  const Layout l = layout(M, N, K, group_size);
  char* base = static_cast<char*>(workspace);
  auto* xq = reinterpret_cast<uint8_t*>(base + l.xq);
  auto* rows = reinterpret_cast<float*>(base + l.rows);
  auto* tables = reinterpret_cast<uint2*>(base + l.tables);
  void* ws = base + l.fixed;
  const size_t ws_bytes = workspace_bytes - l.fixed;
  auto args = arguments<G>(xq, w, tables, channel_scale, rows, y, M, N, K, group_size, sm_count, true);
  if (G::Gemm::get_workspace_size(args) > ws_bytes)  // too small for stream-K: one CTA per tile
    args = arguments<G>(xq, w, tables, channel_scale, rows, y, M, N, K, group_size, sm_count, false);
  typename G::Gemm gemm;
  if (gemm.can_implement(args) != cutlass::Status::kSuccess || G::Gemm::get_workspace_size(args) > ws_bytes)
    return QC_SM90_FALLBACK;

  const int groups = K / group_size;
  const size_t entries = (size_t)N * groups;
  qc_sm90_fp4_tables<<<(unsigned)((entries + 255) / 256), 256, 0, stream>>>(static_cast<const int8_t*>(group_exp),
                                                                              N, groups, tables);
  qc_sm90_quantize_rows<<<M, 256, 0, stream>>>(static_cast<const __half*>(x), K, act_scale, rows, xq);
  if (cudaGetLastError() != cudaSuccess) return QC_ERR_CUDA;
  if (gemm.initialize(args, ws, stream) != cutlass::Status::kSuccess) return QC_ERR_CUDA;
  if (gemm.run(stream) != cutlass::Status::kSuccess) return QC_ERR_CUDA;
  return cudaGetLastError() == cudaSuccess ? QC_OK : QC_ERR_CUDA;
}

}  // namespace

extern "C" size_t qc_sm90_w4a8_workspace_size(int M, int N, int K, int group_size, int format, int act_quant) {
  (void)act_quant;  // both modes keep s[m] per row
  const int sm_count = qc_sm90_sm_count();
  if (!taken(M, N, K, group_size, format) || sm_count <= 0) return 0;
  // xq and s[m] grow with M; CUTLASS's part is the most over every M' <= M (both tile kernels).
  size_t cut = cutlass_bytes_upto<Fp4Gemm<16>>(M < 16 ? M : 16, N, K, group_size, sm_count, 16);
  if (M > 16) {
    const size_t big = cutlass_bytes_upto<Fp4Gemm<128>>(M, N, K, group_size, sm_count, 128);
    cut = big > cut ? big : cut;
  }
  return layout(M, N, K, group_size).fixed + cut;
}

extern "C" int qc_sm90_w4a8_gemm(const void* x, const void* w, const void* group_exp, const void* channel_scale,
                                 const void* act_scale, void* y, int M, int N, int K, int group_size, int format,
                                 int act_quant, void* workspace, size_t workspace_bytes,
                                 struct CUstream_st* stream) {
  const bool per_token = act_quant == QC_ACT_PER_TOKEN;
  if (!taken(M, N, K, group_size, format) || !qc_sm90_available()) return QC_SM90_FALLBACK;
  if (!x || !w || !group_exp || !channel_scale || !y || (!per_token && !act_scale)) return QC_SM90_FALLBACK;
  if (act_quant != QC_ACT_PER_TOKEN && act_quant != QC_ACT_PER_TENSOR) return QC_SM90_FALLBACK;
  // TMA and the epilogue's 16-byte vector loads (qc_w4a8_gemm asks y for 2 bytes, channel_scale for 4)
  if (((size_t)x & 15) || ((size_t)w & 15) || ((size_t)y & 15) || ((size_t)channel_scale & 15))
    return QC_SM90_FALLBACK;
  if (!workspace || ((size_t)workspace & 15) || workspace_bytes < layout(M, N, K, group_size).fixed)
    return QC_SM90_FALLBACK;
  const int sm_count = qc_sm90_sm_count();
  if (sm_count <= 0) return QC_ERR_CUDA;
  const auto* cs = static_cast<const float*>(channel_scale);
  const auto* as = per_token ? nullptr : static_cast<const float*>(act_scale);
  cudaStream_t s = stream;
  return M <= 16 ? launch<Fp4Gemm<16>>(x, w, group_exp, cs, as, y, M, N, K, group_size, sm_count, workspace,
                                       workspace_bytes, s)
                 : launch<Fp4Gemm<128>>(x, w, group_exp, cs, as, y, M, N, K, group_size, sm_count, workspace,
                                        workspace_bytes, s);
}

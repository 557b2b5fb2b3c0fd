// CUTLASS SM90 mixed-input GEMM, instantiated for qcompile's transposed product (sm_90a only).
//
// qcompile computes y[M,N] = x[M,K] @ W[N,K]^T. Here the GEMM is D'[N,M] = W[N,K] x[M,K]^T: the
// 4-bit weights are CUTLASS's A operand (K-major, the one converted in registers and fed to a
// register-sourced wgmma, whose M side is 64 rows per warpgroup), the tokens its N side (the
// narrow wgmma dimension: a 16-token tile for decode), and D' stored column-major is y row-major.
#pragma once

#include <cuda_runtime.h>

#include "cute/tensor.hpp"
#include "cutlass/cutlass.h"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/operations.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/gemm/kernel/tile_scheduler.hpp"
#include "cutlass/util/packed_stride.hpp"

namespace qc_sm90 {

using namespace cute;

// Weights (A): ElementW with its per-group scale (and zero) type(s) in WTuple, K-major [N, K].
// Activations (B): ElementX, K-major [M, K]. Output: fp16, column-major [N, M] = row-major y.
// TokenTile: the CTA's token extent (wgmma N); the weight extent is 128 (two consumer warpgroups
// of 64 rows, cooperative schedule); K tile 128 bytes of the MMA type (64 fp16 / 128 fp8).
// The int4_sm90 weight layout (docs/LAYOUTS.md, version 3): CUTLASS's
// compute_memory_reordering_atom<half_t, Layout<(1,1)>, Layout<(2,4):(4,1)>>() written out (its
// CuTe print: (((_8,_2),_1),((_2,_4,_2),_1)):(((_32,_1),_0),((_4,_8,_2),_0))): one wgmma thread's 8
// weights in one 32-bit word, in the order of CUTLASS's [0,2,4,6,1,3,5,7] INT4 -> FP16 converter;
// tiled over [N, K] with tile_to_shape (N-tiles fastest).
using ShuffleAtom = Layout<Shape<Shape<Shape<_8, _2>, _1>, Shape<Shape<_2, _4, _2>, _1>>,
                           Stride<Stride<Stride<_32, _1>, _0>, Stride<Stride<_4, _8, _2>, _0>>>;

// Shuffled: the weights in the int4_sm90 layout (else layout 1, [N, K/2] row-major nibbles).
// Fusion: the epilogue's fusion callbacks (default: D' = acc, alpha 1, no C).
template <class WTuple, class ElementX, int TokenTile, bool Shuffled = false,
          class Fusion = cutlass::epilogue::fusion::LinearCombination<cutlass::half_t, float, void, float>>
struct MixedGemm {
  using StrideWRow = cutlass::detail::TagToStrideA_t<cutlass::layout::RowMajor>;
  using LayoutWShuffled = decltype(tile_to_shape(ShuffleAtom{}, Layout<Shape<int, int, int>, StrideWRow>{}));
  // A [N, K], K contiguous (a cute Layout in place of the tag when shuffled)
  using LayoutW = cute::conditional_t<Shuffled, LayoutWShuffled, cutlass::layout::RowMajor>;
  using LayoutX = cutlass::layout::ColumnMajor;  // B [K, M] column-major = x [M, K] row-major
  using LayoutY = cutlass::layout::ColumnMajor;  // D' [N, M] column-major = y [M, N] row-major
  using ElementW = cute::remove_cvref_t<decltype(get<0>(WTuple{}))>;
  using ElementY = cutlass::half_t;
  static constexpr int kAlignW = 128 / cutlass::sizeof_bits<ElementW>::value;
  static constexpr int kAlignX = 128 / cutlass::sizeof_bits<ElementX>::value;
  static constexpr int kAlignY = 128 / cutlass::sizeof_bits<ElementY>::value;
  static constexpr int kTileK = 128 * 8 / cutlass::sizeof_bits<ElementX>::value;
  using TileShape = Shape<_128, Int<TokenTile>, Int<kTileK>>;
  using ClusterShape = Shape<_1, _1, _1>;

  using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
      cutlass::epilogue::collective::EpilogueTileAuto, float, float, void, LayoutY, kAlignY, ElementY,
      LayoutY, kAlignY, cutlass::epilogue::TmaWarpSpecializedCooperative, Fusion>::CollectiveOp;

  using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, WTuple, LayoutW, kAlignW, ElementX, LayoutX,
      kAlignX, float, TileShape, ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename Epilogue::SharedStorage))>,
      cutlass::gemm::KernelTmaWarpSpecializedCooperative>::CollectiveOp;

  using Kernel = cutlass::gemm::kernel::GemmUniversal<Shape<int, int, int, int>, Mainloop, Epilogue,
                                                      cutlass::gemm::StreamKScheduler>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;
  using Arguments = typename Gemm::Arguments;
  using StrideW = typename Kernel::StrideA;
  using StrideX = typename Kernel::StrideB;
  using StrideY = typename Kernel::StrideD;
  using StrideS = typename Mainloop::StrideScale;
  using Decomposition = typename Kernel::TileScheduler::DecompositionMode;

  // Scales (and zeros) are [N, K/g] with N contiguous (CUTLASS wants them MN-major for TMA).
  // stream_k: let CUTLASS's heuristic pick stream-K / split-K (needs its workspace), else one CTA
  // per output tile.
  // The epilogue's fusion arguments are left default (the caller sets args.epilogue.thread).
  static Arguments arguments(const void* x, const void* w, const void* scales_t, const void* zeros_t,
                             void* y, int M, int N, int K, int group_size, int sm_count, bool stream_k) {
    const int groups = K / group_size;
    const auto sx = cutlass::make_cute_packed_stride(StrideX{}, make_shape(M, K, 1));
    const auto sy = cutlass::make_cute_packed_stride(StrideY{}, make_shape(N, M, 1));
    const auto ss = cutlass::make_cute_packed_stride(StrideS{}, make_shape(N, groups, 1));
    using ElementScale = typename Mainloop::ElementScale;
    Arguments args{};
    args.mode = cutlass::gemm::GemmUniversalMode::kGemm;
    args.problem_shape = {N, M, K, 1};
    args.mainloop.ptr_A = static_cast<const ElementW*>(w);
    if constexpr (Shuffled)
      args.mainloop.dA = tile_to_shape(ShuffleAtom{}, make_shape(N, K, 1));
    else
      args.mainloop.dA = cutlass::make_cute_packed_stride(StrideW{}, make_shape(N, K, 1));
    args.mainloop.ptr_B = static_cast<const ElementX*>(x);
    args.mainloop.dB = sx;
    args.mainloop.ptr_S = static_cast<const ElementScale*>(scales_t);
    args.mainloop.dS = ss;
    args.mainloop.group_size = group_size;
    if constexpr (Mainloop::KernelConversionMode ==
                  cutlass::detail::ConversionMode::ConvertAndScaleWithZero)
      args.mainloop.ptr_Z = static_cast<const typename Mainloop::ElementZero*>(zeros_t);
    args.epilogue.ptr_C = nullptr;
    args.epilogue.dC = sy;
    args.epilogue.ptr_D = static_cast<ElementY*>(y);
    args.epilogue.dD = sy;
    if (cudaGetDevice(&args.hw_info.device_id) != cudaSuccess) args.hw_info.device_id = 0;
    args.hw_info.sm_count = sm_count;
    args.scheduler.decomposition_mode = stream_k ? Decomposition::Heuristic : Decomposition::DataParallel;
    return args;
  }
};

}  // namespace qc_sm90

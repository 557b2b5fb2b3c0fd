// Host helpers shared by the sm_90a entry points (qc_sm90_common.cpp).
#pragma once

#include <stddef.h>

inline size_t qc_sm90_align256(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

// Multiprocessor count of the current device, or -1 when it cannot be read.
__attribute__((visibility("hidden"))) int qc_sm90_sm_count();

struct CUstream_st;

// The layout 3 (int4_sm90) kernels of qc_sm90_w4a16_gemm (qc_sm90_w4a16_shuffled.cu).
__attribute__((visibility("hidden"))) int qc_sm90_w4a16_run_shuffled(
    bool uint4, bool small, const void* x, const void* w, const void* scales, const void* zeros, void* y, int M,
    int N, int K, int group_size, int sm_count, void* workspace, size_t workspace_bytes, CUstream_st* stream);

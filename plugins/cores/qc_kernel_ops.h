// The kernel calls a core makes, as function pointers, so that cores link and are tested without
// CUDA. qc_kernel_bindings.cpp fills them with the kernels' C ABI (qc_*_gemm, qc_*_workspace_size,
// qc_*_check_shape); tests fill them with fakes.
#pragma once
#include <cstddef>
#include <cstdint>

namespace qc {

struct GemmProblem {
    std::int64_t m, n, k;
    std::int32_t group_size;  // 0 for per-channel formats
    const char* format;       // the "format" attribute, e.g. "fp6_e3m2", "int4"
    bool has_zeros;
    bool act_per_token;       // W4A8 "act_quant" == "per_token"
    std::int32_t layout_version;
};

struct GemmLaunch {
    GemmProblem problem;
    const void* const* inputs;  // in spec order (x, packed weights, scales, ...)
    std::int32_t nb_inputs;
    void* output;
    void* workspace;
    std::size_t workspace_bytes;
    void* stream;  // cudaStream_t
};

struct KernelOps {
    // Returns 0 if the kernel takes this problem, else a kernel status code (qc_status.h).
    std::int32_t (*check_shape)(const GemmProblem&);
    std::size_t (*workspace_size)(const GemmProblem&);
    std::int32_t (*launch)(const GemmLaunch&);
    const char* (*status_string)(std::int32_t);
};

// The real kernels for a plugin ("QcW6A16Gemm", ...); defined in qc_kernel_bindings.cpp, which is
// compiled only where the kernel library is built. ok=false if the name is unknown.
KernelOps kernel_ops_for(const char* plugin_name, bool& ok);

}  // namespace qc

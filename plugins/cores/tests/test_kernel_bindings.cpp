// The binding of the cores to the kernels' C ABI (qc_kernel_bindings.cpp), without CUDA: the real
// host-side qc_*_check_shape / qc_*_workspace_size, and stand-ins for the three qc_*_gemm launch
// functions that record the arguments they receive.
#include <cstdio>
#include <cstring>
#include <string>

#include "qc_gemm_core.h"
#include "qc_status.h"
#include "w4a16.h"
#include "w4a8.h"
#include "w6a16.h"

#include "check.h"

struct Recorded {
    const void* ptr[6];
    int m, n, k, group_size, format, act_quant, layout;
    size_t workspace_bytes;
    CUstream_st* stream;
};
static Recorded g_last;

extern "C" int qc_w6a16_gemm(const void* x, const void* lo4, const void* hi2, const void* scales, void* y, int M, int N,
                             int K, int format, int layout, void*, size_t workspace_bytes, CUstream_st* stream) {
    g_last = {{x, lo4, hi2, scales, y, nullptr}, M, N, K, 0, format, -1, layout, workspace_bytes, stream};
    return QC_OK;
}
extern "C" int qc_w4a16_gemm(const void* x, const void* w, const void* scales, const void* zeros, void* y, int M, int N,
                             int K, int group_size, int format, int layout, void*, size_t workspace_bytes,
                             CUstream_st* stream) {
    g_last = {{x, w, scales, zeros, y, nullptr}, M, N, K, group_size, format, -1, layout, workspace_bytes, stream};
    return QC_OK;
}
extern "C" int qc_w4a8_gemm(const void* x, const void* w, const void* e, const void* cs, const void* as, void* y, int M,
                            int N, int K, int group_size, int format, int act_quant, void*, size_t workspace_bytes,
                            CUstream_st* stream) {
    g_last = {{x, w, e, cs, as, y}, M, N, K, group_size, format, act_quant, 1, workspace_bytes, stream};
    return QC_ERR_UNSUPPORTED_ARCH;
}

using namespace qc;

static std::unique_ptr<GemmCore> make(const char* name, const FieldList& fields, std::string& error) {
    bool ok = false;
    KernelOps ops = kernel_ops_for(name, ok);
    CHECK(ok);
    return GemmCore::create(*find_plugin_spec(name), fields, ops, error);
}

int main() {
    std::string error;
    int a[6];
    const void* in[5] = {&a[0], &a[1], &a[2], &a[3], &a[4]};
    auto stream = reinterpret_cast<CUstream_st*>(&a[5]);

    auto w6 = make("QcW6A16Gemm", {int_field("N", 8), int_field("K", 128), string_field("format", "fp6_e2m3")}, error);
    CHECK(w6 != nullptr);
    if (w6) {
        CHECK(w6->workspace_size(16) == qc_w6a16_workspace_size(16, 8, 128));
        CHECK(w6->enqueue({2, 3, 128}, in, &a[5], nullptr, 0, stream) == QC_OK);
        CHECK(g_last.ptr[0] == in[0] && g_last.ptr[1] == in[1] && g_last.ptr[2] == in[2] && g_last.ptr[3] == in[3]);
        CHECK(g_last.ptr[4] == &a[5] && g_last.stream == stream);
        CHECK(g_last.m == 6 && g_last.n == 8 && g_last.k == 128 && g_last.format == QC_FMT_FP6_E2M3);
        CHECK(g_last.layout == 1);
    }
    auto w6_v2 = make("QcW6A16Gemm", {int_field("N", 32), int_field("K", 128), int_field("layout_version", 2)}, error);
    CHECK(w6_v2 != nullptr);
    if (w6_v2) {
        CHECK(w6_v2->enqueue({4, 128}, in, &a[5], nullptr, 0, stream) == QC_OK);
        CHECK(g_last.layout == 2 && g_last.n == 32 && g_last.k == 128 && g_last.format == QC_FMT_FP6_E3M2);
    }
    // fp6_v2 tiles are 16 x 64: the kernel's check refuses N = 8 with layout 2.
    auto w6_v2_n8 = make("QcW6A16Gemm", {int_field("N", 8), int_field("K", 128), int_field("layout_version", 2)}, error);
    CHECK(w6_v2_n8 == nullptr && error.find("bad shape") != std::string::npos);

    auto w4 = make("QcW4A16Gemm", {int_field("N", 16), int_field("K", 256), int_field("group_size", 64),
                                   string_field("format", "uint4"), int_field("has_zeros", 1)}, error);
    CHECK(w4 != nullptr);
    if (w4) {
        CHECK(w4->enqueue({4, 256}, in, &a[5], nullptr, 0, stream) == QC_OK);
        CHECK(g_last.ptr[3] == in[3] && g_last.group_size == 64 && g_last.format == QC_FMT_UINT4 && g_last.m == 4);
    }
    auto w4_no_zeros = make("QcW4A16Gemm", {int_field("N", 16), int_field("K", 256)}, error);
    CHECK(w4_no_zeros != nullptr);
    if (w4_no_zeros) {
        CHECK(w4_no_zeros->enqueue({4, 256}, in, &a[5], nullptr, 0, stream) == QC_OK);
        CHECK(g_last.ptr[3] == nullptr && g_last.format == QC_FMT_INT4 && g_last.group_size == 128);
        CHECK(g_last.layout == 1);
    }
    auto w4_v2 = make("QcW4A16Gemm", {int_field("N", 32), int_field("K", 128), int_field("layout_version", 2)}, error);
    CHECK(w4_v2 != nullptr);
    if (w4_v2) {
        CHECK(w4_v2->enqueue({4, 128}, in, &a[5], nullptr, 0, stream) == QC_OK);
        CHECK(g_last.layout == 2 && g_last.n == 32 && g_last.k == 128);
    }
    // int4_v2 tiles are 16 x 64 and take INT4 / UINT4 only: the kernel's check refuses the rest.
    auto v2_n8 = make("QcW4A16Gemm", {int_field("N", 8), int_field("K", 128), int_field("layout_version", 2)}, error);
    CHECK(v2_n8 == nullptr && error.find("bad shape") != std::string::npos);
    auto v2_fp4 = make("QcW4A16Gemm", {int_field("N", 16), int_field("K", 128), int_field("layout_version", 2),
                                       string_field("format", "fp4_e2m1")}, error);
    CHECK(v2_fp4 == nullptr && error.find("unsupported format") != std::string::npos);
    // int4_sm90 (layout 3): what the sm_90a path takes (16 x 16 atoms, INT4 / UINT4, groups 64 and 128).
    auto w4_sm90 = make("QcW4A16Gemm", {int_field("N", 16), int_field("K", 128), int_field("layout_version", 3)}, error);
    CHECK(w4_sm90 != nullptr);
    if (w4_sm90) {
        CHECK(w4_sm90->enqueue({4, 128}, in, &a[5], nullptr, 0, stream) == QC_OK);
        CHECK(g_last.layout == 3 && g_last.n == 16 && g_last.k == 128);
    }
    auto sm90_n8 = make("QcW4A16Gemm", {int_field("N", 8), int_field("K", 128), int_field("layout_version", 3)}, error);
    CHECK(sm90_n8 == nullptr && error.find("bad shape") != std::string::npos);
    auto sm90_g32 = make("QcW4A16Gemm", {int_field("N", 16), int_field("K", 128), int_field("layout_version", 3),
                                         int_field("group_size", 32)}, error);
    CHECK(sm90_g32 == nullptr && error.find("bad argument") != std::string::npos);
    auto sm90_fp4 = make("QcW4A16Gemm", {int_field("N", 16), int_field("K", 128), int_field("layout_version", 3),
                                         string_field("format", "fp4_e2m1")}, error);
    CHECK(sm90_fp4 == nullptr && error.find("unsupported format") != std::string::npos);
    // The kernel refuses zero points with a signed format; the core reports it when created.
    auto signed_zeros = make("QcW4A16Gemm", {int_field("N", 16), int_field("K", 256), int_field("has_zeros", 1)}, error);
    CHECK(signed_zeros == nullptr && error.find("unsupported format") != std::string::npos);

    auto w4a8 = make("QcW4A8Gemm", {int_field("N", 8), int_field("K", 128), int_field("group_size", 32),
                                    string_field("act_quant", "per_token")}, error);
    CHECK(w4a8 != nullptr);
    if (w4a8) {
        CHECK(w4a8->workspace_size(5) == qc_w4a8_workspace_size(5, 8, 128, 32, QC_ACT_PER_TOKEN));
        CHECK(w4a8->enqueue({5, 128}, in, &a[5], nullptr, 0, stream) == QC_ERR_UNSUPPORTED_ARCH);
        CHECK(g_last.ptr[4] == in[4] && g_last.ptr[5] == &a[5] && g_last.act_quant == QC_ACT_PER_TOKEN);
        CHECK(g_last.format == QC_FMT_FP4_E2M1 && g_last.group_size == 32);
        CHECK(std::strcmp(w4a8->status_string(QC_ERR_UNSUPPORTED_ARCH), "unsupported GPU architecture") == 0);
    }
    bool ok = true;
    kernel_ops_for("QcNope", ok);
    CHECK(!ok);
    if (g_failures) std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    else std::printf("all kernel binding checks passed\n");
    return g_failures ? 1 : 0;
}

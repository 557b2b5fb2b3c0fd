// KernelOps for the real kernels: the cores' GemmProblem / GemmLaunch translated to the C ABI of
// plugins/w6a16, w4a16 and w4a8 (status codes and format codes of plugins/common/qc_status.h).
#include <climits>
#include <cstring>

#include <algorithm>

#include "qc_kernel_ops.h"
#include "qc_sm90_gemm.h"
#include "qc_status.h"
#include "w4a16.h"
#include "w4a8.h"
#include "w6a16.h"

namespace qc {
namespace {

int format_code(const char* format) {
    struct Code {
        const char* name;
        int code;
    };
    static const Code codes[] = {{"fp6_e3m2", QC_FMT_FP6_E3M2}, {"fp6_e2m3", QC_FMT_FP6_E2M3}, {"int4", QC_FMT_INT4},
                                 {"uint4", QC_FMT_UINT4}, {"fp4_e2m1", QC_FMT_FP4_E2M1}};
    for (const Code& c : codes)
        if (std::strcmp(format, c.name) == 0) return c.code;
    return -1;
}

bool fits_int(const GemmProblem& p) { return p.m >= 0 && p.m <= INT_MAX && p.n <= INT_MAX && p.k <= INT_MAX; }
int act_quant(const GemmProblem& p) { return p.act_per_token ? QC_ACT_PER_TOKEN : QC_ACT_PER_TENSOR; }
CUstream_st* stream_of(const GemmLaunch& l) { return static_cast<CUstream_st*>(l.stream); }
const char* status_string(std::int32_t status) { return qc_status_string(status); }

std::int32_t w6a16_check(const GemmProblem& p) {
    return fits_int(p) ? qc_w6a16_check_shape(int(p.m), int(p.n), int(p.k), format_code(p.format), p.layout_version)
                       : QC_ERR_SHAPE;
}
std::size_t w6a16_workspace(const GemmProblem& p) {
    return fits_int(p) ? qc_w6a16_workspace_size(int(p.m), int(p.n), int(p.k)) : 0;
}
std::int32_t w6a16_launch(const GemmLaunch& l) {
    const GemmProblem& p = l.problem;
    if (!fits_int(p) || l.nb_inputs != 4) return QC_ERR_SHAPE;
    return qc_w6a16_gemm(l.inputs[0], l.inputs[1], l.inputs[2], l.inputs[3], l.output, int(p.m), int(p.n), int(p.k),
                         format_code(p.format), p.layout_version, l.workspace, l.workspace_bytes, stream_of(l));
}

std::int32_t w4a16_check(const GemmProblem& p) {
    return fits_int(p) ? qc_w4a16_check_shape(int(p.m), int(p.n), int(p.k), p.group_size, format_code(p.format),
                                              p.has_zeros ? 1 : 0, p.layout_version)
                       : QC_ERR_SHAPE;
}
std::size_t w4a16_workspace(const GemmProblem& p) {
    if (!fits_int(p)) return 0;
    const int m = int(p.m), n = int(p.n), k = int(p.k), fmt = format_code(p.format);  // either path may run
    return std::max(qc_w4a16_workspace_size(m, n, k, p.group_size),
                    qc_sm90_w4a16_workspace_size(m, n, k, p.group_size, fmt, p.has_zeros ? 1 : 0));
}
std::int32_t w4a16_launch(const GemmLaunch& l) {
    const GemmProblem& p = l.problem;
    if (!fits_int(p) || l.nb_inputs != (p.has_zeros ? 4 : 3)) return QC_ERR_SHAPE;
    return qc_w4a16_gemm(l.inputs[0], l.inputs[1], l.inputs[2], p.has_zeros ? l.inputs[3] : nullptr, l.output,
                         int(p.m), int(p.n), int(p.k), p.group_size, format_code(p.format), p.layout_version,
                         l.workspace, l.workspace_bytes, stream_of(l));
}

std::int32_t w4a8_check(const GemmProblem& p) {
    return fits_int(p) ? qc_w4a8_check_shape(int(p.m), int(p.n), int(p.k), p.group_size, format_code(p.format),
                                             act_quant(p))
                       : QC_ERR_SHAPE;
}
std::size_t w4a8_workspace(const GemmProblem& p) {
    if (!fits_int(p)) return 0;
    const int m = int(p.m), n = int(p.n), k = int(p.k), fmt = format_code(p.format);  // either path may run
    return std::max(qc_w4a8_workspace_size(m, n, k, p.group_size, act_quant(p)),
                    qc_sm90_w4a8_workspace_size(m, n, k, p.group_size, fmt, act_quant(p)));
}
std::int32_t w4a8_launch(const GemmLaunch& l) {
    const GemmProblem& p = l.problem;
    if (!fits_int(p) || l.nb_inputs != 5) return QC_ERR_SHAPE;
    return qc_w4a8_gemm(l.inputs[0], l.inputs[1], l.inputs[2], l.inputs[3], l.inputs[4], l.output, int(p.m), int(p.n),
                        int(p.k), p.group_size, format_code(p.format), act_quant(p), l.workspace, l.workspace_bytes,
                        stream_of(l));
}

}  // namespace

KernelOps kernel_ops_for(const char* plugin_name, bool& ok) {
    ok = true;
    if (std::strcmp(plugin_name, "QcW6A16Gemm") == 0) return {w6a16_check, w6a16_workspace, w6a16_launch, status_string};
    if (std::strcmp(plugin_name, "QcW4A16Gemm") == 0) return {w4a16_check, w4a16_workspace, w4a16_launch, status_string};
    if (std::strcmp(plugin_name, "QcW4A8Gemm") == 0) return {w4a8_check, w4a8_workspace, w4a8_launch, status_string};
    ok = false;
    return {nullptr, nullptr, nullptr, nullptr};
}

}  // namespace qc

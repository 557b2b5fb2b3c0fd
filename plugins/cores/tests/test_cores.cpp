// ctest of the TensorRT-free plugin cores: attributes, shape and type rules, serialization, and the
// kernel call (through fake KernelOps: no CUDA here).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "qc_gemm_core.h"
#include "qc_plugin_spec_table.h"

#include "check.h"
#define REQUIRE(cond)   \
    do {                \
        CHECK(cond);    \
        if (!(cond)) return; \
    } while (0)
#define CHECK_CONTAINS(text, part)                                                          \
    do {                                                                                    \
        std::string t_ = (text);                                                            \
        if (t_.find(part) == std::string::npos) {                                           \
            std::fprintf(stderr, "%s:%d: '%s' does not contain '%s'\n", __FILE__, __LINE__, t_.c_str(), part); \
            ++g_failures;                                                                   \
        }                                                                                   \
    } while (0)

using namespace qc;

namespace {

struct FakeKernel {
    GemmLaunch last{};
    std::int32_t status = 0;
};
FakeKernel* g_fake = nullptr;  // the fake's record; the KernelOps are plain function pointers

std::int32_t fake_check(const GemmProblem& p) { return p.n == 4096 ? 7 : 0; }
std::size_t fake_workspace(const GemmProblem& p) { return static_cast<std::size_t>(p.m * p.n * 4); }
std::int32_t fake_launch(const GemmLaunch& l) {
    g_fake->last = l;
    return g_fake->status;
}
const char* fake_status(std::int32_t s) { return s == 7 ? "unsupported shape" : "other"; }
const KernelOps kFakeOps{fake_check, fake_workspace, fake_launch, fake_status};

std::unique_ptr<GemmCore> make(const char* name, const FieldList& fields, std::string& error) {
    const spec::PluginSpec* s = find_plugin_spec(name);
    return s ? GemmCore::create(*s, fields, kFakeOps, error) : nullptr;
}

std::string error_of(const char* name, const FieldList& fields) {
    std::string error;
    auto core = make(name, fields, error);
    return core ? "" : error;
}

void test_spec_table() {
    CHECK(spec::kNbPlugins == 3);
    CHECK(std::strcmp(spec::kNamespace, "qcompile") == 0);
    CHECK(find_plugin_spec("QcW6A16Gemm") != nullptr);
    CHECK(find_plugin_spec("QcW4A16Gemm") != nullptr);
    CHECK(find_plugin_spec("QcW4A8Gemm") != nullptr);
    CHECK(find_plugin_spec("QcNope") == nullptr);
}

void test_valid_attributes_and_defaults() {
    std::string error;
    auto core = make("QcW4A16Gemm", {int_field("N", 16), int_field("K", 256)}, error);
    CHECK(core != nullptr);
    if (!core) return;
    CHECK(core->attributes().get_int("group_size") == 128);
    CHECK(core->attributes().get_string("format") == "int4");
    CHECK(core->attributes().get_int("layout_version") == 1);
    CHECK(core->fields().size() == 6);
    CHECK(core->nb_inputs() == 3);
    auto w6 = make("QcW6A16Gemm", {int_field("N", 8), int_field("K", 64), string_field("format", "fp6_e2m3")}, error);
    CHECK(w6 != nullptr && w6->attributes().get_string("format") == "fp6_e2m3");
}

void test_invalid_attributes() {
    CHECK_CONTAINS(error_of("QcW4A16Gemm", {int_field("N", 16)}), "attribute 'K' is required");
    CHECK_CONTAINS(error_of("QcW4A16Gemm", {int_field("N", 16), int_field("K", 256), int_field("bits", 4)}),
                   "unknown attribute 'bits'");
    CHECK_CONTAINS(error_of("QcW4A16Gemm", {int_field("N", 16), int_field("K", 256), int_field("format", 1)}),
                   "attribute 'format' must be a string");
    CHECK_CONTAINS(error_of("QcW4A16Gemm", {string_field("N", "16"), int_field("K", 256)}),
                   "attribute 'N' must be an int");
    CHECK_CONTAINS(error_of("QcW4A16Gemm", {int_field("N", 16), int_field("K", 256), int_field("group_size", 48)}),
                   "attribute 'group_size' is 48, expected one of {32, 64, 128}");
    CHECK_CONTAINS(error_of("QcW4A8Gemm", {int_field("N", 16), int_field("K", 256), string_field("format", "uint4")}),
                   "attribute 'format' is 'uint4'");
    CHECK_CONTAINS(error_of("QcW4A8Gemm", {int_field("N", 16), int_field("K", 256), int_field("layout_version", 2)}),
                   "layout_version' is 2");
    // QcW6A16Gemm lists its layout versions (1 fp6_4+2, 2 fp6_v2): 2 is taken, 3 is not.
    CHECK(error_of("QcW6A16Gemm", {int_field("N", 16), int_field("K", 64), int_field("layout_version", 2)}).empty());
    CHECK_CONTAINS(error_of("QcW6A16Gemm", {int_field("N", 16), int_field("K", 64), int_field("layout_version", 3)}),
                   "attribute 'layout_version' is 3");
    // QcW4A16Gemm lists its layout versions (1 nibble, 2 int4_v2, 3 int4_sm90): 2 and 3 are taken, 4 is not.
    CHECK(error_of("QcW4A16Gemm", {int_field("N", 16), int_field("K", 128), int_field("layout_version", 2)}).empty());
    CHECK(error_of("QcW4A16Gemm", {int_field("N", 16), int_field("K", 128), int_field("layout_version", 3)}).empty());
    CHECK_CONTAINS(error_of("QcW4A16Gemm", {int_field("N", 16), int_field("K", 128), int_field("layout_version", 4)}),
                   "attribute 'layout_version' is 4");
    CHECK_CONTAINS(error_of("QcW6A16Gemm", {int_field("N", 8), int_field("K", 96)}), "K=96 is not a positive multiple of 64");
    CHECK_CONTAINS(error_of("QcW4A16Gemm", {int_field("N", 16), int_field("K", 96), int_field("group_size", 64)}),
                   "K=96 is not a positive multiple of 64");
    CHECK_CONTAINS(error_of("QcW4A16Gemm", {int_field("N", 12), int_field("K", 256)}), "N=12");
    CHECK_CONTAINS(error_of("QcW4A16Gemm", {int_field("N", -8), int_field("K", 256)}), "N=-8");
    CHECK_CONTAINS(error_of("QcW4A16Gemm", {int_field("N", 4096), int_field("K", 256)}), "unsupported shape");
}

void test_shape_rules() {
    std::string error;
    auto core = make("QcW4A16Gemm", {int_field("N", 16), int_field("K", 256), int_field("group_size", 64)}, error);
    REQUIRE(core != nullptr);
    CHECK(core->check_inputs({{2, 3, 256}, {16, 128}, {16, 4}}) == "");
    CHECK(core->check_inputs({{-1, -1, 256}, {16, 128}, {16, 4}}) == "");
    CHECK_CONTAINS(core->check_inputs({{2, 3, 128}, {16, 128}, {16, 4}}), "input 'x' has shape [2, 3, 128], dim 2 must be K=256");
    CHECK_CONTAINS(core->check_inputs({{2, 256}, {16, 64}, {16, 4}}), "dim 1 must be K/2=128");
    CHECK_CONTAINS(core->check_inputs({{2, 256}, {16, 128}, {16, 2}}), "dim 1 must be K/group_size=4");
    CHECK_CONTAINS(core->check_inputs({{256}, {16, 128}, {16, 4}}), "expected rank at least 2");
    CHECK_CONTAINS(core->check_inputs({{2, 256}, {16, 128}}), "2 inputs, expected 3");
    CHECK((core->output_dims({2, 3, 256}) == Dims{2, 3, 16}));
    CHECK((core->output_dims({-1, 256}) == Dims{-1, 16}));

    auto zeros = make("QcW4A16Gemm", {int_field("N", 16), int_field("K", 256), int_field("has_zeros", 1),
                                      string_field("format", "uint4")}, error);
    REQUIRE(zeros != nullptr);
    CHECK(zeros->nb_inputs() == 4);
    CHECK(zeros->check_inputs({{2, 256}, {16, 128}, {16, 2}, {16, 2}}) == "");

    auto w4a8 = make("QcW4A8Gemm", {int_field("N", 8), int_field("K", 128), int_field("group_size", 32)}, error);
    REQUIRE(w4a8 != nullptr);
    CHECK(w4a8->check_inputs({{4, 128}, {8, 64}, {8, 4}, {8}, {1}}) == "");
    CHECK_CONTAINS(w4a8->check_inputs({{4, 128}, {8, 64}, {8, 4}, {8}, {2}}), "input 'act_scale'");
}

void test_types() {
    std::string error;
    auto core = make("QcW4A8Gemm", {int_field("N", 8), int_field("K", 128)}, error);
    REQUIRE(core != nullptr);
    using spec::DType;
    CHECK(core->supports(0, DType::kFloat16) && !core->supports(0, DType::kFloat32));
    CHECK(core->supports(1, DType::kInt8) && !core->supports(1, DType::kUInt8));  // packed bytes
    CHECK(core->supports(2, DType::kInt8) && !core->supports(2, DType::kUInt8));
    CHECK(core->supports(3, DType::kFloat32) && !core->supports(3, DType::kFloat16));
    CHECK(core->supports(4, DType::kFloat32));
    CHECK(core->supports(5, DType::kFloat16) && !core->supports(5, DType::kFloat32));  // the output
    CHECK(!core->supports(6, DType::kFloat16));
    CHECK(core->output_dtype(0) == DType::kFloat16);
}

void test_serialization_round_trip() {
    std::string error;
    auto core = make("QcW4A8Gemm", {int_field("N", 8), int_field("K", 128), string_field("act_quant", "per_token")}, error);
    REQUIRE(core != nullptr);
    std::vector<RawField> raw = to_raw(core->fields());
    FieldList back;
    CHECK(from_raw(raw.data(), static_cast<int>(raw.size()), back) == "");
    CHECK(back == core->fields());
    auto again = make("QcW4A8Gemm", back, error);
    CHECK(again != nullptr && again->fields() == core->fields());
    auto copy = core->clone();
    CHECK(copy->fields() == core->fields());

    // As TensorRT's ONNX parser passes them: INT as kINT32, STRING as kCHAR without a NUL.
    std::int32_t n = 8;
    std::int64_t k = 128;
    const char fmt[] = {'i', 'n', 't', '4'};
    RawField parsed[] = {{"N", &n, RawType::kInt32, 1}, {"K", &k, RawType::kInt64, 1}, {"format", fmt, RawType::kChar, 4}};
    CHECK(from_raw(parsed, 3, back) == "");
    CHECK(back.size() == 3 && back[2].second.s == "int4" && back[1].second.i == 128);
    std::int64_t huge = 1LL << 40;
    RawField too_big[] = {{"K", &huge, RawType::kInt64, 1}};
    CHECK_CONTAINS(from_raw(too_big, 1, back), "does not fit in int32");
    RawField two[] = {{"N", &k, RawType::kInt64, 2}};
    CHECK_CONTAINS(from_raw(two, 1, back), "exactly one value");
    float f = 1.0f;
    RawField flt[] = {{"N", &f, RawType::kOther, 1}};
    CHECK_CONTAINS(from_raw(flt, 1, back), "unsupported type");
}

void test_enqueue_and_workspace() {
    std::string error;
    auto core = make("QcW6A16Gemm", {int_field("N", 8), int_field("K", 64)}, error);
    REQUIRE(core != nullptr);
    CHECK(core->workspace_size(32) == 32u * 8u * 4u);
    FakeKernel fake;
    g_fake = &fake;
    int x, lo4, hi2, scales, y, ws, stream;
    const void* inputs[] = {&x, &lo4, &hi2, &scales};
    CHECK(core->enqueue({2, 3, 64}, inputs, &y, &ws, 96, &stream) == 0);
    CHECK(fake.last.problem.m == 6 && fake.last.problem.n == 8 && fake.last.problem.k == 64);
    CHECK(std::strcmp(fake.last.problem.format, "fp6_e3m2") == 0);
    CHECK(fake.last.inputs == inputs && fake.last.nb_inputs == 4 && fake.last.output == &y);
    CHECK(fake.last.workspace == &ws && fake.last.workspace_bytes == 96 && fake.last.stream == &stream);
    fake.status = 7;
    CHECK(core->enqueue({5, 64}, inputs, &y, nullptr, 0, &stream) == 7);
    CHECK(fake.last.problem.m == 5);
    CHECK(std::strcmp(core->status_string(7), "unsupported shape") == 0);
    g_fake = nullptr;
}

}  // namespace

int main() {
    test_spec_table();
    test_valid_attributes_and_defaults();
    test_invalid_attributes();
    test_shape_rules();
    test_types();
    test_serialization_round_trip();
    test_enqueue_and_workspace();
    if (g_failures) std::fprintf(stderr, "%d check(s) failed\n", g_failures);
    else std::printf("all plugin core checks passed\n");
    return g_failures ? 1 : 0;
}

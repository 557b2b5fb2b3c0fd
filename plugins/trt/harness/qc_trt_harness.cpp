// Drives libqc_trt_plugins.so through TensorRT's own plugin interfaces, without libnvinfer: the
// library calls nothing in it (nm -D --undefined-only), and what TensorRT would hand the plugins
// (a logger finder, an IExprBuilder) is provided here. Usage:
//   qc_trt_harness LIBRARY CASES    (CASES: tests/trt/harness_cases.py's file of emitted nodes)
// Prints one line per failed check and a summary; exit 0 only if every check passed.
// qc_trt_static_harness runs the same checks on the static registration path. Not covered:
// enqueue (needs a GPU and TensorRT's tensors).
#include <NvInferRuntime.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace nvinfer1;

namespace {

int g_failures = 0, g_checks = 0;
#define CHECK(cond, what)                                                                        \
    do {                                                                                         \
        ++g_checks;                                                                              \
        if (!(cond)) {                                                                           \
            ++g_failures;                                                                        \
            std::printf("FAIL %s: %s (%s:%d)\n", g_case.c_str(), what, __FILE__, __LINE__);     \
        }                                                                                        \
    } while (0)
std::string g_case;

class Logger : public ILogger {
public:
    void log(Severity severity, AsciiChar const* msg) noexcept override {
        if (severity <= Severity::kERROR) errors.emplace_back(msg);
    }
    std::vector<std::string> errors;
};
Logger g_logger;

class Finder : public ILoggerFinder {
public:
    ILogger* findLogger() noexcept override { return &g_logger; }
};

// A minimal IExprBuilder: constants fold, everything else is an opaque (run-time) dimension.
class DimImpl : public apiv::VDimensionExpr {
public:
    DimImpl(bool constant, int64_t value) : constant_(constant), value_(value) {}
    bool isConstant() const override { return constant_; }
    int64_t getConstantValue() const override { return value_; }
    bool isSizeTensor() const override { return false; }

private:
    bool constant_;
    int64_t value_;
};
class Dim : public IDimensionExpr {
public:
    Dim(bool constant, int64_t value) : impl_(constant, value) { mImpl = &impl_; }

private:
    DimImpl impl_;
};
class ExprBuilder;
class ExprBuilderImpl : public apiv::VExprBuilder {
public:
    explicit ExprBuilderImpl(ExprBuilder& owner) : owner_(owner) {}
    IDimensionExpr const* constant(int64_t value) override;
    IDimensionExpr const* operation(DimensionOperation op, IDimensionExpr const& a, IDimensionExpr const& b) override;
    IDimensionExpr const* declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) override;

private:
    ExprBuilder& owner_;
};
class ExprBuilder : public IExprBuilder {
public:
    ExprBuilder() : impl_(*this) { mImpl = &impl_; }
    IDimensionExpr const* make(bool constant, int64_t value) { return &dims_.emplace_back(constant, value); }

private:
    ExprBuilderImpl impl_;
    std::deque<Dim> dims_;
};
IDimensionExpr const* ExprBuilderImpl::constant(int64_t value) { return owner_.make(true, value); }
IDimensionExpr const* ExprBuilderImpl::operation(DimensionOperation op, IDimensionExpr const& a,
                                                 IDimensionExpr const& b) {
    if (!a.isConstant() || !b.isConstant()) return owner_.make(false, -1);
    int64_t x = a.getConstantValue(), y = b.getConstantValue();
    switch (op) {
        case DimensionOperation::kSUM: return owner_.make(true, x + y);
        case DimensionOperation::kPROD: return owner_.make(true, x * y);
        case DimensionOperation::kMAX: return owner_.make(true, x > y ? x : y);
        case DimensionOperation::kMIN: return owner_.make(true, x < y ? x : y);
        default: return owner_.make(false, -1);
    }
}
IDimensionExpr const* ExprBuilderImpl::declareSizeTensor(int32_t, IDimensionExpr const&, IDimensionExpr const&) {
    return owner_.make(false, -1);
}

struct Field {
    std::string name, kind, text;
    int32_t value = 0;
};
struct Input {
    DataType type;
    std::vector<int64_t> dims;
};
struct Case {
    std::string label, op;
    std::vector<Field> fields;
    std::vector<Input> inputs;
};

DataType parse_type(std::string const& name) {
    if (name == "float16") return DataType::kHALF;
    if (name == "float32") return DataType::kFLOAT;
    if (name == "int8") return DataType::kINT8;
    if (name == "uint8") return DataType::kUINT8;
    std::printf("FAIL: unknown dtype %s in the cases file\n", name.c_str());
    ++g_failures;
    return DataType::kFLOAT;
}

std::vector<Case> read_cases(char const* path, int& unemittable) {
    std::ifstream in(path);
    std::vector<Case> cases;
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream words(line);
        std::string head;
        words >> head;
        if (head == "unemittable") {
            ++unemittable;
            std::printf("note: not emitted by qcompile, not checked: %s\n", line.c_str() + 12);
        } else if (head == "case") {
            cases.emplace_back();
            words >> cases.back().label >> cases.back().op;
        } else if (head == "field") {
            Field f;
            words >> f.name >> f.kind >> f.text;
            if (f.kind == "int") f.value = static_cast<int32_t>(std::stoll(f.text));
            cases.back().fields.push_back(f);
        } else if (head == "input") {
            std::string type;
            words >> type;
            Input input{parse_type(type), {}};
            for (int64_t d; words >> d;) input.dims.push_back(d);
            cases.back().inputs.push_back(input);
        }
    }
    return cases;
}

// A PluginFieldCollection as TensorRT's ONNX parser builds it from the node's attributes:
// INT as one kINT32, STRING as kCHAR with the string's length.
struct Collection {
    explicit Collection(std::vector<Field> const& fields) : source(fields) {
        for (Field const& f : source)
            if (f.kind == "int")
                entries.emplace_back(f.name.c_str(), &f.value, PluginFieldType::kINT32, 1);
            else
                entries.emplace_back(f.name.c_str(), f.text.c_str(), PluginFieldType::kCHAR,
                                     static_cast<int32_t>(f.text.size()));
        fc.nbFields = static_cast<int32_t>(entries.size());
        fc.fields = entries.data();
    }
    std::vector<Field> source;
    std::vector<PluginField> entries;
    PluginFieldCollection fc{};
};

#include "qc_trt_harness_checks.inc"

int run_all(char const* cases_path, IPluginCreatorInterface* const* creators, int32_t nb) {
    int unemittable = 0;
    std::vector<Case> cases = read_cases(cases_path, unemittable);
    CHECK(!cases.empty(), "the cases file has cases");
    for (Case const& c : cases) run_case(c, creators, nb);
    std::printf("%zu cases (%d combinations not emitted by qcompile), %d checks, %d failed\n", cases.size(),
                unemittable, g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}

}  // namespace

#ifndef QC_HARNESS_NO_MAIN
int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s LIBRARY CASES\n", argv[0]);
        return 2;
    }
    void* library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
        std::fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
        return 2;
    }
    using GetCreators = IPluginCreatorInterface* const* (*)(int32_t&);
    using SetLoggerFinder = void (*)(ILoggerFinder*);
    auto get_creators = reinterpret_cast<GetCreators>(dlsym(library, "getCreators"));
    auto set_logger_finder = reinterpret_cast<SetLoggerFinder>(dlsym(library, "setLoggerFinder"));
    g_case = "library";
    CHECK(get_creators != nullptr && set_logger_finder != nullptr, "exports getCreators and setLoggerFinder");
    if (get_creators == nullptr || set_logger_finder == nullptr) return 1;
    static Finder finder;
    set_logger_finder(&finder);
    int32_t nb = 0;
    IPluginCreatorInterface* const* creators = get_creators(nb);
    return run_all(argv[2], creators, nb);
}
#endif

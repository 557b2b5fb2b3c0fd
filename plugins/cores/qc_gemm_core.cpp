#include "qc_gemm_core.h"

#include <cstdlib>
#include <cstring>

#include "qc_plugin_spec_table.h"

namespace qc {
namespace {

bool is_number(const char* s) { return s[0] >= '0' && s[0] <= '9'; }

std::string dims_string(const Dims& d) {
    std::string s = "[";
    for (size_t i = 0; i < d.size(); ++i) s += (i ? ", " : "") + std::to_string(d[i]);
    return s + "]";
}

}  // namespace

const spec::PluginSpec* find_plugin_spec(const char* name) {
    for (const spec::PluginSpec* p : spec::kAllPlugins)
        if (std::strcmp(p->name, name) == 0) return p;
    return nullptr;
}

std::unique_ptr<GemmCore> GemmCore::create(const spec::PluginSpec& spec, const FieldList& fields,
                                           const KernelOps& ops, std::string& error) {
    Attributes attrs;
    error = Attributes::parse(spec, fields, attrs);
    if (!error.empty()) return nullptr;
    std::unique_ptr<GemmCore> core(new GemmCore(spec, std::move(attrs), ops));
    if (ops.check_shape != nullptr) {
        std::int32_t status = ops.check_shape(core->problem(1));
        if (status != 0) {
            error = std::string(spec.name) + ": the kernel " + spec.kernel + " rejects N=" + std::to_string(core->n()) +
                    " K=" + std::to_string(core->k()) + ": " + core->status_string(status);
            return nullptr;
        }
    }
    return core;
}

std::int64_t GemmCore::resolve(const char* expr) const {
    std::string e(expr);
    size_t slash = e.find('/');
    std::string num = e.substr(0, slash), den = slash == std::string::npos ? "" : e.substr(slash + 1);
    auto value = [this](const std::string& s) -> std::int64_t {
        if (is_number(s.c_str())) return std::strtoll(s.c_str(), nullptr, 10);
        return attrs_.has(s.c_str()) ? attrs_.get_int(s.c_str()) : -1;
    };
    std::int64_t a = value(num), b = den.empty() ? 1 : value(den);
    if (a < 0 || b <= 0 || a % b != 0) return -1;
    return a / b;
}

int GemmCore::nb_inputs() const {
    int count = 0;
    for (int i = 0; i < spec_.nb_inputs; ++i) {
        const spec::TensorSpec& t = spec_.inputs[i];
        if (!t.optional || attrs_.get_int(("has_" + std::string(t.name)).c_str()) == 1) ++count;
    }
    return count;
}

std::string GemmCore::check_inputs(const std::vector<Dims>& inputs) const {
    const std::string who = spec_.name;
    if (static_cast<int>(inputs.size()) != nb_inputs())
        return who + ": " + std::to_string(inputs.size()) + " inputs, expected " + std::to_string(nb_inputs());
    int index = 0;
    for (int i = 0; i < spec_.nb_inputs && index < nb_inputs(); ++i) {
        const spec::TensorSpec& t = spec_.inputs[i];
        if (t.optional && attrs_.get_int(("has_" + std::string(t.name)).c_str()) != 1) continue;
        const Dims& d = inputs[index++];
        bool leading = t.rank > 0 && std::strcmp(t.shape[0], "...") == 0;
        int fixed = leading ? t.rank - 1 : t.rank;
        if (leading ? static_cast<int>(d.size()) < fixed + 1 : static_cast<int>(d.size()) != fixed)
            return who + ": input '" + t.name + "' has shape " + dims_string(d) + ", expected rank " +
                   (leading ? "at least " : "") + std::to_string(leading ? fixed + 1 : fixed);
        for (int j = 0; j < fixed; ++j) {
            std::int64_t want = resolve(t.shape[t.rank - fixed + j]);
            std::int64_t got = d[d.size() - fixed + j];
            if (want >= 0 && got >= 0 && want != got)
                return who + ": input '" + t.name + "' has shape " + dims_string(d) + ", dim " +
                       std::to_string(d.size() - fixed + j) + " must be " + t.shape[t.rank - fixed + j] + "=" +
                       std::to_string(want);
        }
    }
    return "";
}

Dims GemmCore::output_dims(const Dims& x) const {
    Dims out(x.begin(), x.end());
    if (out.empty()) return out;
    out.back() = n();
    return out;
}

bool GemmCore::supports(int pos, spec::DType dtype) const {
    if (pos < 0 || pos >= nb_inputs() + nb_outputs()) return false;
    if (pos >= nb_inputs()) return dtype == spec_.outputs[pos - nb_inputs()].dtype;
    int index = 0;
    for (int i = 0; i < spec_.nb_inputs; ++i) {
        const spec::TensorSpec& t = spec_.inputs[i];
        if (t.optional && attrs_.get_int(("has_" + std::string(t.name)).c_str()) != 1) continue;
        if (index++ != pos) continue;
        return dtype == t.dtype;
    }
    return false;
}

GemmProblem GemmCore::problem(std::int64_t m) const {
    GemmProblem p{};
    p.m = m;
    p.n = n();
    p.k = k();
    p.group_size = attrs_.get_int("group_size");
    p.format = attrs_.get_string("format").c_str();
    p.has_zeros = attrs_.get_int("has_zeros") == 1;
    p.act_per_token = attrs_.get_string("act_quant") == "per_token";
    p.layout_version = attrs_.get_int("layout_version");
    return p;
}

std::size_t GemmCore::workspace_size(std::int64_t max_m) const {
    return ops_.workspace_size != nullptr ? ops_.workspace_size(problem(max_m)) : 0;
}

std::int32_t GemmCore::enqueue(const Dims& x, const void* const* inputs, void* output, void* workspace,
                               std::size_t workspace_bytes, void* stream) const {
    std::int64_t m = 1;
    for (size_t i = 0; i + 1 < x.size(); ++i) m *= x[i];
    if (ops_.launch == nullptr) return -1;
    GemmLaunch launch{problem(m), inputs, nb_inputs(), output, workspace, workspace_bytes, stream};
    return ops_.launch(launch);
}

const char* GemmCore::status_string(std::int32_t status) const {
    if (ops_.status_string != nullptr) return ops_.status_string(status);
    return status == 0 ? "ok" : "kernel error";
}

}  // namespace qc

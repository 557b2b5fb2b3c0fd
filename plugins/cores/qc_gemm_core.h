// One plugin GEMM, TensorRT-free: attributes, shape and type rules, workspace, serialization and
// the kernel launch. The TensorRT IPluginV3 adapters in plugins/trt delegate every call here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "qc_fields.h"
#include "qc_kernel_ops.h"
#include "qc_spec_types.h"

namespace qc {

using Dims = std::vector<std::int64_t>;  // -1: not known until run time

class GemmCore {
public:
    // Validates the fields against the spec; on error returns nullptr and sets `error`.
    static std::unique_ptr<GemmCore> create(const spec::PluginSpec& spec, const FieldList& fields,
                                            const KernelOps& ops, std::string& error);

    const spec::PluginSpec& spec() const { return spec_; }
    const Attributes& attributes() const { return attrs_; }
    std::int64_t n() const { return attrs_.get_int("N"); }
    std::int64_t k() const { return attrs_.get_int("K"); }

    // Inputs present: the required ones, plus each optional one whose "has_<name>" is 1.
    int nb_inputs() const;
    int nb_outputs() const { return spec_.nb_outputs; }
    // "" if the input dims match the spec (dims of -1 match anything), else the reason.
    std::string check_inputs(const std::vector<Dims>& inputs) const;
    // Output dims: x's leading dims then N.
    Dims output_dims(const Dims& x) const;
    spec::DType output_dtype(int index) const { return spec_.outputs[index].dtype; }
    // supportsFormatCombination without formats: the dtype of input `pos` (< nb_inputs()) or of
    // output `pos - nb_inputs()`. Packed byte arrays may also come typed int8 (same bytes).
    bool supports(int pos, spec::DType dtype) const;

    GemmProblem problem(std::int64_t m) const;
    std::size_t workspace_size(std::int64_t max_m) const;
    // M is the product of x's leading dims. Returns the kernel's status (0: launched).
    std::int32_t enqueue(const Dims& x, const void* const* inputs, void* output, void* workspace,
                         std::size_t workspace_bytes, void* stream) const;
    const char* status_string(std::int32_t status) const;

    // getFieldsToSerialize: every attribute, defaults included, so that create(fields()) is equal.
    const FieldList& fields() const { return attrs_.fields(); }
    std::unique_ptr<GemmCore> clone() const { return std::unique_ptr<GemmCore>(new GemmCore(*this)); }

private:
    GemmCore(const spec::PluginSpec& spec, Attributes attrs, const KernelOps& ops)
        : spec_(spec), attrs_(std::move(attrs)), ops_(ops) {}
    std::int64_t resolve(const char* expr) const;  // -1 if not resolvable

    const spec::PluginSpec& spec_;
    Attributes attrs_;
    KernelOps ops_;
};

// The spec of a plugin by name (nullptr if unknown), from the generated table.
const spec::PluginSpec* find_plugin_spec(const char* name);

}  // namespace qc

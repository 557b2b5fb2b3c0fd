// Types of the plugin spec table that gen_spec_header.py generates from compiler/plugin_specs.json.
#pragma once
#include <cstdint>

namespace qc::spec {

enum class AttrType { kInt, kString };
enum class DType { kFloat16, kFloat32, kInt8, kUInt8 };

struct AttrSpec {
    const char* name;
    AttrType type;
    bool has_default;
    std::int32_t default_int;
    const char* default_string;
    const std::int32_t* int_values;    // allowed values (kInt), nullptr: any
    const char* const* string_values;  // allowed values (kString), nullptr: any
    int nb_values;
};

struct TensorSpec {
    const char* name;
    DType dtype;
    bool constant;
    bool optional;           // present iff the int attribute "has_<name>" is 1
    const char* const* shape;  // "..." (any leading dims), a number, a symbol, or "A/B"
    int rank;
};

struct PluginSpec {
    const char* name;
    const char* version;
    const char* kernel;
    const TensorSpec* inputs;
    int nb_inputs;
    const TensorSpec* outputs;
    int nb_outputs;
    const AttrSpec* attributes;
    int nb_attributes;
    const char* k_multiple;  // a number or the name of an int attribute
    const char* n_multiple;
};

}  // namespace qc::spec

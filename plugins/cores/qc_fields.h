// Plugin fields without TensorRT: what a PluginFieldCollection carries, validated against the spec.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "qc_spec_types.h"

namespace qc {

// A field as TensorRT hands it over (PluginField: name, data, type, length). The ONNX parser
// passes INT attributes as kINT32 and STRING attributes as kCHAR.
enum class RawType { kInt8, kInt16, kInt32, kInt64, kChar, kOther };
struct RawField {
    const char* name;
    const void* data;
    RawType type;
    std::int32_t length;
};

struct FieldValue {
    spec::AttrType type = spec::AttrType::kInt;
    std::int32_t i = 0;
    std::string s;
    bool operator==(const FieldValue& o) const { return type == o.type && i == o.i && s == o.s; }
};
using Field = std::pair<std::string, FieldValue>;
using FieldList = std::vector<Field>;

Field int_field(std::string name, std::int32_t value);
Field string_field(std::string name, std::string value);

// RawField -> Field; returns "" or an error naming the field.
std::string from_raw(const RawField* raw, int nb, FieldList& out);
// Field views for TensorRT: pointers stay valid while `fields` lives and is not modified.
std::vector<RawField> to_raw(const FieldList& fields);

// Every spec attribute, validated, defaults filled, in spec order.
class Attributes {
public:
    // Returns "" or an error naming the attribute (unknown, wrong type, bad value, missing,
    // layout_version, shape rules).
    static std::string parse(const spec::PluginSpec& spec, const FieldList& fields, Attributes& out);
    std::int32_t get_int(const char* name) const;        // 0 if absent
    const std::string& get_string(const char* name) const;  // "" if absent
    bool has(const char* name) const;
    const FieldList& fields() const { return fields_; }

private:
    FieldList fields_;
};

}  // namespace qc

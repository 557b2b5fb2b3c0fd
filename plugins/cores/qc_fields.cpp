#include "qc_fields.h"

#include <cstdlib>
#include <cstring>
#include <limits>

#include "qc_plugin_spec_table.h"

namespace qc {
namespace {

const spec::AttrSpec* find_attr(const spec::PluginSpec& spec, const std::string& name) {
    for (int i = 0; i < spec.nb_attributes; ++i)
        if (name == spec.attributes[i].name) return &spec.attributes[i];
    return nullptr;
}

std::string allowed(const spec::AttrSpec& a, const FieldValue& v) {
    if (a.nb_values == 0) return "";
    for (int i = 0; i < a.nb_values; ++i) {
        if (a.type == spec::AttrType::kInt ? a.int_values[i] == v.i : v.s == a.string_values[i]) return "";
    }
    std::string list;
    for (int i = 0; i < a.nb_values; ++i)
        list += (i ? ", " : "") + (a.type == spec::AttrType::kInt ? std::to_string(a.int_values[i])
                                                                  : std::string(a.string_values[i]));
    return std::string("attribute '") + a.name + "' is " +
           (a.type == spec::AttrType::kInt ? std::to_string(v.i) : "'" + v.s + "'") + ", expected one of {" + list + "}";
}

// A shape rule ("64" or an attribute name) -> its value; 0 if unresolved.
std::int32_t rule_value(const char* rule, const Attributes& attrs) {
    if (rule[0] >= '0' && rule[0] <= '9') return static_cast<std::int32_t>(std::strtol(rule, nullptr, 10));
    return attrs.get_int(rule);
}

}  // namespace

Field int_field(std::string name, std::int32_t value) {
    FieldValue v;
    v.type = spec::AttrType::kInt;
    v.i = value;
    return {std::move(name), v};
}

Field string_field(std::string name, std::string value) {
    FieldValue v;
    v.type = spec::AttrType::kString;
    v.s = std::move(value);
    return {std::move(name), v};
}

std::string from_raw(const RawField* raw, int nb, FieldList& out) {
    out.clear();
    for (int i = 0; i < nb; ++i) {
        const RawField& f = raw[i];
        std::string name = f.name ? f.name : "";
        if (f.type == RawType::kChar) {
            std::string s(static_cast<const char*>(f.data), f.data ? static_cast<size_t>(f.length) : 0);
            s = s.substr(0, s.find('\0'));  // lengths with and without the terminating NUL both occur
            out.push_back(string_field(name, s));
            continue;
        }
        if (f.length != 1 || f.data == nullptr) return "field '" + name + "' must hold exactly one value";
        std::int64_t v;
        switch (f.type) {
            case RawType::kInt8: v = *static_cast<const std::int8_t*>(f.data); break;
            case RawType::kInt16: v = *static_cast<const std::int16_t*>(f.data); break;
            case RawType::kInt32: v = *static_cast<const std::int32_t*>(f.data); break;
            case RawType::kInt64: v = *static_cast<const std::int64_t*>(f.data); break;
            default: return "field '" + name + "' has an unsupported type (int or string expected)";
        }
        if (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max())
            return "field '" + name + "' = " + std::to_string(v) + " does not fit in int32";
        out.push_back(int_field(name, static_cast<std::int32_t>(v)));
    }
    return "";
}

std::vector<RawField> to_raw(const FieldList& fields) {
    std::vector<RawField> raw;
    raw.reserve(fields.size());
    for (const Field& f : fields) {
        if (f.second.type == spec::AttrType::kInt)
            raw.push_back({f.first.c_str(), &f.second.i, RawType::kInt32, 1});
        else  // length includes the NUL so that readers may treat data as a C string
            raw.push_back({f.first.c_str(), f.second.s.c_str(), RawType::kChar,
                           static_cast<std::int32_t>(f.second.s.size() + 1)});
    }
    return raw;
}

std::string Attributes::parse(const spec::PluginSpec& spec, const FieldList& fields, Attributes& out) {
    out.fields_.clear();
    for (const Field& f : fields) {
        const spec::AttrSpec* a = find_attr(spec, f.first);
        if (a == nullptr) return std::string(spec.name) + ": unknown attribute '" + f.first + "'";
        if (a->type != f.second.type)
            return std::string(spec.name) + ": attribute '" + f.first + "' must be " +
                   (a->type == spec::AttrType::kInt ? "an int" : "a string");
    }
    for (int i = 0; i < spec.nb_attributes; ++i) {
        const spec::AttrSpec& a = spec.attributes[i];
        const Field* given = nullptr;
        for (const Field& f : fields)
            if (f.first == a.name) given = &f;
        if (given == nullptr && !a.has_default)
            return std::string(spec.name) + ": attribute '" + a.name + "' is required";
        Field f = given ? *given
                        : (a.type == spec::AttrType::kInt ? int_field(a.name, a.default_int)
                                                          : string_field(a.name, a.default_string));
        std::string bad = allowed(a, f.second);
        if (!bad.empty()) return std::string(spec.name) + ": " + bad;
        out.fields_.push_back(std::move(f));
    }
    const spec::AttrSpec* layout = find_attr(spec, "layout_version");  // a values list: checked above
    if (layout != nullptr && layout->nb_values == 0 && out.get_int("layout_version") != spec::kLayoutVersion)
        return std::string(spec.name) + ": attribute 'layout_version' is " +
               std::to_string(out.get_int("layout_version")) + ", this plugin reads layout version " +
               std::to_string(spec::kLayoutVersion);
    const char* dims[2][2] = {{"K", spec.k_multiple}, {"N", spec.n_multiple}};
    for (auto& d : dims) {
        std::int32_t size = out.get_int(d[0]), multiple = rule_value(d[1], out);
        if (size <= 0 || (multiple > 0 && size % multiple != 0))
            return std::string(spec.name) + ": " + d[0] + "=" + std::to_string(size) +
                   " is not a positive multiple of " + std::to_string(multiple);
    }
    return "";
}

std::int32_t Attributes::get_int(const char* name) const {
    for (const Field& f : fields_)
        if (f.first == name) return f.second.i;
    return 0;
}

const std::string& Attributes::get_string(const char* name) const {
    static const std::string empty;
    for (const Field& f : fields_)
        if (f.first == name) return f.second.s;
    return empty;
}

bool Attributes::has(const char* name) const {
    for (const Field& f : fields_)
        if (f.first == name) return true;
    return false;
}

}  // namespace qc

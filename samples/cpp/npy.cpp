#include "npy.h"

#include <cstring>
#include <fstream>
#include <stdexcept>

namespace npy {
namespace {

struct Descr {
    const char* text;
    DType dtype;
};
const Descr kDescrs[] = {{"<f4", DType::kFloat32}, {"<f2", DType::kFloat16}, {"<i8", DType::kInt64},
                         {"<i4", DType::kInt32}};

std::string value_of(const std::string& header, const std::string& key, const std::string& path) {
    size_t at = header.find("'" + key + "'");
    if (at == std::string::npos) throw std::runtime_error(path + ": .npy header has no '" + key + "'");
    at = header.find(':', at);
    size_t start = header.find_first_not_of(' ', at + 1);
    size_t end = header[start] == '(' ? header.find(')', start) + 1 : header.find_first_of(",}", start);
    return header.substr(start, end - start);
}

std::vector<int64_t> parse_shape(const std::string& text) {
    std::vector<int64_t> shape;  // "(2, 3)", "(5,)" or "()"
    std::string number;
    for (char c : text) {
        if (c >= '0' && c <= '9') {
            number += c;
        } else if (!number.empty()) {
            shape.push_back(std::stoll(number));
            number.clear();
        }
    }
    return shape;
}

}  // namespace

int64_t Array::size() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
}

std::size_t item_size(DType dtype) {
    switch (dtype) {
        case DType::kFloat32: case DType::kInt32: return 4;
        case DType::kFloat16: return 2;
        case DType::kInt64: return 8;
    }
    return 0;
}

Array load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(path + ": cannot open");
    char magic[8];
    if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
        throw std::runtime_error(path + ": not a .npy file");
    uint32_t header_len = 0;
    unsigned char len_bytes[4] = {0, 0, 0, 0};
    int len_size = magic[6] == 1 ? 2 : 4;
    if (!in.read(reinterpret_cast<char*>(len_bytes), len_size)) throw std::runtime_error(path + ": truncated header");
    for (int i = len_size - 1; i >= 0; --i) header_len = header_len << 8 | len_bytes[i];
    std::string header(header_len, '\0');
    if (!in.read(&header[0], header_len)) throw std::runtime_error(path + ": truncated header");

    Array array;
    std::string descr = value_of(header, "descr", path);
    bool known = false;
    for (const Descr& d : kDescrs)
        if (descr == std::string("'") + d.text + "'") array.dtype = d.dtype, known = true;
    if (!known) throw std::runtime_error(path + ": dtype " + descr + " not supported (float32, float16, int64, int32)");
    if (value_of(header, "fortran_order", path) != "False")
        throw std::runtime_error(path + ": Fortran-ordered arrays are not supported");
    array.shape = parse_shape(value_of(header, "shape", path));
    array.data.resize(static_cast<size_t>(array.size()) * item_size(array.dtype));
    if (!in.read(reinterpret_cast<char*>(array.data.data()), static_cast<std::streamsize>(array.data.size())))
        throw std::runtime_error(path + ": file shorter than its shape says");
    return array;
}

void save(const std::string& path, const Array& array) {
    const char* descr = nullptr;
    for (const Descr& d : kDescrs)
        if (d.dtype == array.dtype) descr = d.text;
    std::string shape = "(";
    for (size_t i = 0; i < array.shape.size(); ++i) shape += std::to_string(array.shape[i]) + ", ";
    if (array.shape.size() > 1) shape.resize(shape.size() - 2);
    else if (array.shape.size() == 1) shape.resize(shape.size() - 1);
    shape += ")";
    std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    size_t total = 10 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    std::ofstream out(path, std::ios::binary);
    if (!out) throw std::runtime_error(path + ": cannot write");
    const unsigned char prefix[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                                      static_cast<unsigned char>(header.size() & 0xFF),
                                      static_cast<unsigned char>(header.size() >> 8)};
    out.write(reinterpret_cast<const char*>(prefix), 10);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(reinterpret_cast<const char*>(array.data.data()), static_cast<std::streamsize>(array.data.size()));
    if (!out) throw std::runtime_error(path + ": write failed");
}

}  // namespace npy

// A minimal .npy reader/writer (format versions 1-3, little-endian, C order) for float32,
// float16, int64 and int32 arrays. TensorRT-free; tested by tests/trt/test_cpp_sample.py.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace npy {

enum class DType { kFloat32, kFloat16, kInt64, kInt32 };

struct Array {
    DType dtype = DType::kFloat32;
    std::vector<int64_t> shape;
    std::vector<uint8_t> data;  // raw little-endian bytes
    int64_t size() const;       // number of elements
};

std::size_t item_size(DType dtype);
// Throws std::runtime_error with the file name and the reason.
Array load(const std::string& path);
void save(const std::string& path, const Array& array);

}  // namespace npy

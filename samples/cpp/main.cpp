// qc_run_engine: run a TensorRT engine built by qcompile from C++, with its plugin library.
//   qc_run_engine --engine model.engine [--plugins libqc_trt_plugins.so] [--allow-host-code]
//                 --input NAME=file.npy ... [--output-dir DIR]
// Outputs are written as DIR/<output name>.npy. Compiled against the TensorRT 10/11 headers, never
// linked or run here (see README.md); runner_options.cpp is its TensorRT-free, tested part.
#include <NvInferRuntime.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "npy.h"
#include "runner_options.h"

namespace {

class Logger : public nvinfer1::ILogger {
    void log(Severity severity, const char* msg) noexcept override {
        if (severity <= Severity::kWARNING) std::fprintf(stderr, "[TensorRT] %s\n", msg);
    }
};

void check_cuda(cudaError_t status, const char* what) {
    if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

struct DeviceBuffer {
    void* ptr = nullptr;
    explicit DeviceBuffer(size_t bytes) { check_cuda(cudaMalloc(&ptr, bytes ? bytes : 1), "cudaMalloc"); }
    ~DeviceBuffer() { cudaFree(ptr); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

npy::DType to_npy(nvinfer1::DataType type, const std::string& name) {
    switch (type) {
        case nvinfer1::DataType::kFLOAT: return npy::DType::kFloat32;
        case nvinfer1::DataType::kHALF: return npy::DType::kFloat16;
        case nvinfer1::DataType::kINT64: return npy::DType::kInt64;
        case nvinfer1::DataType::kINT32: return npy::DType::kInt32;
        default: throw std::runtime_error("tensor '" + name + "' has a type this runner does not read or write");
    }
}

int run(const runner::Options& o) {
    Logger logger;
    std::unique_ptr<nvinfer1::IRuntime> runtime(nvinfer1::createInferRuntime(logger));
    if (!runtime) throw std::runtime_error("createInferRuntime failed");
    // Plans built with setPluginsToSerialize (version compatible) carry the plugin library as
    // host code: TensorRT refuses to load them unless this is allowed.
    runtime->setEngineHostCodeAllowed(o.allow_host_code);
    if (!o.plugins.empty() && runtime->getPluginRegistry().loadLibrary(o.plugins.c_str()) == nullptr)
        throw std::runtime_error(o.plugins + ": IPluginRegistry::loadLibrary failed");
    std::vector<char> plan = runner::read_file(o.engine);
    std::unique_ptr<nvinfer1::ICudaEngine> engine(runtime->deserializeCudaEngine(plan.data(), plan.size()));
    if (!engine) throw std::runtime_error(o.engine + ": deserialization failed (plugins loaded? --allow-host-code?)");
    std::unique_ptr<nvinfer1::IExecutionContext> context(engine->createExecutionContext());
    cudaStream_t stream;
    check_cuda(cudaStreamCreate(&stream), "cudaStreamCreate");

    std::vector<std::unique_ptr<DeviceBuffer>> buffers;
    std::vector<std::string> outputs;
    for (int32_t i = 0; i < engine->getNbIOTensors(); ++i) {
        const char* name = engine->getIOTensorName(i);
        if (engine->getTensorIOMode(name) != nvinfer1::TensorIOMode::kINPUT) {
            outputs.push_back(name);
            continue;
        }
        auto file = o.inputs.find(name);
        if (file == o.inputs.end()) throw std::runtime_error(std::string("no --input for engine input '") + name + "'");
        npy::Array array = npy::load(file->second);
        if (array.dtype != to_npy(engine->getTensorDataType(name), name))
            throw std::runtime_error(file->second + ": dtype does not match engine input '" + name + "'");
        nvinfer1::Dims dims{};
        dims.nbDims = static_cast<int32_t>(array.shape.size());
        for (size_t d = 0; d < array.shape.size(); ++d) dims.d[d] = array.shape[d];
        if (!context->setInputShape(name, dims)) throw std::runtime_error(std::string("bad shape for input '") + name + "'");
        buffers.push_back(std::make_unique<DeviceBuffer>(array.data.size()));
        check_cuda(cudaMemcpyAsync(buffers.back()->ptr, array.data.data(), array.data.size(), cudaMemcpyHostToDevice,
                                   stream), "cudaMemcpyAsync");
        context->setTensorAddress(name, buffers.back()->ptr);
    }
    std::vector<npy::Array> results(outputs.size());
    for (size_t j = 0; j < outputs.size(); ++j) {
        const char* name = outputs[j].c_str();
        nvinfer1::Dims dims = context->getTensorShape(name);
        results[j].dtype = to_npy(engine->getTensorDataType(name), name);
        results[j].shape.assign(dims.d, dims.d + dims.nbDims);
        results[j].data.resize(static_cast<size_t>(results[j].size()) * npy::item_size(results[j].dtype));
        buffers.push_back(std::make_unique<DeviceBuffer>(results[j].data.size()));
        context->setTensorAddress(name, buffers.back()->ptr);
        // Copies are queued after enqueueV3 below, in the same order as `results`.
    }
    if (!context->enqueueV3(stream)) throw std::runtime_error("enqueueV3 failed");
    size_t first_output = buffers.size() - outputs.size();
    for (size_t j = 0; j < outputs.size(); ++j)
        check_cuda(cudaMemcpyAsync(results[j].data.data(), buffers[first_output + j]->ptr, results[j].data.size(),
                                   cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync");
    check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    cudaStreamDestroy(stream);
    for (size_t j = 0; j < outputs.size(); ++j) {
        std::string path = o.output_dir + "/" + outputs[j] + ".npy";
        npy::save(path, results[j]);
        std::printf("wrote %s\n", path.c_str());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    runner::Options options;
    try {  // bad arguments and files: exit 2, before TensorRT is touched
        options = runner::parse_options(argc, argv);
        runner::check_files(options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "qc_run_engine: %s\n", e.what());
        return 2;
    }
    try {
        return run(options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "qc_run_engine: %s\n", e.what());
        return 1;
    }
}

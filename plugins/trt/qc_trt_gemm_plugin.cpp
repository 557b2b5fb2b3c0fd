#include "qc_trt_gemm_plugin.h"

#include <exception>

#include "qc_plugin_spec_table.h"

namespace qc::trt {
namespace {

using nvinfer1::DataType;

bool to_core(DataType type, spec::DType& out) {
    switch (type) {
        case DataType::kHALF: out = spec::DType::kFloat16; return true;
        case DataType::kFLOAT: out = spec::DType::kFloat32; return true;
        case DataType::kINT8: out = spec::DType::kInt8; return true;
        case DataType::kUINT8: out = spec::DType::kUInt8; return true;
        default: return false;
    }
}

DataType to_trt(spec::DType type) {
    switch (type) {
        case spec::DType::kFloat16: return DataType::kHALF;
        case spec::DType::kFloat32: return DataType::kFLOAT;
        case spec::DType::kInt8: return DataType::kINT8;
        case spec::DType::kUInt8: return DataType::kUINT8;
    }
    return DataType::kFLOAT;
}

Dims to_dims(nvinfer1::Dims const& d) { return Dims(d.d, d.d + d.nbDims); }

RawType to_raw_type(nvinfer1::PluginFieldType type) {
    switch (type) {
        case nvinfer1::PluginFieldType::kINT8: return RawType::kInt8;
        case nvinfer1::PluginFieldType::kINT16: return RawType::kInt16;
        case nvinfer1::PluginFieldType::kINT32: return RawType::kInt32;
        case nvinfer1::PluginFieldType::kINT64: return RawType::kInt64;
        case nvinfer1::PluginFieldType::kCHAR: return RawType::kChar;
        default: return RawType::kOther;
    }
}

nvinfer1::ILoggerFinder*& logger_finder() {
    static nvinfer1::ILoggerFinder* finder = nullptr;  // set once by TensorRT through setLoggerFinder
    return finder;
}

}  // namespace

void set_logger_finder(nvinfer1::ILoggerFinder* finder) noexcept { logger_finder() = finder; }

void log_error(std::string const& message) noexcept {
    nvinfer1::ILoggerFinder* finder = logger_finder();
    nvinfer1::ILogger* logger = finder != nullptr ? finder->findLogger() : nullptr;
#ifdef QC_TRT_STATIC_REGISTRATION
    // TensorRT calls setLoggerFinder only on libraries it loads; statically registered creators
    // log through libnvinfer's getLogger(), which the application links.
    if (logger == nullptr) logger = getLogger();
#endif
    if (logger != nullptr) logger->log(nvinfer1::ILogger::Severity::kERROR, ("qcompile plugin: " + message).c_str());
}

GemmPlugin::GemmPlugin(std::unique_ptr<GemmCore> core) : core_(std::move(core)) {
    for (Field const& f : core_->fields())
        metadata_ += f.first + "=" + (f.second.type == spec::AttrType::kInt ? std::to_string(f.second.i) : f.second.s) + ";";
}

nvinfer1::IPluginCapability* GemmPlugin::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept {
    switch (type) {
        case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
        case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    }
    return nullptr;
}

nvinfer1::IPluginV3* GemmPlugin::clone() noexcept {
    try {
        return new GemmPlugin(core_->clone());
    } catch (std::exception const& e) {
        log_error(e.what());
        return nullptr;
    }
}

char const* GemmPlugin::getPluginName() const noexcept { return core_->spec().name; }
char const* GemmPlugin::getPluginVersion() const noexcept { return core_->spec().version; }
char const* GemmPlugin::getPluginNamespace() const noexcept { return spec::kNamespace; }
int32_t GemmPlugin::getNbOutputs() const noexcept { return core_->nb_outputs(); }

int32_t GemmPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const*,
                                       int32_t nbInputs) const noexcept {
    if (nbInputs != core_->nb_inputs() || nbOutputs != core_->nb_outputs()) return 1;
    for (int32_t i = 0; i < nbOutputs; ++i) outputTypes[i] = to_trt(core_->output_dtype(i));
    return 0;
}

int32_t GemmPlugin::getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const*,
                                    int32_t, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                                    nvinfer1::IExprBuilder& exprBuilder) noexcept {
    if (nbInputs != core_->nb_inputs() || nbOutputs != 1 || inputs[0].nbDims < 2) {
        log_error(std::string(getPluginName()) + ": x must have rank >= 2 and the input count must match the spec");
        return 1;
    }
    outputs[0].nbDims = inputs[0].nbDims;  // x's leading dims, then N (GemmCore::output_dims)
    for (int32_t i = 0; i + 1 < inputs[0].nbDims; ++i) outputs[0].d[i] = inputs[0].d[i];
    outputs[0].d[inputs[0].nbDims - 1] = exprBuilder.constant(core_->n());
    return 0;
}

bool GemmPlugin::supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut,
                                           int32_t nbInputs, int32_t nbOutputs) noexcept {
    spec::DType dtype;
    return nbInputs == core_->nb_inputs() && nbOutputs == core_->nb_outputs() &&
           inOut[pos].desc.format == nvinfer1::TensorFormat::kLINEAR && to_core(inOut[pos].desc.type, dtype) &&
           core_->supports(pos, dtype);
}

int32_t GemmPlugin::configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                    nvinfer1::DynamicPluginTensorDesc const*, int32_t) noexcept {
    std::vector<Dims> dims;
    for (int32_t i = 0; i < nbInputs; ++i) dims.push_back(to_dims(in[i].desc.dims));
    return checkInputs(dims);
}

int32_t GemmPlugin::checkInputs(std::vector<Dims> const& dims) const noexcept {
    try {
        std::string error = core_->check_inputs(dims);
        if (!error.empty()) log_error(error);
        return error.empty() ? 0 : 1;
    } catch (std::exception const& e) {
        log_error(e.what());
        return 1;
    }
}

size_t GemmPlugin::getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t, 
                                    nvinfer1::DynamicPluginTensorDesc const*, int32_t) const noexcept {
    int64_t max_m = 1;
    for (int32_t i = 0; i + 1 < inputs[0].max.nbDims; ++i) max_m *= inputs[0].max.d[i];
    return core_->workspace_size(max_m);
}

char const* GemmPlugin::getTimingCacheID() noexcept { return metadata_.c_str(); }
char const* GemmPlugin::getMetadataString() noexcept { return metadata_.c_str(); }

int32_t GemmPlugin::onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
                                  nvinfer1::PluginTensorDesc const*, int32_t) noexcept {
    std::vector<Dims> dims;
    for (int32_t i = 0; i < nbInputs; ++i) dims.push_back(to_dims(in[i].dims));
    return checkInputs(dims);
}

int32_t GemmPlugin::enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const*,
                            void const* const* inputs, void* const* outputs, void* workspace,
                            cudaStream_t stream) noexcept {
    Dims x = to_dims(inputDesc[0].dims);
    int64_t m = 1;
    for (size_t i = 0; i + 1 < x.size(); ++i) m *= x[i];
    // workspace_size is non-decreasing in M (plugins/tests/workspace_test.cpp), so the bytes at this
    // M are within what getWorkspaceSize reserved for the profile's max M.
    int32_t status = core_->enqueue(x, inputs, outputs[0], workspace, core_->workspace_size(m), stream);
    if (status != 0) log_error(std::string(getPluginName()) + ": " + core_->status_string(status));
    return status;
}

nvinfer1::IPluginV3* GemmPlugin::attachToContext(nvinfer1::IPluginResourceContext*) noexcept { return clone(); }

nvinfer1::PluginFieldCollection const* GemmPlugin::getFieldsToSerialize() noexcept {
    serialized_.clear();
    for (RawField const& f : to_raw(core_->fields()))
        serialized_.emplace_back(f.name, f.data,
                                 f.type == RawType::kChar ? nvinfer1::PluginFieldType::kCHAR
                                                          : nvinfer1::PluginFieldType::kINT32,
                                 f.length);
    collection_.nbFields = static_cast<int32_t>(serialized_.size());
    collection_.fields = serialized_.data();
    return &collection_;
}

GemmPluginCreator::GemmPluginCreator(spec::PluginSpec const& spec) : spec_(spec) {
    for (int i = 0; i < spec.nb_attributes; ++i) {
        spec::AttrSpec const& a = spec.attributes[i];
        field_names_.emplace_back(a.name, nullptr,
                                  a.type == spec::AttrType::kInt ? nvinfer1::PluginFieldType::kINT32
                                                                 : nvinfer1::PluginFieldType::kCHAR,
                                  1);
    }
    collection_.nbFields = static_cast<int32_t>(field_names_.size());
    collection_.fields = field_names_.data();
}

char const* GemmPluginCreator::getPluginName() const noexcept { return spec_.name; }
char const* GemmPluginCreator::getPluginVersion() const noexcept { return spec_.version; }
char const* GemmPluginCreator::getPluginNamespace() const noexcept { return spec::kNamespace; }
nvinfer1::PluginFieldCollection const* GemmPluginCreator::getFieldNames() noexcept { return &collection_; }

nvinfer1::IPluginV3* GemmPluginCreator::createPlugin(char const*, nvinfer1::PluginFieldCollection const* fc,
                                                     nvinfer1::TensorRTPhase) noexcept {
    try {
        std::vector<RawField> raw;
        for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i) {
            nvinfer1::PluginField const& f = fc->fields[i];
            raw.push_back({f.name, f.data, to_raw_type(f.type), f.length});
        }
        FieldList fields;
        std::string error = from_raw(raw.data(), static_cast<int>(raw.size()), fields);
        bool known = false;
        KernelOps ops = kernel_ops_for(spec_.name, known);
        if (error.empty() && !known) error = std::string(spec_.name) + ": no kernel bound to this plugin";
        std::unique_ptr<GemmCore> core = error.empty() ? GemmCore::create(spec_, fields, ops, error) : nullptr;
        if (core == nullptr) {
            log_error(error);
            return nullptr;
        }
        return new GemmPlugin(std::move(core));
    } catch (std::exception const& e) {
        log_error(e.what());
        return nullptr;
    }
}

}  // namespace qc::trt

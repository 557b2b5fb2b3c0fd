// Registration of the qcompile plugin creators with TensorRT, two ways:
// - shared library (default): exports getCreators / setLoggerFinder, the entry points that
//   IPluginRegistry::loadLibrary, trtexec --dynamicPlugins and setPluginsToSerialize use;
// - QC_TRT_STATIC_REGISTRATION: REGISTER_TENSORRT_PLUGIN, for linking into an application (or
//   trtexec --staticPlugins). Not both in one binary: loadLibrary fails on creators that the
//   library's static initializers already registered.
#include <NvInferRuntime.h>

#include "qc_plugin_spec_table.h"
#include "qc_trt_gemm_plugin.h"

namespace qc::trt {

class QcW6A16GemmCreator : public GemmPluginCreator {
public:
    QcW6A16GemmCreator() : GemmPluginCreator(spec::kQcW6A16Gemm) {}
};
class QcW4A16GemmCreator : public GemmPluginCreator {
public:
    QcW4A16GemmCreator() : GemmPluginCreator(spec::kQcW4A16Gemm) {}
};
class QcW4A8GemmCreator : public GemmPluginCreator {
public:
    QcW4A8GemmCreator() : GemmPluginCreator(spec::kQcW4A8Gemm) {}
};

static_assert(spec::kNbPlugins == 3, "plugin_specs.json changed: add a creator class for the new plugin here");

}  // namespace qc::trt

#ifdef QC_TRT_STATIC_REGISTRATION
// The macro pastes its argument into a variable name: unqualified names only.
using QcW6A16GemmCreator = qc::trt::QcW6A16GemmCreator;
using QcW4A16GemmCreator = qc::trt::QcW4A16GemmCreator;
using QcW4A8GemmCreator = qc::trt::QcW4A8GemmCreator;
REGISTER_TENSORRT_PLUGIN(QcW6A16GemmCreator);
REGISTER_TENSORRT_PLUGIN(QcW4A16GemmCreator);
REGISTER_TENSORRT_PLUGIN(QcW4A8GemmCreator);
#else
extern "C" {

__attribute__((visibility("default"))) void setLoggerFinder(nvinfer1::ILoggerFinder* finder) {
    qc::trt::set_logger_finder(finder);
}

__attribute__((visibility("default"))) nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    // Function-local statics: created on the first call, alive until the library is unloaded.
    static qc::trt::QcW6A16GemmCreator w6a16;
    static qc::trt::QcW4A16GemmCreator w4a16;
    static qc::trt::QcW4A8GemmCreator w4a8;
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&w6a16, &w4a16, &w4a8};
    nbCreators = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
    return creators;
}

}  // extern "C"
#endif

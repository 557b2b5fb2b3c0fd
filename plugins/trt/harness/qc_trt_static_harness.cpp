// The static registration path: this program links the qc_trt_plugins_static objects, whose
// REGISTER_TENSORRT_PLUGIN initializers call getPluginRegistry() at load time. libnvinfer's
// getPluginRegistry() and getLogger() are provided here by a recording registry, so the same
// checks as qc_trt_harness run on the creators registered that way. Usage:
//   qc_trt_static_harness CASES
#define QC_HARNESS_NO_MAIN
#include "qc_trt_harness.cpp"

namespace {

// Records registerCreator calls; everything else is unused by static registration.
class Registry : public IPluginRegistry {
public:
    bool registerCreator(IPluginCreatorInterface& creator, AsciiChar const* const) noexcept override {
        creators.push_back(&creator);
        return true;
    }
    IPluginCreatorInterface* const* getAllCreators(int32_t* const n) const noexcept override {
        *n = static_cast<int32_t>(creators.size());
        return creators.data();
    }
    IPluginCreatorInterface* getCreator(AsciiChar const* const, AsciiChar const* const,
                                        AsciiChar const* const) noexcept override { return nullptr; }
    bool deregisterCreator(IPluginCreatorInterface const&) noexcept override { return false; }
    void setErrorRecorder(IErrorRecorder* const) noexcept override {}
    IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
    bool isParentSearchEnabled() const override { return false; }
    void setParentSearchEnabled(bool const) override {}
    PluginLibraryHandle loadLibrary(AsciiChar const*) noexcept override { return nullptr; }
    void deregisterLibrary(PluginLibraryHandle) noexcept override {}
    IPluginResource* acquirePluginResource(AsciiChar const*, IPluginResource*) noexcept override { return nullptr; }
    int32_t releasePluginResource(AsciiChar const*) noexcept override { return -1; }
#if NV_TENSORRT_MAJOR > 10 || (NV_TENSORRT_MAJOR == 10 && NV_TENSORRT_MINOR >= 10)
    IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const n) noexcept override {
        return getAllCreators(n);
    }
#endif
#if NV_TENSORRT_MAJOR < 11  // the IPluginCreator (V2) overloads, deprecated in 10 and removed in 11
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    bool registerCreator(IPluginCreator&, AsciiChar const* const) noexcept override { return false; }
    IPluginCreator* const* getPluginCreatorList(int32_t* const n) const noexcept override {
        *n = 0;
        return nullptr;
    }
    IPluginCreator* getPluginCreator(AsciiChar const* const, AsciiChar const* const,
                                     AsciiChar const* const) noexcept override { return nullptr; }
    bool deregisterCreator(IPluginCreator const&) noexcept override { return false; }
#pragma GCC diagnostic pop
#endif
    std::vector<IPluginCreatorInterface*> creators;
};

Registry& registry() {
    static Registry r;  // constructed on the first registration, before main
    return r;
}

}  // namespace

extern "C" IPluginRegistry* getPluginRegistry() noexcept { return &registry(); }
extern "C" ILogger* getLogger() noexcept { return &g_logger; }

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CASES\n", argv[0]);
        return 2;
    }
    int32_t nb = 0;
    IPluginCreatorInterface* const* creators = registry().getAllCreators(&nb);
    g_case = "static registration";
    CHECK(nb == 3, "three creators registered at load time");
    return run_all(argv[1], creators, nb);
}

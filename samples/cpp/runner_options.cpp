#include "runner_options.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <fstream>
#include <stdexcept>

namespace runner {

Options parse_options(int argc, char const* const* argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
            return argv[++i];
        };
        if (arg == "--engine") o.engine = next();
        else if (arg == "--plugins") o.plugins = next();
        else if (arg == "--output-dir") o.output_dir = next();
        else if (arg == "--allow-host-code") o.allow_host_code = true;
        else if (arg == "--input") {
            std::string spec = next();
            size_t eq = spec.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
                throw std::invalid_argument("--input expects NAME=file.npy, got " + spec);
            if (!o.inputs.emplace(spec.substr(0, eq), spec.substr(eq + 1)).second)
                throw std::invalid_argument("--input " + spec.substr(0, eq) + " given twice");
        } else throw std::invalid_argument("unknown argument " + arg);
    }
    if (o.engine.empty()) throw std::invalid_argument("--engine is required");
    return o;
}

namespace {
bool is_file(std::string const& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool is_dir(std::string const& path) {
    struct stat st {};
    return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
}  // namespace

void check_files(Options const& o) {
    if (!is_file(o.engine)) throw std::runtime_error(o.engine + ": engine file not found");
    for (auto const& [name, file] : o.inputs)
        if (!is_file(file)) throw std::runtime_error(file + ": input file for '" + name + "' not found");
    if (!is_dir(o.output_dir)) throw std::runtime_error(o.output_dir + ": output folder not found");
    if (!o.plugins.empty()) check_plugin_library(o.plugins);
}

void check_plugin_library(std::string const& path) {
    if (!is_file(path)) throw std::runtime_error(path + ": plugin library not found");
    void* handle = dlopen(path.c_str(), RTLD_LAZY | RTLD_LOCAL);
    if (handle == nullptr) {
        char const* why = dlerror();
        throw std::runtime_error(path + ": cannot load the plugin library: " + (why ? why : "unknown reason"));
    }
    bool has_creators = dlsym(handle, "getCreators") != nullptr;
    dlclose(handle);
    if (!has_creators) throw std::runtime_error(path + ": does not export getCreators (not a TensorRT plugin library)");
}

std::vector<char> read_file(std::string const& path) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) throw std::runtime_error(path + ": cannot open");
    std::vector<char> bytes(static_cast<size_t>(in.tellg()));
    in.seekg(0);
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return bytes;
}

}  // namespace runner

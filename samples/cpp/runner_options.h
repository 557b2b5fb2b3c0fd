// The TensorRT-free part of qc_run_engine: command-line options and the checks that run before
// TensorRT is touched (files present, plugin library loadable and exporting getCreators).
#pragma once
#include <map>
#include <string>
#include <vector>

namespace runner {

struct Options {
    std::string engine, plugins, output_dir = ".";
    bool allow_host_code = false;
    std::map<std::string, std::string> inputs;  // engine input name -> .npy file
};

// Throws std::invalid_argument with a one-line reason.
Options parse_options(int argc, char const* const* argv);
// Throws std::runtime_error naming the first file that is missing or unusable.
void check_files(Options const& options);
// dlopen + dlsym("getCreators") + dlclose; throws std::runtime_error with the loader's reason.
void check_plugin_library(std::string const& path);
std::vector<char> read_file(std::string const& path);

}  // namespace runner

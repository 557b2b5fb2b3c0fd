// qc_runner_check: qc_run_engine's argument handling and pre-TensorRT checks alone (its test).
// Prints the parsed options; exit 2 with one line on a bad argument or file.
#include <cstdio>
#include <stdexcept>

#include "runner_options.h"

int main(int argc, char** argv) {
    try {
        runner::Options o = runner::parse_options(argc, argv);
        runner::check_files(o);
        std::printf("engine=%s\nplugins=%s\noutput_dir=%s\nallow_host_code=%d\n", o.engine.c_str(), o.plugins.c_str(),
                    o.output_dir.c_str(), o.allow_host_code ? 1 : 0);
        for (auto const& [name, file] : o.inputs) std::printf("input %s=%s\n", name.c_str(), file.c_str());
    } catch (std::exception const& e) {
        std::fprintf(stderr, "qc_run_engine: %s\n", e.what());
        return 2;
    }
    return 0;
}

// npy_copy IN.npy OUT.npy: load and save again (the test of npy.cpp against numpy).
#include <cstdio>
#include <exception>

#include "npy.h"

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: npy_copy IN.npy OUT.npy\n");
        return 2;
    }
    try {
        npy::save(argv[2], npy::load(argv[1]));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}

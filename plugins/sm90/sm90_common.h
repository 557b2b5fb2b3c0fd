// Host helpers shared by the sm_90a entry points (qc_sm90_common.cpp).
#pragma once

#include <stddef.h>

inline size_t qc_sm90_align256(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

// Multiprocessor count of the current device, or -1 when it cannot be read.
__attribute__((visibility("hidden"))) int qc_sm90_sm_count();

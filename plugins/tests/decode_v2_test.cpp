// ctest: the int4_v2 decode of decode_v2.h (lop3 magic numbers, then the kernel's FP16 steps)
// against the layout-1 decode of decode.h, with zero tolerance:
// - every nibble value in every position of a word, over every background value and random words,
//   for INT4 and for UINT4 with every zero point: the FP16 integer q of each element is the v1 one,
//   and each FP16 step (HSUB2, HFMA2) is exact (its result is an integer in [-15, 15]);
// - the scale step HMUL2(q, s), for every finite FP16 scale and every q: the reference's float32
//   product q * s is exact, so its one rounding to FP16 is the kernel's.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>

#include "decode.h"
#include "decode_v2.h"

static long failures = 0;
#define CHECK(cond, ...)                                       \
    do {                                                       \
        if (!(cond) && failures++ < 10) std::printf(__VA_ARGS__); \
    } while (0)

static double half_value(uint32_t h) {
    int e = (h >> 10) & 0x1F, m = h & 0x3FF;
    double mag = e == 0 ? std::ldexp(m, -24) : std::ldexp(m | 0x400, e - 25);
    return (h & 0x8000) ? -mag : mag;
}

// Round to the nearest FP16 value, ties to even (what every FP16 instruction does once).
static double fp16_round(double x) {
    if (x == 0.0) return x;
    int e;
    std::frexp(std::fabs(x), &e);
    double ulp = std::ldexp(1.0, (e - 1 < -14 ? -14 : e - 1) - 10);
    double r = std::nearbyint(x / ulp) * ulp;
    return std::fabs(r) > 65504.0 ? std::copysign(INFINITY, x) : r;
}

// The v1 integer of nibble `c`: decode.h's magic half minus its offset.
static double v1_q(uint32_t c, int fmt, int zero) {
    uint32_t h01, h23;
    qc_w4_decode4_half(c, fmt, &h01, &h23);
    return half_value(h01 & 0xFFFF) - qc_w4_half_offset(fmt, zero);
}

// Nibble position p of a v2 word <- (magic word j, half e) of qc_w4v2_magic.
static void position_of(int p, int* j, int* e) {
    *j = ((p >> 1) & 1) * 2 + (p & 1);
    *e = p >> 2;
}

static void check_word(uint32_t w, int fmt, int zero) {
    uint32_t m[4];
    qc_w4v2_magic(w, fmt, m);
    for (int p = 0; p < 8; ++p) {
        int j, e;
        position_of(p, &j, &e);
        double h = half_value((m[j] >> (16 * e)) & 0xFFFF);
        double q = (j & 1) ? std::fma(h, QC_W4V2_HIGH_FACTOR, qc_w4v2_high_addend(fmt, zero))
                           : h - qc_w4v2_low_offset(fmt, zero);
        double want = v1_q((w >> (4 * p)) & 0xF, fmt, zero);
        CHECK(q == want && q == std::nearbyint(q) && std::fabs(q) <= 15.0 && fp16_round(q) == q,
              "word %08x fmt %d zero %d position %d: v2 q %g, v1 q %g\n", (unsigned)w, fmt, zero, p, q, want);
    }
}

int main() {
    long words = 0;
    std::mt19937 rng(1234);
    for (int fmt : {QC_FMT_INT4, QC_FMT_UINT4}) {
        for (int zero = 0; zero < (fmt == QC_FMT_UINT4 ? 16 : 1); ++zero) {
            for (int p = 0; p < 8; ++p)
                for (uint32_t v = 0; v < 16; ++v)
                    for (uint32_t b = 0; b < 16; ++b, ++words)
                        check_word((b * 0x11111111u & ~(0xFu << (4 * p))) | (v << (4 * p)), fmt, zero);
            for (int i = 0; i < 20000; ++i, ++words) check_word(rng(), fmt, zero);
        }
    }

    long scales = 0, fused_differs = 0;
    for (uint32_t s = 0; s < 0x10000; ++s) {
        if (((s >> 10) & 0x1F) == 0x1F) continue;  // inf, NaN
        ++scales;
        double sv = half_value(s);
        for (int q = -15; q <= 15; ++q) {
            CHECK((double)((float)q * (float)sv) == q * sv, "scale %04x q %d: float32 product inexact\n", (unsigned)s, q);
            // What a fused HFMA2(1024 + u, s, -(1032 s)) would give (INT4): not the v1 value.
            double fused = fp16_round(std::fma(1032.0 + q, sv, fp16_round(-1032.0 * sv)));
            if (fused != fp16_round(q * sv)) ++fused_differs;
        }
    }
    std::printf("decode_v2: %ld words (x 8 elements), %ld scales x 31 q checked; a fused "
                "HFMA2(h, s, -1032 s) would differ in %ld of %ld INT4 products\n",
                words, scales, fused_differs, scales * 31);
    if (failures) std::printf("decode_v2: %ld failures\n", failures);
    return failures != 0;
}

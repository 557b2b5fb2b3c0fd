// ctest: the C reference's int4_sm90 (layout 3) decode against its nibble (layout 1) decode of the
// same codes, zero tolerance. The layout-3 bytes are packed here from the wgmma fragment description
// of docs/LAYOUTS.md (16 x 16 atoms of 128 bytes, N-tiles fastest; thread (g, t)'s 32-bit word at
// byte 16 g + 4 t, nibbles in the fragment's register order [0, 2, 4, 6, 1, 3, 5, 7]), not from
// int4_sm90.h, so the reference's index formula is checked against an independent statement:
// - every nibble value in every position (16 code matrices, position p holding (j + 7 p) mod 16 in
//   matrix j), and random matrices, for INT4 and for UINT4 with and without zero points, groups 64
//   and 128, shapes with one and several atoms along N and K;
// - qc_w4a16_check_shape's layout-3 refusals reach the reference (FP4, N = 8, group 32).
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "qc_ref.h"
#include "w4a16.h"

static long failures = 0;
#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (!(cond) && failures++ < 10) std::printf(__VA_ARGS__); \
    } while (0)

static void put(std::vector<uint8_t>& bytes, size_t p, unsigned c) {
    bytes[p / 2] |= (uint8_t)((c & 0xFu) << (4 * (p & 1)));
}

static std::vector<uint8_t> pack_nibble(const std::vector<uint8_t>& codes, int N, int K) {
    std::vector<uint8_t> out((size_t)N * K / 2, 0);
    for (int n = 0; n < N; ++n)
        for (int k = 0; k < K; ++k) put(out, (size_t)n * K + k, codes[(size_t)n * K + k]);
    return out;
}

static std::vector<uint8_t> pack_sm90(const std::vector<uint8_t>& codes, int N, int K) {
    std::vector<uint8_t> out((size_t)N * K / 2, 0);
    for (int a = 0; a < N / 16; ++a)
        for (int b = 0; b < K / 16; ++b) {
            const size_t atom = 256 * ((size_t)a + (size_t)(N / 16) * b);  // in nibbles
            for (int g = 0; g < 8; ++g)
                for (int t = 0; t < 4; ++t) {
                    const int r = 16 * a + g, k = 16 * b + 2 * t;
                    // the fragment's registers: (g, k), (g, k+1), (g+8, k), (g+8, k+1), then k + 8
                    const int rows[8] = {r, r, r + 8, r + 8, r, r, r + 8, r + 8};
                    const int cols[8] = {k, k + 1, k, k + 1, k + 8, k + 9, k + 8, k + 9};
                    const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
                    for (int i = 0; i < 8; ++i) {
                        const int f = order[i];
                        put(out, atom + 32 * g + 8 * t + i, codes[(size_t)rows[f] * K + cols[f]]);
                    }
                }
        }
    return out;
}

static void check(const std::vector<uint8_t>& codes, int N, int K, int group, int fmt, bool zeros,
                  std::mt19937& rng, const char* what) {
    const int groups = K / group;
    std::vector<uint16_t> scales((size_t)N * groups);
    std::vector<uint8_t> z((size_t)N * groups);
    for (auto& s : scales) s = (uint16_t)(0x2C00 + rng() % 0x1000);  // positive normal FP16 values
    for (auto& v : z) v = (uint8_t)(rng() % 16);
    const uint8_t* zp = zeros ? z.data() : nullptr;
    const std::vector<uint8_t> w1 = pack_nibble(codes, N, K), w3 = pack_sm90(codes, N, K);
    std::vector<float> y1((size_t)N * K), y3((size_t)N * K, -1.0f);
    int s1 = qc_ref_decode_w4a16(w1.data(), scales.data(), zp, N, K, group, fmt, 1, y1.data());
    int s3 = qc_ref_decode_w4a16(w3.data(), scales.data(), zp, N, K, group, fmt, 3, y3.data());
    CHECK(s1 == QC_OK && s3 == QC_OK, "%s: status %d / %d\n", what, s1, s3);
    for (size_t i = 0; i < y1.size(); ++i)
        CHECK(y1[i] == y3[i], "%s N=%d K=%d g=%d fmt %d zeros %d: (%zu, %zu) layout 3 %g, layout 1 %g\n", what, N,
              K, group, fmt, (int)zeros, i / K, i % K, (double)y3[i], (double)y1[i]);
}

int main() {
    std::mt19937 rng(90);
    long matrices = 0;
    const int shapes[][2] = {{16, 64}, {48, 128}, {32, 256}};
    for (const auto& shape : shapes) {
        const int N = shape[0], K = shape[1];
        for (int group : {64, 128}) {
            if (K % group) continue;
            for (int fmt : {QC_FMT_INT4, QC_FMT_UINT4})
                for (bool zeros : {false, true}) {
                    if (zeros && fmt != QC_FMT_UINT4) continue;
                    std::vector<uint8_t> codes((size_t)N * K);
                    for (unsigned j = 0; j < 16; ++j, ++matrices) {
                        for (size_t p = 0; p < codes.size(); ++p) codes[p] = (uint8_t)((j + 7 * p) % 16);
                        check(codes, N, K, group, fmt, zeros, rng, "every value");
                    }
                    for (int i = 0; i < 8; ++i, ++matrices) {
                        for (auto& c : codes) c = (uint8_t)(rng() % 16);
                        check(codes, N, K, group, fmt, zeros, rng, "random");
                    }
                }
        }
    }
    std::vector<uint8_t> w(16 * 64, 0);
    std::vector<uint16_t> s(16 * 2, 0x3C00);
    std::vector<float> y(16 * 128);
    CHECK(qc_ref_decode_w4a16(w.data(), s.data(), nullptr, 16, 128, 64, QC_FMT_FP4_E2M1, 3, y.data()) ==
              QC_ERR_FORMAT, "FP4 in layout 3 accepted\n");
    CHECK(qc_ref_decode_w4a16(w.data(), s.data(), nullptr, 8, 128, 64, QC_FMT_INT4, 3, y.data()) == QC_ERR_SHAPE,
          "N=8 in layout 3 accepted\n");
    CHECK(qc_ref_decode_w4a16(w.data(), s.data(), nullptr, 16, 128, 32, QC_FMT_INT4, 3, y.data()) == QC_ERR_ARG,
          "group 32 in layout 3 accepted\n");
    if (failures) {
        std::printf("qc_int4_sm90_test: %ld failures\n", failures);
        return 1;
    }
    std::printf("qc_int4_sm90_test: %ld matrices, layout 3 == layout 1 exactly\n", matrices);
    return 0;
}

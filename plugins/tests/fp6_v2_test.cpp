// ctest: the fp6_v2 decode of fp6_v2.h against the version-1 decode of decode.h, zero tolerance.
// For E3M2 and E2M3, every 6-bit code in every one of a lane's 32 weight positions, over a background
// of every constant code and of random codes: the lane's 16 lo4 and 8 hi2 bytes are packed here from
// the position rules of docs/LAYOUTS.md (written independently of the decoder), decoded by
// qc_fp6v2_decode, and each of the 32 FP16 values must have the bits qc_fp6_decode4 gives the same
// code (so the kernel's one exact multiply by 2^12 / 2^14 makes the same weights as version 1).
#include <cstdint>
#include <cstdio>
#include <random>

#include "decode.h"
#include "fp6_v2.h"

static long failures = 0;
#define CHECK(cond, ...)                                          \
    do {                                                          \
        if (!(cond) && failures++ < 10) std::printf(__VA_ARGS__); \
    } while (0)

// docs/LAYOUTS.md, fp6_v2: weight (h, d4) of a lane (h: row g / g + 8, d4: k = 16 t + d4) -> its
// nibble in the lane's lo4 bytes and the bits of its 2-bit segment in the lane's hi2 bytes.
struct Position {
    int nibble, bit0, bit1;
};

static Position position(int e2m3, int h, int d4) {
    const int i = d4 / 4, d = d4 % 4, j = h + 2 * (d / 2), e = d % 2, word = 32 * (i / 2);
    if (!e2m3) {
        static const int p4[4] = {4, 0, 2, 6}, p7[4] = {7, 3, 5, 9};
        const int byte = 2 * e + (d < 2 ? 1 : 0), q = 2 * (i % 2) + h;
        return {8 * i + 2 * byte + h, word + (8 * byte + p4[q]) % 32, word + (8 * byte + p7[q]) % 32};
    }
    static const int nib[4] = {2, 1, 0, 3};
    const int q = 4 * (i % 2) + j;
    return {8 * i + nib[j] + 4 * e, word + 16 * e + q, word + 16 * e + 8 + q};
}

// Segments: E3M2 code bits 0-3 and (4, 5); E2M3 bits 1-4 and (0, 5).
static void pack_lane(int e2m3, const uint8_t codes[32], uint32_t L[4], uint32_t H[2]) {
    L[0] = L[1] = L[2] = L[3] = H[0] = H[1] = 0;
    for (int h = 0; h < 2; ++h)
        for (int d4 = 0; d4 < 16; ++d4) {
            const uint32_t c = codes[16 * h + d4];
            const uint32_t lo = e2m3 ? (c >> 1) & 0xF : c & 0xF;
            const uint32_t s0 = e2m3 ? c & 1 : (c >> 4) & 1, s1 = c >> 5;
            const Position p = position(e2m3, h, d4);
            L[p.nibble / 8] |= lo << (4 * (p.nibble % 8));
            H[p.bit0 / 32] |= s0 << (p.bit0 % 32);
            H[p.bit1 / 32] |= s1 << (p.bit1 % 32);
        }
}

static uint32_t v1_half(int e2m3, uint32_t c) {
    uint32_t h01, h23;
    qc_fp6_decode4(c & 0xF, c >> 4, e2m3, &h01, &h23);
    return h01 & 0xFFFF;
}

static void check_lane(int e2m3, const uint8_t codes[32]) {
    uint32_t L[4], H[2], a[4][4];
    pack_lane(e2m3, codes, L, H);
    qc_fp6v2_decode(L, H, e2m3, a);
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
            for (int e = 0; e < 2; ++e) {
                const int h = j % 2, d4 = 4 * i + 2 * (j / 2) + e;  // the fragment slot's weight
                const uint32_t c = codes[16 * h + d4], got = (a[i][j] >> (16 * e)) & 0xFFFF;
                CHECK(got == v1_half(e2m3, c), "%s weight (h %d, d4 %d) code %02x: v2 %04x, v1 %04x\n",
                      e2m3 ? "E2M3" : "E3M2", h, d4, (unsigned)c, (unsigned)got, (unsigned)v1_half(e2m3, c));
            }
}

int main() {
    long lanes = 0;
    std::mt19937 rng(1234);
    for (int e2m3 = 0; e2m3 < 2; ++e2m3) {
        int seen[2][64] = {};  // every nibble and hi2 bit used once
        for (int h = 0; h < 2; ++h)
            for (int d4 = 0; d4 < 16; ++d4) {
                const Position p = position(e2m3, h, d4);
                seen[0][p.nibble]++, seen[1][p.bit0]++, seen[1][p.bit1]++;
            }
        for (int b = 0; b < 64; ++b) CHECK(seen[1][b] == 1 && (b >= 32 || seen[0][b] == 1), "bit %d not used once\n", b);
        for (int w = 0; w < 32; ++w)
            for (int c = 0; c < 64; ++c) {
                uint8_t codes[32];
                for (int bg = 0; bg < 64; ++bg, ++lanes) {  // every constant background
                    for (int x = 0; x < 32; ++x) codes[x] = (uint8_t)bg;
                    codes[w] = (uint8_t)c;
                    check_lane(e2m3, codes);
                }
                for (int r = 0; r < 16; ++r, ++lanes) {  // random backgrounds
                    for (int x = 0; x < 32; ++x) codes[x] = (uint8_t)(rng() & 0x3F);
                    codes[w] = (uint8_t)c;
                    check_lane(e2m3, codes);
                }
            }
    }
    std::printf("fp6_v2: %ld lanes (x 32 weights) checked against v1, E3M2 and E2M3\n", lanes);
    if (failures) std::printf("fp6_v2: %ld failures\n", failures);
    return failures != 0;
}

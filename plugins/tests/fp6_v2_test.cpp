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

// docs/LAYOUTS.md, fp6_v2: weight (h, d4) of a lane (h: row g / g + 8, d4: k = 16 t + d4) is half e
// of register a[i][j]; each bit of its segments lies at bit (f + 16 e - s) % 32 of lo4 word i or of
// hi2 word w, f the FP16 bit it becomes, s the register's rotation.
struct Position {
    int lo[4], hi[2];  // lane bit of each 4-bit segment bit (0..127) and 2-bit segment bit (0..63)
};

static Position position(int e2m3, int h, int d4) {
    const int i = d4 / 4, d = d4 % 4, j = h + 2 * (d / 2), e = d % 2;
    static const int e3m2_rot[4] = {0, 4, 2, 6};
    const int s = e2m3 ? i + 4 * j : e3m2_rot[2 * (i % 2) + j % 2] + 8 * (j / 2);
    const int w = e2m3 ? j / 2 : i / 2;
    const int f_hi0 = e2m3 ? 7 : 12, f_hi1 = 15;  // the 4-bit segment goes to FP16 bits 8-11
    Position p;
    for (int b = 0; b < 4; ++b) p.lo[b] = 32 * i + ((8 + b + 16 * e - s) % 32 + 32) % 32;
    p.hi[0] = 32 * w + ((f_hi0 + 16 * e - s) % 32 + 32) % 32;
    p.hi[1] = 32 * w + ((f_hi1 + 16 * e - s) % 32 + 32) % 32;
    return p;
}

// Segments: E3M2 code bits 0-3 and (4, 5); E2M3 bits 1-4 and (0, 5).
static void pack_lane(int e2m3, const uint8_t codes[32], uint32_t L[4], uint32_t H[2]) {
    L[0] = L[1] = L[2] = L[3] = H[0] = H[1] = 0;
    for (int h = 0; h < 2; ++h)
        for (int d4 = 0; d4 < 16; ++d4) {
            const uint32_t c = codes[16 * h + d4];
            const uint32_t four = e2m3 ? (c >> 1) & 0xF : c & 0xF;
            const uint32_t two[2] = {e2m3 ? c & 1 : (c >> 4) & 1, c >> 5};
            const Position p = position(e2m3, h, d4);
            for (int b = 0; b < 4; ++b) L[p.lo[b] / 32] |= ((four >> b) & 1) << (p.lo[b] % 32);
            for (int b = 0; b < 2; ++b) H[p.hi[b] / 32] |= two[b] << (p.hi[b] % 32);
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
        int lo_used[128] = {}, hi_used[64] = {};  // every lo4 and hi2 bit holds one segment bit
        for (int h = 0; h < 2; ++h)
            for (int d4 = 0; d4 < 16; ++d4) {
                const Position p = position(e2m3, h, d4);
                for (int b = 0; b < 4; ++b) lo_used[p.lo[b]]++;
                hi_used[p.hi[0]]++, hi_used[p.hi[1]]++;
            }
        for (int b = 0; b < 128; ++b)
            CHECK(lo_used[b] == 1 && (b >= 64 || hi_used[b] == 1), "lane bit %d not used once\n", b);
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

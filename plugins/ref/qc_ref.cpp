// CPU reference decoders: decode.h's bit operations, then float32 arithmetic.
#include "qc_ref.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "decode.h"
#include "decode_v2.h"
#include "fp6_v2.h"
#include "int4_sm90.h"
#include "w4a16.h"
#include "w4a8.h"
#include "w6a16.h"

namespace {

float half_bits_to_float(uint32_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  float mag;
  if (exp == 0) mag = std::ldexp((float)man, -24);
  else if (exp == 31) mag = man ? NAN : INFINITY;
  else mag = std::ldexp((float)(man | 0x400), (int)exp - 25);
  uint32_t bits;
  std::memcpy(&bits, &mag, 4);
  bits |= sign;
  std::memcpy(&mag, &bits, 4);
  return mag;
}

uint32_t load_word(const uint8_t* p) {  // little-endian, as a GPU load reads it
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

uint8_t float_to_e4m3(float x) {
  if (std::isnan(x)) return 0x7F;
  uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  float a = std::fabs(x);
  if (a >= 448.0f) return sign | 0x7E;
  if (a < 0.015625f) return sign | (uint8_t)std::nearbyint(a * 512.0f);  // subnormals: m * 2^-9
  int e;
  float f = std::frexp(a, &e);                               // a = f * 2^e, f in [0.5, 1)
  int q = (int)std::nearbyint((f * 2.0f - 1.0f) * 8.0f);     // exact product, ties to even
  int E = e - 1 + 7;
  if (q == 8) { q = 0; ++E; }
  int code = (E << 3) | q;
  return sign | (uint8_t)(code > 0x7E ? 0x7E : code);
}

float e4m3_to_float(uint8_t b) {
  int E = (b >> 3) & 15, m = b & 7;
  if ((b & 0x7F) == 0x7F) return NAN;
  float mag = E == 0 ? std::ldexp((float)m, -9) : std::ldexp((float)(8 + m), E - 10);
  return (b & 0x80) ? -mag : mag;
}

}  // namespace

extern "C" int qc_ref_fp6_to_half_bits(const uint8_t* codes, long long n, int format, uint16_t* out) {
  if (format != QC_FMT_FP6_E3M2 && format != QC_FMT_FP6_E2M3) return QC_ERR_FORMAT;
  for (long long i = 0; i < n; ++i) {
    uint32_t c = codes[i] & 0x3F, h01, h23;
    qc_fp6_decode4(c & 0xF, c >> 4, format == QC_FMT_FP6_E2M3, &h01, &h23);
    out[i] = (uint16_t)(h01 & 0xFFFF);
  }
  return QC_OK;
}

namespace {

/* fp6_v2: every warp tile and lane as the kernel reads them (one 16-byte lo4 and one 8-byte hi2 load),
 * fp6_v2.h's A registers back to (row, k), then the kernel's exact multiply by 2^12 / 2^14. */
void decode_w6a16_v2(const uint8_t* lo4, const uint8_t* hi2, const uint16_t* scales, int N, int K, int e2m3,
                     float* out) {
  for (int nt = 0; nt < N / 16; ++nt)
    for (int kt = 0; kt < K / 64; ++kt)
      for (int lane = 0; lane < 32; ++lane) {
        const uint8_t* l = lo4 + qc_fp6v2_lo4_offset(nt, kt, K, lane);
        const uint8_t* h = hi2 + qc_fp6v2_hi2_offset(nt, kt, K, lane);
        const uint32_t L[4] = {load_word(l), load_word(l + 4), load_word(l + 8), load_word(l + 12)};
        const uint32_t H[2] = {load_word(h), load_word(h + 4)};
        uint32_t a[4][4];
        qc_fp6v2_decode(L, H, e2m3, a);
        for (int i = 0; i < 4; ++i)
          for (int j = 0; j < 4; ++j)
            for (int e = 0; e < 2; ++e) {
              int row = 16 * nt + lane / 4 + 8 * (j & 1), k = 64 * kt + 16 * (lane % 4) + 4 * i + 2 * (j >> 1) + e;
              float v = half_bits_to_float((a[i][j] >> (16 * e)) & 0xFFFF) * qc_fp6_bias_factor(e2m3);
              out[(size_t)row * K + k] = v * half_bits_to_float(scales[row]);
            }
      }
}

}  // namespace

extern "C" int qc_ref_decode_w6a16(const uint8_t* lo4, const uint8_t* hi2, const uint16_t* scales,
                                   int N, int K, int format, int layout, float* out) {
  int st = qc_w6a16_check_shape(1, N, K, format, layout);
  if (st != QC_OK) return st;
  int e2m3 = format == QC_FMT_FP6_E2M3;
  if (layout == 2) {
    decode_w6a16_v2(lo4, hi2, scales, N, K, e2m3, out);
    return QC_OK;
  }
  for (int n = 0; n < N; ++n) {
    float scale = half_bits_to_float(scales[n]);
    for (int k = 0; k < K; k += 16) {
      const uint8_t* lo = lo4 + (size_t)n * (K / 2) + k / 2;
      uint32_t h[8];
      qc_fp6_decode16(load_word(lo), load_word(lo + 4), load_word(hi2 + (size_t)n * (K / 4) + k / 4), e2m3, h);
      for (int j = 0; j < 16; ++j) {
        float v = half_bits_to_float((h[j / 2] >> (16 * (j & 1))) & 0xFFFF) * qc_fp6_bias_factor(e2m3);
        out[(size_t)n * K + k + j] = v * scale;
      }
    }
  }
  return QC_OK;
}

namespace {

/* int4_v2: every warp tile, lane and fragment word as the kernel reads them; the FP16 steps of the
 * kernel (HSUB2 / HFMA2 to the integer q) are exact, and so is their float32 evaluation here. */
void decode_w4a16_v2(const uint8_t* w, const uint16_t* scales, const uint8_t* zeros, int N, int K,
                     int group_size, int format, float* out) {
  int groups = K / group_size;
  for (int nt = 0; nt < N / 16; ++nt)
    for (int kt = 0; kt < K / 64; ++kt)
      for (int lane = 0; lane < 32; ++lane) {
        const uint8_t* p = w + qc_w4v2_offset(nt, kt, K, lane);
        int rows[2] = {16 * nt + lane / 4, 16 * nt + lane / 4 + 8}, k = 64 * kt + 16 * (lane % 4);
        float scale[2], low_offset = 0.0f, high_addend = 0.0f;
        for (int r = 0; r < 2; ++r) {
          size_t gi = (size_t)rows[r] * groups + k / group_size;
          scale[r] = half_bits_to_float(scales[gi]);
          int zero = zeros ? zeros[gi] : 0;
          if (r == 0) low_offset = qc_w4v2_low_offset(format, zero);
          else high_addend = qc_w4v2_high_addend(format, zero);
        }
        for (int i = 0; i < 4; ++i) {
          uint32_t m[4];
          qc_w4v2_magic(load_word(p + 4 * i), format, m);
          for (int j = 0; j < 4; ++j)
            for (int e = 0; e < 2; ++e) {
              float h = half_bits_to_float((m[j] >> (16 * e)) & 0xFFFF);
              int r = j & 1;
              float q = r ? h * QC_W4V2_HIGH_FACTOR + high_addend : h - low_offset;
              out[(size_t)rows[r] * K + k + 4 * i + 2 * (j >> 1) + e] = q * scale[r];
            }
        }
      }
}

/* int4_sm90 -> the nibble layout, element by element (int4_sm90.h); the sm_90a kernel's decode is
 * CUTLASS's and not reproduced here. */
std::vector<uint8_t> int4_sm90_to_nibbles(const uint8_t* w, int N, int K) {
  std::vector<uint8_t> out((size_t)N * (K / 2), 0);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) {
      const size_t p = qc_int4_sm90_nibble(n, k, N);
      const unsigned c = (w[p / 2] >> (4 * (p & 1))) & 0xFu;
      out[(size_t)n * (K / 2) + k / 2] |= (uint8_t)(c << (4 * (k & 1)));
    }
  return out;
}

void decode_w4a16_v1(const uint8_t* w, const uint16_t* scales, const uint8_t* zeros, int N, int K,
                     int group_size, int format, float* out) {
  int groups = K / group_size;
  for (int n = 0; n < N; ++n) {
    for (int k = 0; k < K; k += 16) {
      size_t gi = (size_t)n * groups + k / group_size;
      float scale = half_bits_to_float(scales[gi]);
      float offset = qc_w4_half_offset(format, zeros ? zeros[gi] : 0);
      const uint8_t* p = w + (size_t)n * (K / 2) + k / 2;
      uint32_t h[8];
      qc_w4_decode16_half(load_word(p), load_word(p + 4), format, h);
      for (int j = 0; j < 16; ++j) {
        float v = (half_bits_to_float((h[j / 2] >> (16 * (j & 1))) & 0xFFFF) - offset) * qc_w4_half_factor(format);
        out[(size_t)n * K + k + j] = v * scale;
      }
    }
  }
}

}  // namespace

extern "C" int qc_ref_decode_w4a16(const uint8_t* w, const uint16_t* scales, const uint8_t* zeros,
                                   int N, int K, int group_size, int format, int layout, float* out) {
  int st = qc_w4a16_check_shape(1, N, K, group_size, format, zeros != nullptr, layout);
  if (st != QC_OK) return st;
  if (layout == 2) {
    decode_w4a16_v2(w, scales, zeros, N, K, group_size, format, out);
  } else if (layout == 3) {
    const std::vector<uint8_t> nibbles = int4_sm90_to_nibbles(w, N, K);
    decode_w4a16_v1(nibbles.data(), scales, zeros, N, K, group_size, format, out);
  } else {
    decode_w4a16_v1(w, scales, zeros, N, K, group_size, format, out);
  }
  return QC_OK;
}

extern "C" int qc_ref_w4_to_fp8(const uint8_t* codes, const int8_t* exps, long long n, int format, uint8_t* out) {
  if (format != QC_FMT_INT4 && format != QC_FMT_FP4_E2M1) return QC_ERR_FORMAT;
  for (long long i = 0; i < n; ++i) out[i] = (uint8_t)qc_w4_to_fp8(codes[i], exps[i], format);
  return QC_OK;
}

extern "C" int qc_ref_w4a8_lut(int format, int e, uint8_t out[16]) {
  if (format != QC_FMT_INT4 && format != QC_FMT_FP4_E2M1) return QC_ERR_FORMAT;
  uint32_t lut[4];
  qc_w4a8_lut(format, e, lut);
  for (int i = 0; i < 16; ++i) out[i] = (uint8_t)(lut[i / 4] >> (8 * (i % 4)));
  return QC_OK;
}

extern "C" int qc_ref_decode_w4a8_fp8(const uint8_t* w, const int8_t* group_exp, int N, int K,
                                      int group_size, int format, uint8_t* out_bytes) {
  int st = qc_w4a8_check_shape(1, N, K, group_size, format, QC_ACT_PER_TENSOR);
  if (st != QC_OK) return st;
  int groups = K / group_size;
  for (int n = 0; n < N; ++n) {
    for (int k = 0; k < K; k += 8) {
      uint32_t lut[4], lo, hi;
      qc_w4a8_lut(format, group_exp[(size_t)n * groups + k / group_size], lut);
      qc_w4a8_convert8(load_word(w + (size_t)n * (K / 2) + k / 2), lut, &lo, &hi);
      for (int j = 0; j < 8; ++j) out_bytes[(size_t)n * K + k + j] = (uint8_t)((j < 4 ? lo : hi) >> (8 * (j & 3)));
    }
  }
  return QC_OK;
}

extern "C" int qc_ref_float_to_e4m3(const float* x, long long n, float inv_scale, uint8_t* out) {
  for (long long i = 0; i < n; ++i) out[i] = float_to_e4m3(x[i] * inv_scale);
  return QC_OK;
}

extern "C" int qc_ref_e4m3_to_float(const uint8_t* b, long long n, float* out) {
  for (long long i = 0; i < n; ++i) out[i] = e4m3_to_float(b[i]);
  return QC_OK;
}

extern "C" int qc_ref_gemm_f32(const float* x, const float* w, int M, int N, int K, float* y) {
  if (M < 0 || N < 0 || K < 0) return QC_ERR_SHAPE;
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double acc = 0.0;
      for (int k = 0; k < K; ++k) acc += (double)x[(size_t)m * K + k] * w[(size_t)n * K + k];
      y[(size_t)m * N + n] = (float)acc;
    }
  return QC_OK;
}

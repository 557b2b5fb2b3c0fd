// ctest: the shared-memory layout of the pipelined loop (pipeline_layout.h), simulated for every
// thread of a CTA on the CPU, for MF = 1, 2, 4:
// - the cp.async of a stage write every 16-byte chunk of the tile exactly once, inside the tile;
// - every fragment read finds the chunk holding the (row, k) its MMA slots need: thread t's run of
//   16 k per 64-k sub-block (FP16 MMAs, the k order int4_v2 bakes in) or 32 k (W4A8);
// - no shared-memory bank conflicts: 16-byte reads of each quarter warp hit 8 distinct 16-byte bank
//   groups, 8-byte reads of each half warp 32 distinct banks.
#include <cstdio>
#include <set>
#include <vector>

#include "pipeline_layout.h"

static int failures = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      if (failures < 20) std::printf("FAIL: " __VA_ARGS__); \
      ++failures;                                          \
    }                                                      \
  } while (0)

// Activation tile: tag = 16 r + c (token row r, k 8c .. 8c + 7).
static void check_x(int mf, bool w4a8) {
  const int rows = 8 * mf, chunks = rows * 16;
  auto slot = [&](int r, int c) { return w4a8 ? qc_x_slot_w4a8(r, c) : qc_x_slot_f16(r, c); };
  std::vector<int> tag(chunks, -1);
  for (int tid = 0; tid < QC_PIPE_THREADS; ++tid)
    for (int j = 0; j < mf; ++j) {
      const int r = qc_x_copy_row(tid, j), c = qc_x_copy_chunk(tid), off = qc_x_offset(r, slot(r, c));
      CHECK(r < rows && off % 16 == 0 && off >= 0 && off / 16 < chunks, "x copy mf=%d tid=%d j=%d\n", mf, tid, j);
      if (off / 16 >= chunks) continue;
      CHECK(tag[off / 16] == -1, "x chunk written twice mf=%d off=%d\n", mf, off);
      tag[off / 16] = 16 * r + c;
    }
  for (int i = 0; i < chunks; ++i) CHECK(tag[i] >= 0, "x chunk %d never written (mf=%d)\n", i, mf);

  const int subs = w4a8 ? 1 : 2, reads = w4a8 ? 4 : 2;
  for (int f = 0; f < mf; ++f)
    for (int sb = 0; sb < subs; ++sb)
      for (int q = 0; q < reads; ++q)
        for (int quarter = 0; quarter < 4; ++quarter) {
          std::set<int> banks;
          for (int lane = 8 * quarter; lane < 8 * quarter + 8; ++lane) {
            const int g = lane / 4, t = lane % 4, r = 8 * f + g;
            const int c = w4a8 ? qc_x_read_chunk_w4a8(t, q) : qc_x_read_chunk_f16(sb, t, q);
            const int want_k = w4a8 ? 32 * t + 8 * q : 64 * sb + 16 * t + 8 * q;
            const int off = qc_x_offset(r, slot(r, c));
            CHECK(8 * c == want_k, "x read k mf=%d w4a8=%d lane=%d\n", mf, w4a8, lane);
            CHECK(tag[off / 16] == 16 * r + c, "x read finds the wrong chunk mf=%d w4a8=%d f=%d lane=%d\n", mf,
                  w4a8, f, lane);
            banks.insert((off / 16) % 8);
          }
          CHECK(banks.size() == 8, "x read bank conflict mf=%d w4a8=%d f=%d sb=%d q=%d\n", mf, w4a8, f, sb, q);
        }
}

// W4A8's E4M3 activations: converted in place (inside the slot its thread copied), read as 8 bytes
// per chunk 4t + q by half warps without bank conflicts.
static void check_x_fp8(int mf) {
  for (int tid = 0; tid < QC_PIPE_THREADS; ++tid)
    for (int j = 0; j < mf; ++j) {
      const int r = qc_x_copy_row(tid, j), slot = qc_x_slot_w4a8(r, qc_x_copy_chunk(tid));
      const int d = qc_x_fp8_offset(r, slot) - qc_x_offset(r, slot);
      CHECK(d == 0 || d == 8, "fp8 outside its slot mf=%d tid=%d\n", mf, tid);
    }
  for (int f = 0; f < mf; ++f)
    for (int q = 0; q < 4; ++q)
      for (int half = 0; half < 2; ++half) {
        std::set<int> banks;
        for (int lane = 16 * half; lane < 16 * half + 16; ++lane) {
          const int g = lane / 4, t = lane % 4, r = 8 * f + g;
          const int off = qc_x_fp8_offset(r, qc_x_slot_w4a8(r, qc_x_read_chunk_w4a8(t, q)));
          banks.insert((off / 4) % 32);
          banks.insert((off / 4 + 1) % 32);
        }
        CHECK(banks.size() == 32, "fp8 read bank conflict mf=%d f=%d q=%d half=%d\n", mf, f, q, half);
      }
}

// Packed weight tile (64 rows x 64 bytes): tag = 4 r + q (row r, k 32q .. 32q + 31).
static void check_w() {
  std::vector<int> tag(64 * 4, -1);
  for (int tid = 0; tid < QC_PIPE_THREADS; ++tid)
    for (int j = 0; j < 2; ++j) {
      const int r = qc_w_copy_row(tid, j), q = qc_w_copy_chunk(tid), off = qc_w_offset(r, q);
      CHECK(r < 64 && off % 16 == 0 && off / 16 < 256, "w copy tid=%d\n", tid);
      if (off / 16 >= 256) continue;
      CHECK(tag[off / 16] == -1, "w chunk written twice off=%d\n", off);
      tag[off / 16] = 4 * r + q;
    }
  for (int i = 0; i < 256; ++i) CHECK(tag[i] >= 0, "w chunk %d never written\n", i);

  for (int w = 0; w < 4; ++w)
    for (int hi = 0; hi < 2; ++hi) {  // rows r0 = 16 w + g and r1 = r0 + 8: separate loads
      for (int sb = 0; sb < 2; ++sb)
        for (int half = 0; half < 2; ++half) {  // 8-byte loads: half warps
          std::set<int> banks;
          for (int lane = 16 * half; lane < 16 * half + 16; ++lane) {
            const int g = lane / 4, t = lane % 4, r = 16 * w + g + 8 * hi;
            const int off = qc_w_read_offset_f16(r, sb, t), within = off % 16;
            const int k = 32 * (tag[off / 16] % 4) + 2 * within;  // nibbles: 2 k per byte
            CHECK(tag[off / 16] / 4 == r && k == 64 * sb + 16 * t && within % 8 == 0,
                  "w read (W4A16) w=%d lane=%d sb=%d\n", w, lane, sb);
            banks.insert((off / 4) % 32);
            banks.insert((off / 4 + 1) % 32);
          }
          CHECK(banks.size() == 32, "w read bank conflict (W4A16) w=%d sb=%d half=%d\n", w, sb, half);
        }
      for (int quarter = 0; quarter < 4; ++quarter) {  // 16-byte loads: quarter warps
        std::set<int> banks;
        for (int lane = 8 * quarter; lane < 8 * quarter + 8; ++lane) {
          const int g = lane / 4, t = lane % 4, r = 16 * w + g + 8 * hi;
          const int off = qc_w_read_offset_w4a8(r, t);
          CHECK(off % 16 == 0 && tag[off / 16] == 4 * r + t, "w read (W4A8) w=%d lane=%d\n", w, lane);
          banks.insert((off / 16) % 8);
        }
        CHECK(banks.size() == 8, "w read bank conflict (W4A8) w=%d quarter=%d\n", w, quarter);
      }
    }
  // int4_v2: each thread's own 16 bytes per sub-block, consecutive (conflict-free by construction)
  std::set<int> seen;
  for (int sb = 0; sb < 2; ++sb)
    for (int tid = 0; tid < QC_PIPE_THREADS; ++tid) seen.insert(qc_w4v2_smem_offset(sb, tid) / 16);
  CHECK(seen.size() == 256 && *seen.rbegin() == 255, "int4_v2 stage layout\n");
}

int main() {
  for (int mf : {1, 2, 4}) {
    check_x(mf, false);
    check_x(mf, true);
    check_x_fp8(mf);
  }
  check_w();
  if (!failures) std::printf("pipeline_layout_test: ok\n");
  return failures != 0;
}

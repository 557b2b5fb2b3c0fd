// ctest: the shared-memory layout of the pipelined loop (pipeline_layout.h), simulated for every
// thread of a CTA on the CPU, for MF = 1, 2, 4 and activation stages of 128 k (W4A16, W4A8) and
// 64 k (W6A16):
// - the cp.async of a stage write every 16-byte chunk of the tile exactly once, inside the tile;
// - every fragment read finds the chunk holding the (row, k) its MMA slots need: thread t's run of
//   16 k per 64-k sub-block (FP16 MMAs, the k order int4_v2 bakes in); W4A8's in-place E4M3
//   conversion stays inside chunks its task alone reads, and ldmatrix then hands every thread the
//   words of its 32-k run;
// - no shared-memory bank conflicts: 16-byte accesses of each quarter warp and each ldmatrix phase
//   hit 8 distinct 16-byte bank groups, 8-byte reads of each half warp 32 distinct banks;
// - W6A16's 64-k weight stages (fp6_4+2 and fp6_v2): every lo4 / hi2 byte copied once, every thread
//   reads the bytes of its rows and k run, without bank conflicts.
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

// Activation tile of a kb-k stage: tag = 16 r + c (token row r, k 8c .. 8c + 7). The copy rounds
// and active threads of QcXCopy<MF, KB> (pipeline.cuh).
static void check_x(int mf, int kb) {
  const int cpr = kb / 8, rows = 8 * mf, chunks = rows * cpr;
  const int per_round = QC_PIPE_THREADS / cpr, rounds = rows < per_round ? 1 : rows / per_round;
  const int active = rows < per_round ? rows * cpr : QC_PIPE_THREADS;
  auto slot = [](int r, int c) { return qc_x_slot(r, c); };
  std::vector<int> tag(chunks, -1);
  for (int tid = 0; tid < active; ++tid)
    for (int j = 0; j < rounds; ++j) {
      const int r = qc_x_copy_row_kb(tid, j, kb), c = qc_x_copy_chunk_kb(tid, kb);
      const int off = qc_x_offset_kb(r, slot(r, c), kb);
      CHECK(r < rows && off % 16 == 0 && off >= 0 && off / 16 < chunks, "x copy mf=%d kb=%d tid=%d j=%d\n", mf, kb, tid, j);
      if (off / 16 >= chunks) continue;
      CHECK(tag[off / 16] == -1, "x chunk written twice mf=%d off=%d\n", mf, off);
      tag[off / 16] = 16 * r + c;
    }
  for (int i = 0; i < chunks; ++i) CHECK(tag[i] >= 0, "x chunk %d never written (mf=%d)\n", i, mf);

  // direct reads of the W4A16 fragments (QC_PIPE_F16_LDSM 0)
  for (int f = 0; f < mf; ++f)
    for (int sb = 0; sb < kb / 64; ++sb)
      for (int q = 0; q < 2; ++q)
        for (int quarter = 0; quarter < 4; ++quarter) {
          std::set<int> banks;
          for (int lane = 8 * quarter; lane < 8 * quarter + 8; ++lane) {
            const int g = lane / 4, t = lane % 4, r = 8 * f + g, c = qc_x_read_chunk_f16(sb, t, q);
            const int off = qc_x_offset_kb(r, slot(r, c), kb);
            CHECK(8 * c == 64 * sb + 16 * t + 8 * q, "x read k mf=%d lane=%d\n", mf, lane);
            CHECK(tag[off / 16] == 16 * r + c, "x read finds the wrong chunk mf=%d f=%d lane=%d\n", mf, f, lane);
            banks.insert((off / 16) % 8);
          }
          CHECK(banks.size() == 8, "x read bank conflict mf=%d f=%d sb=%d q=%d\n", mf, f, sb, q);
        }
}

// W4A16 with ldmatrix: transposition tasks (r, sb, q) read chunks 8 sb + 2t + q (disjoint, covering
// the tile) and write them back transposed; ldmatrix then hands thread (g, t) the words 32 sb + 8t +
// 2i + h of token row 8f + g, exactly the direct reads' b[i][h]. Word tags: 1000 * row + word.
static void check_x_f16_ldsm(int mf, int kb) {
  const int rows = 8 * mf, cpr = kb / 8, chunks = rows * cpr, subs = kb / 64, tasks = 16 * mf * subs;
  auto xoff = [kb](int r, int c) { return qc_x_offset_kb(r, qc_x_slot(r, c), kb); };
  std::vector<int> owner(chunks, -1), word(chunks * 4, -1);
  for (int r = 0; r < rows; ++r)  // after the copies: word w of row r in chunk w / 4
    for (int c = 0; c < cpr; ++c)
      for (int e = 0; e < 4; ++e) word[xoff(r, c) / 4 + e] = 1000 * r + 4 * c + e;
  std::vector<int> after = word;
  for (int tid = 0; tid < tasks; ++tid) {
    const int r = qc_f16_task_row(tid, mf), sb = qc_f16_task_sb(tid, mf), q = qc_f16_task_q(tid, mf);
    CHECK(r < rows && sb < subs, "f16 task out of range mf=%d kb=%d tid=%d\n", mf, kb, tid);
    for (int t = 0; t < 4; ++t) {
      const int off = xoff(r, qc_x_read_chunk_f16(sb, t, q));
      CHECK(owner[off / 16] == -1, "f16 chunk read by two tasks mf=%d tid=%d\n", mf, tid);
      owner[off / 16] = tid;
    }
    for (int e = 0; e < 4; ++e)  // write row e of the transposed 4 x 4 into chunk 8 sb + 2e + q
      for (int t = 0; t < 4; ++t)
        after[xoff(r, qc_x_read_chunk_f16(sb, e, q)) / 4 + t] = word[xoff(r, qc_x_read_chunk_f16(sb, t, q)) / 4 + e];
  }
  for (int c = 0; c < chunks; ++c) CHECK(owner[c] >= 0, "f16 chunk %d never transposed (mf=%d kb=%d)\n", c, mf, kb);
  for (int quarter = 0; quarter < tasks / 8; ++quarter)
    for (int t = 0; t < 4; ++t) {
      std::set<int> banks;
      for (int tid = 8 * quarter; tid < 8 * quarter + 8; ++tid) {
        const int r = qc_f16_task_row(tid, mf);
        banks.insert(qc_x_slot(r, qc_x_read_chunk_f16(qc_f16_task_sb(tid, mf), t, qc_f16_task_q(tid, mf))) % 8);
      }
      CHECK(banks.size() == 8, "f16 transposition bank conflict mf=%d quarter=%d\n", mf, quarter);
    }
  for (int f = 0; f < mf; ++f)
    for (int sb = 0; sb < subs; ++sb)
      for (int p = 0; p < 2; ++p) {
        for (int j = 0; j < 4; ++j) {
          std::set<int> banks;
          for (int lane = 8 * j; lane < 8 * j + 8; ++lane) banks.insert((qc_f16_ldsm_offset_kb(f, sb, p, lane, kb) / 16) % 8);
          CHECK(banks.size() == 8, "f16 ldmatrix bank conflict mf=%d f=%d\n", mf, f);
        }
        for (int lane = 0; lane < 32; ++lane) {
          const int g = lane / 4, t = lane % 4;
          for (int j = 0; j < 4; ++j) {
            const int i = 2 * p + j / 2, h = j % 2;
            const int got = after[qc_f16_ldsm_offset_kb(f, sb, p, 8 * j + g, kb) / 4 + t];
            CHECK(got == 1000 * (8 * f + g) + 32 * sb + 8 * t + 2 * i + h, "f16 ldmatrix register mf=%d f=%d sb=%d lane=%d j=%d\n",
                  mf, f, sb, lane, j);
          }
        }
      }
}

// The ldmatrix transposition (qc_f16_tr_*, QcPipeF16T: W6A16's 64-k stages; checked at 128 k too):
// op o's ldmatrix hands thread (g, t) word t of the row addresses of lanes 8 j + g (j = 0..3), which
// it stores at its store offset; the tile must come out as the register transposition's, every
// chunk read and written by exactly one op, without bank conflicts. QcPipeF16T also shifts op o by
// 16 rows for op o + 4 and token fragment f by 8 rows from fragment 0: those offsets are checked.
static void check_x_f16_tr(int mf, int kb) {
  const int rows = 8 * mf, cpr = kb / 8, chunks = rows * cpr, ops = 2 * mf * (kb / 64);
  auto xoff = [kb](int r, int c) { return qc_x_offset_kb(r, qc_x_slot(r, c), kb); };
  std::vector<int> word(chunks * 4, -1), after(chunks * 4, -1), read(chunks, 0), written(chunks, 0);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cpr; ++c)
      for (int e = 0; e < 4; ++e) word[xoff(r, c) / 4 + e] = 1000 * r + 4 * c + e;
  for (int o = 0; o < ops; ++o) {
    for (int lane = 0; lane < 32; ++lane) {
      const int off = qc_f16_tr_load_offset(o, lane, kb);
      CHECK(off % 16 == 0 && off >= 0 && off / 16 < chunks, "tr load out of range mf=%d kb=%d o=%d\n", mf, kb, o);
      if (off >= 0 && off / 16 < chunks) ++read[off / 16];
    }
    for (int lane = 0; lane < 32; ++lane) {
      const int g = lane / 4, t = lane % 4, st = qc_f16_tr_store_offset(o, lane, kb);
      CHECK(st % 16 == 0 && st >= 0 && st / 16 < chunks, "tr store out of range mf=%d kb=%d o=%d\n", mf, kb, o);
      if (st < 0 || st / 16 >= chunks) continue;
      ++written[st / 16];
      for (int j = 0; j < 4; ++j) {
        const int src = qc_f16_tr_load_offset(o, 8 * j + g, kb);
        if (src >= 0 && src / 16 < chunks) after[st / 4 + j] = word[src / 4 + t];
      }
    }
    for (int j = 0; j < 4; ++j) {  // ldmatrix phase j: 8 row addresses
      std::set<int> banks;
      for (int lane = 8 * j; lane < 8 * j + 8; ++lane) banks.insert((qc_f16_tr_load_offset(o, lane, kb) / 16) % 8);
      CHECK(banks.size() == 8, "tr ldmatrix bank conflict mf=%d kb=%d o=%d\n", mf, kb, o);
    }
    for (int quarter = 0; quarter < 4; ++quarter) {  // 16-byte stores: quarter warps
      std::set<int> banks;
      for (int lane = 8 * quarter; lane < 8 * quarter + 8; ++lane) banks.insert((qc_f16_tr_store_offset(o, lane, kb) / 16) % 8);
      CHECK(banks.size() == 8, "tr store bank conflict mf=%d kb=%d o=%d\n", mf, kb, o);
    }
    if (kb == 64 && o + 4 < ops)
      for (int lane = 0; lane < 32; ++lane)
        CHECK(qc_f16_tr_load_offset(o + 4, lane, kb) == qc_f16_tr_load_offset(o, lane, kb) + 2048 &&
                  qc_f16_tr_store_offset(o + 4, lane, kb) == qc_f16_tr_store_offset(o, lane, kb) + 2048,
              "tr op o + 4 is not 16 rows further mf=%d o=%d\n", mf, o);
  }
  for (int c = 0; c < chunks; ++c)
    CHECK(read[c] == 1 && written[c] == 1, "tr chunk %d read %d / written %d times (mf=%d kb=%d)\n", c, read[c], written[c], mf, kb);
  // the register transposition's result, as check_x_f16_ldsm computes it
  for (int r = 0; r < rows; ++r)
    for (int sb = 0; sb < kb / 64; ++sb)
      for (int q = 0; q < 2; ++q)
        for (int e = 0; e < 4; ++e)
          for (int t = 0; t < 4; ++t)
            CHECK(after[xoff(r, qc_x_read_chunk_f16(sb, e, q)) / 4 + t] == word[xoff(r, qc_x_read_chunk_f16(sb, t, q)) / 4 + e],
                  "tr result differs mf=%d kb=%d r=%d\n", mf, kb, r);
  if (kb == 64)
    for (int f = 0; f < mf; ++f)
      for (int p = 0; p < 2; ++p)
        for (int lane = 0; lane < 32; ++lane)
          CHECK(qc_f16_ldsm_offset_kb(f, 0, p, lane, 64) == qc_f16_ldsm_offset_kb(0, 0, p, lane, 64) + 1024 * f,
                "B ldmatrix offset of fragment f is not 8 rows further mf=%d f=%d\n", mf, f);
}

// W4A8: conversion tasks (r, i) read chunks 4t + i of row r (the chunks of every task are disjoint
// and cover the tile) and write matrix rows (i, h) into their own chunks; then ldmatrix hands thread
// (g, t) of token fragment f the E4M3 word of k 32t + 8i + 4h of token row 8f + g in register j of
// load p (i = 2p + j / 2, h = j % 2). Word tags: 1000 * row + k of its first element.
static void check_x_w4a8(int mf) {
  const int rows = 8 * mf, chunks = rows * 16;
  std::vector<int> owner(chunks, -1), word(chunks * 4, -1);
  for (int tid = 0; tid < 32 * mf; ++tid) {
    const int r = qc_w4a8_task_row(tid, mf), i = qc_w4a8_task_i(tid, mf);
    CHECK(r < rows && i < 4, "task out of range mf=%d tid=%d\n", mf, tid);
    for (int t = 0; t < 4; ++t) {
      const int off = qc_x_offset(r, qc_x_slot(r, qc_w4a8_task_chunk(i, t)));
      CHECK(owner[off / 16] == -1, "chunk read by two tasks mf=%d tid=%d\n", mf, tid);
      owner[off / 16] = tid;
    }
  }
  for (int tid = 0; tid < 32 * mf; ++tid) {
    const int r = qc_w4a8_task_row(tid, mf), i = qc_w4a8_task_i(tid, mf);
    for (int h = 0; h < 2; ++h) {
      const int off = qc_x_offset(r, qc_x_slot(r, qc_w4a8_matrix_chunk(i, h)));
      CHECK(owner[off / 16] == tid, "task writes a chunk it does not own mf=%d tid=%d\n", mf, tid);
      for (int t = 0; t < 4; ++t) word[off / 4 + t] = 1000 * r + 32 * t + 8 * i + 4 * h;
    }
  }
  for (int c = 0; c < chunks; ++c) CHECK(owner[c] >= 0, "chunk %d never converted (mf=%d)\n", c, mf);
  // conversion: each quarter warp's reads (per t) and writes (per h) hit 8 distinct bank groups
  for (int quarter = 0; quarter < 4 * mf; ++quarter)
    for (int a = 0; a < 6; ++a) {
      std::set<int> banks;
      for (int tid = 8 * quarter; tid < 8 * quarter + 8; ++tid) {
        const int r = qc_w4a8_task_row(tid, mf), i = qc_w4a8_task_i(tid, mf);
        const int c = a < 4 ? qc_w4a8_task_chunk(i, a) : qc_w4a8_matrix_chunk(i, a - 4);
        banks.insert(qc_x_slot(r, c) % 8);
      }
      CHECK(banks.size() == 8, "conversion bank conflict mf=%d quarter=%d access=%d\n", mf, quarter, a);
    }
  for (int f = 0; f < mf; ++f)
    for (int p = 0; p < 2; ++p) {
      for (int j = 0; j < 4; ++j) {  // phase j: the 8 row addresses of matrix j
        std::set<int> banks;
        for (int lane = 8 * j; lane < 8 * j + 8; ++lane) banks.insert((qc_w4a8_ldsm_offset(f, p, lane) / 16) % 8);
        CHECK(banks.size() == 8, "ldmatrix bank conflict mf=%d f=%d p=%d matrix=%d\n", mf, f, p, j);
      }
      for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, t = lane % 4;
        for (int j = 0; j < 4; ++j) {
          const int row_addr = qc_w4a8_ldsm_offset(f, p, 8 * j + g);
          const int i = 2 * p + j / 2, h = j % 2;
          CHECK(word[row_addr / 4 + t] == 1000 * (8 * f + g) + 32 * t + 8 * i + 4 * h,
                "ldmatrix register mf=%d f=%d p=%d lane=%d j=%d\n", mf, f, p, lane, j);
        }
      }
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

// W6A16's 64-k weight stage (QC_W6_STAGE_BYTES): byte tags. lo4: 1 + (r * 64 + k) / 2 for the byte
// holding k, k + 1 of row r (layout 1) or 1 + 16 (32 w + lane) + i for byte i of lane `lane` of warp
// tile w (fp6_v2); hi2: 100000 + the same per 4 k (layout 1) or per 8-byte lane block (fp6_v2).
static void check_w6() {
  {  // layout 1
    std::vector<int> tag(QC_W6_STAGE_BYTES, -1);
    for (int tid = 0; tid < QC_PIPE_THREADS; ++tid) {
      const int r = qc_w6_lo4_copy_row(tid), q = qc_w6_lo4_copy_chunk(tid), off = qc_w6_lo4_offset(r, q);
      CHECK(r < 64 && off % 16 == 0 && off + 16 <= QC_W6_LO4_STAGE_BYTES, "w6 lo4 copy tid=%d\n", tid);
      for (int b = 0; b < 16; ++b) {
        CHECK(tag[off + b] == -1, "w6 lo4 byte written twice tid=%d\n", tid);
        tag[off + b] = 1 + (r * 64 + 32 * q + 2 * b) / 2;
      }
      if (tid < 64)
        for (int b = 0; b < 16; ++b) {
          const int o = qc_w6_hi2_offset(tid);
          CHECK(o % 16 == 0 && tag[o + b] == -1, "w6 hi2 copy tid=%d\n", tid);
          tag[o + b] = 100000 + (tid * 64 + 4 * b) / 4;
        }
    }
    for (int i = 0; i < QC_W6_STAGE_BYTES; ++i) CHECK(tag[i] >= 0, "w6 byte %d never written\n", i);
    for (int w = 0; w < 4; ++w)
      for (int hi = 0; hi < 2; ++hi) {
        for (int half = 0; half < 2; ++half) {  // 8-byte lo4 reads: half warps
          std::set<int> banks;
          for (int lane = 16 * half; lane < 16 * half + 16; ++lane) {
            const int g = lane / 4, t = lane % 4, r = 16 * w + g + 8 * hi, off = qc_w6_lo4_read_offset(r, t);
            for (int b = 0; b < 8; ++b) CHECK(tag[off + b] == 1 + (r * 64 + 16 * t + 2 * b) / 2, "w6 lo4 read w=%d lane=%d\n", w, lane);
            banks.insert((off / 4) % 32);
            banks.insert((off / 4 + 1) % 32);
          }
          CHECK(banks.size() == 32, "w6 lo4 read bank conflict w=%d half=%d\n", w, half);
        }
        std::set<int> banks;  // 4-byte hi2 reads: the warp
        for (int lane = 0; lane < 32; ++lane) {
          const int g = lane / 4, t = lane % 4, r = 16 * w + g + 8 * hi, off = qc_w6_hi2_read_offset(r, t);
          CHECK(off % 4 == 0, "w6 hi2 read alignment\n");
          for (int b = 0; b < 4; ++b) CHECK(tag[off + b] == 100000 + (r * 64 + 16 * t + 4 * b) / 4, "w6 hi2 read w=%d lane=%d\n", w, lane);
          banks.insert((off / 4) % 32);
        }
        CHECK(banks.size() == 32, "w6 hi2 read bank conflict w=%d\n", w);
      }
  }
  {  // fp6_v2: lo4 bytes of lane l of warp tile w tagged 1 + 16 (32 w + l) + i; hi2 100000 + 8 (32 w + l) + i
    std::vector<int> tag(QC_W6_STAGE_BYTES, -1);
    for (int tid = 0; tid < QC_PIPE_THREADS; ++tid) {
      const int off = qc_w6v2_lo4_offset(tid);
      for (int b = 0; b < 16; ++b) {
        CHECK(off + 16 <= QC_W6_LO4_STAGE_BYTES && tag[off + b] == -1, "w6v2 lo4 copy tid=%d\n", tid);
        tag[off + b] = 1 + 16 * tid + b;  // thread tid copies lane tid % 32 of tile tid / 32
      }
      if (tid < 64) {
        const int o = qc_w6v2_hi2_copy_offset(tid), w = qc_w6v2_hi2_copy_tile(tid), l = qc_w6v2_hi2_copy_lane(tid);
        for (int b = 0; b < 16; ++b) {  // 16 source bytes: lanes l, l + 1 of tile w, 8 each
          CHECK(o % 16 == 0 && o + 16 <= QC_W6_STAGE_BYTES && tag[o + b] == -1, "w6v2 hi2 copy tid=%d\n", tid);
          tag[o + b] = 100000 + 8 * (32 * w + l) + b;
        }
      }
    }
    for (int i = 0; i < QC_W6_STAGE_BYTES; ++i) CHECK(tag[i] >= 0, "w6v2 byte %d never written\n", i);
    for (int tid = 0; tid < QC_PIPE_THREADS; ++tid) {
      const int lo = qc_w6v2_lo4_offset(tid), hi = qc_w6v2_hi2_read_offset(tid);
      CHECK(lo % 16 == 0 && hi % 8 == 0, "w6v2 read alignment tid=%d\n", tid);
      for (int b = 0; b < 16; ++b) CHECK(tag[lo + b] == 1 + 16 * tid + b, "w6v2 lo4 read tid=%d\n", tid);
      for (int b = 0; b < 8; ++b) CHECK(tag[hi + b] == 100000 + 8 * tid + b, "w6v2 hi2 read tid=%d\n", tid);
    }
    for (int quarter = 0; quarter < 16; ++quarter) {  // 16-byte lo4 reads: 8 distinct bank groups
      std::set<int> banks;
      for (int tid = 8 * quarter; tid < 8 * quarter + 8; ++tid) banks.insert((qc_w6v2_lo4_offset(tid) / 16) % 8);
      CHECK(banks.size() == 8, "w6v2 lo4 read bank conflict quarter=%d\n", quarter);
    }
    for (int half = 0; half < 8; ++half) {  // 8-byte hi2 reads: 32 distinct banks per half warp
      std::set<int> banks;
      for (int tid = 16 * half; tid < 16 * half + 16; ++tid) {
        banks.insert((qc_w6v2_hi2_read_offset(tid) / 4) % 32);
        banks.insert((qc_w6v2_hi2_read_offset(tid) / 4 + 1) % 32);
      }
      CHECK(banks.size() == 32, "w6v2 hi2 read bank conflict half=%d\n", half);
    }
  }
}

int main() {
  for (int mf : {1, 2, 4})
    for (int kb : {128, 64}) {
      check_x(mf, kb);
      check_x_f16_ldsm(mf, kb);
      check_x_f16_tr(mf, kb);
    }
  for (int mf : {1, 2, 4}) check_x_w4a8(mf);
  check_w();
  check_w6();
  if (!failures) std::printf("pipeline_layout_test: ok\n");
  return failures != 0;
}

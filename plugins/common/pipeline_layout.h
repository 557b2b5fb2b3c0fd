/* Where the pipelined loop (pipeline.cuh) puts each 16-byte chunk of a stage in shared memory and
 * where each thread reads its fragments back: pure index arithmetic, shared by the kernels and the
 * ctest qc_pipeline_layout_test, which simulates every thread of a CTA on the CPU (each chunk
 * written once, every fragment read finds the (row, k) it must hold, no bank conflicts).
 *
 * A CTA has 128 threads: warp w = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4. A stage
 * covers 128 k (QC_PIPE_K_BLOCK; W4A16, W4A8) or 64 k (W6A16): the activation functions with a
 * `kb` argument take the stage's k, the others are their 128-k forms. */
#ifndef QC_PIPELINE_LAYOUT_H
#define QC_PIPELINE_LAYOUT_H

#include "decode.h" /* QC_HD */

#define QC_PIPE_THREADS 128
#define QC_PIPE_K_BLOCK 128

/* ---- activations: rows r < 8 MF (tokens m_base + r), kb / 8 chunks of 8 halves per row (16 for
 * a 128-k stage, 8 for a 64-k one) */

/* The chunk thread `tid` copies in round j: row tid / (kb / 8) + (1024 / kb) j, chunk tid % (kb / 8)
 * (k 8 c .. 8 c + 7). A 64-k stage of MF 1 (8 rows) is copied by threads 0-63 in one round. */
QC_HD int qc_x_copy_row_kb(int tid, int j, int kb) { return tid / (kb / 8) + (1024 / kb) * j; }
QC_HD int qc_x_copy_chunk_kb(int tid, int kb) { return tid % (kb / 8); }
QC_HD int qc_x_copy_row(int tid, int j) { return qc_x_copy_row_kb(tid, j, QC_PIPE_K_BLOCK); }
QC_HD int qc_x_copy_chunk(int tid) { return qc_x_copy_chunk_kb(tid, QC_PIPE_K_BLOCK); }

/* Swizzle (slot of chunk c in row r): the low 3 bits of the row spread 8 consecutive rows at one
 * chunk (conversion tasks, ldmatrix phases) over the 8 16-byte bank groups, and keep the direct
 * 16-byte fragment reads (rows g, g + 1 at chunks 8 sb + 2t + q) conflict-free too. */
QC_HD int qc_x_slot(int r, int c) { return c ^ (r & 7); }

/* A token row is 2 kb bytes: a 16-byte bank group is slot % 8 for either stage size. */
QC_HD int qc_x_offset_kb(int r, int slot, int kb) { return r * 2 * kb + 16 * slot; }
QC_HD int qc_x_offset(int r, int slot) { return qc_x_offset_kb(r, slot, QC_PIPE_K_BLOCK); }

/* FP16 MMAs (W4A16). Thread t's k run in sub-block sb (64 k) is 64 sb + 16 t .. + 15: words
 * 32 sb + 8 t + 2 i + h (h = 0: b0, h = 1: b1 of MMA i) of its token row, in chunks 8 sb + 2t + q.
 * Direct reads (QC_PIPE_F16_LDSM 0): chunk q = 0, 1 of the run. With ldmatrix (1): transposition task
 * (r, sb, q), one per thread while tid < 32 MF, reads chunks 8 sb + 2t + q (t = 0..3) as a 4 x 4
 * word matrix and writes it back transposed, so that chunk 8 sb + 2e + q holds matrix row (i, h) =
 * words of t = 0..3 with e = 2 (i - 2q) + h, i.e. i = 2q + e / 2, h = e % 2. */
QC_HD int qc_x_read_chunk_f16(int sb, int t, int q) { return 8 * sb + 2 * t + q; }
QC_HD int qc_f16_task_row(int tid, int mf) { return tid % (8 * mf); }
QC_HD int qc_f16_task_sb(int tid, int mf) { return (tid / (8 * mf)) >> 1; }
QC_HD int qc_f16_task_q(int tid, int mf) { return (tid / (8 * mf)) & 1; }
QC_HD int qc_f16_matrix_chunk(int sb, int i, int h) { return 8 * sb + 2 * (2 * (i % 2) + h) + i / 2; }
/* ldmatrix.x4 number p (MMAs 2p, 2p + 1) of sub-block sb, token fragment f: lane L gives row L % 8
 * of matrix L / 8 = (i = 2p + (L / 8) / 2, h = (L / 8) % 2); register j is b[2p + j / 2][j % 2]. */
QC_HD int qc_f16_ldsm_offset_kb(int f, int sb, int p, int lane, int kb) {
  const int j = lane / 8, r = 8 * f + lane % 8;
  return qc_x_offset_kb(r, qc_x_slot(r, qc_f16_matrix_chunk(sb, 2 * p + j / 2, j % 2)), kb);
}
QC_HD int qc_f16_ldsm_offset(int f, int sb, int p, int lane) {
  return qc_f16_ldsm_offset_kb(f, sb, p, lane, QC_PIPE_K_BLOCK);
}
/* A 64-k stage has one sub-block (sb = 0): its 16 MF tasks are those of threads tid < 16 MF, the
 * same functions, the chunks 2t + q of a 128-byte token row. */
/* The same transposition by ldmatrix (W6A16's 64-k stages): op o (2 MF kb / 64 of them, warp w doing
 * o = w, w + 4, ...) covers token rows 8 rg .. 8 rg + 7 at chunks 8 sb + 2 t + q (t = 0..3), with
 * rg = o / (kb / 32), sb = (o / 2) % (kb / 64), q = o % 2. ldmatrix.x4 reads matrix j row g from
 * chunk 8 sb + 2 j + q of row 8 rg + g (lane L gives row L % 8 of matrix L / 8), so thread (g, t)
 * receives word t of those four chunks: the transposed chunk 8 sb + 2 t + q of row 8 rg + g, which
 * it stores back there (16 bytes; every store of the warp after every read: data dependency and a
 * __syncwarp). One ldmatrix.x4 and one 16-byte store per thread and op, no register moves. */
QC_HD int qc_f16_tr_row(int o, int g, int kb) { return 8 * (o / (kb / 32)) + g; }
QC_HD int qc_f16_tr_chunk(int o, int t, int kb) { return qc_x_read_chunk_f16((o / 2) % (kb / 64), t, o % 2); }
QC_HD int qc_f16_tr_load_offset(int o, int lane, int kb) {
  const int r = qc_f16_tr_row(o, lane % 8, kb);
  return qc_x_offset_kb(r, qc_x_slot(r, qc_f16_tr_chunk(o, lane / 8, kb)), kb);
}
QC_HD int qc_f16_tr_store_offset(int o, int lane, int kb) {
  const int r = qc_f16_tr_row(o, lane / 4, kb);
  return qc_x_offset_kb(r, qc_x_slot(r, qc_f16_tr_chunk(o, lane % 4, kb)), kb);
}

/* W4A8 turns the stage's activations into E4M3 in place, laid out for ldmatrix. Thread t of the
 * MMAs needs, for MMA i (k32), the words W(t, i, h) = E4M3 of k 32t + 8i + 4h .. + 3 (h = 0: b0,
 * h = 1: b1); ldmatrix gives thread (g, t) word t of row g of each 8 x 16-byte matrix, so matrix
 * (i, h) row r holds W(0..3, i, h) of token row r. Conversion task (r, i), one per thread while
 * tid < 32 MF: reads chunks 4t + i (t = 0..3: the fp16 of all four W(t, i, .)) and writes matrix
 * row (i, h) into the slot of its chunk 4h + i: inside the chunks it alone reads. */
QC_HD int qc_w4a8_task_row(int tid, int mf) { return tid % (8 * mf); }
QC_HD int qc_w4a8_task_i(int tid, int mf) { return tid / (8 * mf); }
QC_HD int qc_w4a8_task_chunk(int i, int t) { return 4 * t + i; }
QC_HD int qc_w4a8_matrix_chunk(int i, int h) { return 4 * h + i; }
/* ldmatrix.x4 number p (MMAs 2p, 2p + 1) of token fragment f: lane L gives the address of row
 * L % 8 of matrix L / 8 = (i = 2p + (L / 8) / 2, h = (L / 8) % 2); register j is b[2p + j / 2][j % 2]. */
QC_HD int qc_w4a8_ldsm_offset(int f, int p, int lane) {
  const int j = lane / 8, r = 8 * f + lane % 8;
  return qc_x_offset(r, qc_x_slot(r, qc_w4a8_matrix_chunk(2 * p + j / 2, j % 2)));
}

/* ---- packed 4-bit weights, row-major [N, K/2] (QcNibbleRows): 64 rows x 64 bytes per stage */

/* Round j of thread tid: row tid / 4 + 32 j, chunk tid % 4 (k 32 q .. 32 q + 31). */
QC_HD int qc_w_copy_row(int tid, int j) { return tid / 4 + 32 * j; }
QC_HD int qc_w_copy_chunk(int tid) { return tid % 4; }
QC_HD int qc_w_offset(int r, int q) { return r * 64 + 16 * (q ^ (r & 2)); }

/* W4A16 layout 1: thread (g, t) of warp w reads 8 bytes of rows 16 w + g and + 8 per sub-block sb:
 * k 64 sb + 16 t .. + 15, chunk 2 sb + t / 2, bytes 8 (t % 2) .. + 7 of it. */
QC_HD int qc_w_read_offset_f16(int r, int sb, int t) { return qc_w_offset(r, 2 * sb + t / 2) + 8 * (t % 2); }
/* W4A8: 16 bytes of rows 16 w + g and + 8: k 32 t .. 32 t + 31, chunk t. */
QC_HD int qc_w_read_offset_w4a8(int r, int t) { return qc_w_offset(r, t); }

/* W4A16 layout 2 (int4_v2): the 512-byte tiles of the 4 warps for one 64-k sub-block sb are 2 KB of
 * the stage, each thread copying and reading back its own 16 bytes. */
QC_HD int qc_w4v2_smem_offset(int sb, int tid) { return 2048 * sb + 16 * tid; }

/* ---- FP6 (W6A16), 64-k stages: 64 rows x 64 k = 2048 lo4 bytes, then 1024 hi2 bytes */

#define QC_W6_LO4_STAGE_BYTES 2048
#define QC_W6_STAGE_BYTES 3072

/* Layout 1 (fp6_4+2, row-major lo4 [N, K/2] and hi2 [N, K/4]): row r's 32 lo4 bytes at 32 r (thread
 * tid copies chunk tid % 2 (k 32 q .. + 31) of row tid / 2, i.e. the 16 bytes at 16 tid) and its
 * 16 hi2 bytes at 2048 + 16 r (threads tid < 64 copy row tid). Thread (g, t) of warp w reads, for
 * rows r = 16 w + g and + 8 and k 16 t .. + 15, 8 lo4 bytes at 32 r + 8 t and 4 hi2 bytes at
 * 2048 + 16 r + 4 t: a half warp's 8-byte reads (rows g..g+3 or g+4..g+7) and a warp's 4-byte reads
 * cover 128 contiguous bytes, no swizzle needed. */
QC_HD int qc_w6_lo4_copy_row(int tid) { return tid / 2; }
QC_HD int qc_w6_lo4_copy_chunk(int tid) { return tid % 2; }
QC_HD int qc_w6_lo4_offset(int r, int q) { return 32 * r + 16 * q; }
QC_HD int qc_w6_hi2_offset(int r) { return QC_W6_LO4_STAGE_BYTES + 16 * r; }
QC_HD int qc_w6_lo4_read_offset(int r, int t) { return 32 * r + 8 * t; }
QC_HD int qc_w6_hi2_read_offset(int r, int t) { return QC_W6_LO4_STAGE_BYTES + 16 * r + 4 * t; }

/* Layout 2 (fp6_v2): per 64-k block a warp tile holds 512 lo4 bytes (16 per lane) and 256 hi2
 * bytes (8 per lane); the stage keeps the CTA's 4 warp tiles in order, so thread tid reads its lo4
 * at 16 tid and its hi2 at 2048 + 8 tid, copies its own lo4, and threads tid < 64 copy the 16 hi2
 * bytes at 2048 + 16 tid: warp tile tid / 16, bytes 16 (tid % 16) of it (lanes 2 (tid % 16), + 1). */
QC_HD int qc_w6v2_lo4_offset(int tid) { return 16 * tid; }
QC_HD int qc_w6v2_hi2_read_offset(int tid) { return QC_W6_LO4_STAGE_BYTES + 8 * tid; }
QC_HD int qc_w6v2_hi2_copy_offset(int tid) { return QC_W6_LO4_STAGE_BYTES + 16 * tid; }
QC_HD int qc_w6v2_hi2_copy_tile(int tid) { return tid / 16; }
QC_HD int qc_w6v2_hi2_copy_lane(int tid) { return 2 * (tid % 16); }

#endif

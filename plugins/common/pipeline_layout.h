/* Where the pipelined loop (pipeline.cuh) puts each 16-byte chunk of a stage in shared memory and
 * where each thread reads its fragments back: pure index arithmetic, shared by the kernels and the
 * ctest qc_pipeline_layout_test, which simulates every thread of a CTA on the CPU (each chunk
 * written once, every fragment read finds the (row, k) it must hold, no bank conflicts).
 *
 * A CTA has 128 threads: warp w = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4. A stage
 * covers 128 k (QC_PIPE_K_BLOCK). */
#ifndef QC_PIPELINE_LAYOUT_H
#define QC_PIPELINE_LAYOUT_H

#include "decode.h" /* QC_HD */

#define QC_PIPE_THREADS 128
#define QC_PIPE_K_BLOCK 128
#define QC_PIPE_X_ROW_BYTES (2 * QC_PIPE_K_BLOCK) /* one token row of a stage: 128 fp16 */

/* ---- activations: rows r < 8 MF (tokens m_base + r), 16 chunks of 8 halves per row */

/* The chunk thread `tid` copies in round j: row tid / 16 + 8 j, chunk tid % 16 (k 8 c .. 8 c + 7). */
QC_HD int qc_x_copy_row(int tid, int j) { return tid / 16 + 8 * j; }
QC_HD int qc_x_copy_chunk(int tid) { return tid % 16; }

/* Swizzles (slot of chunk c in row r). W4A16 / FP16 MMAs: a quarter warp reads rows g, g + 1 at
 * chunks 8 sb + 2t + q: flipping bit 0 on odd rows puts the two rows in different bank groups.
 * W4A8: a quarter warp reads chunks 4t + q of rows g, g + 1: bit 3 of c flips bit 0 (t vs t + 2),
 * odd rows flip bit 1. */
QC_HD int qc_x_slot_f16(int r, int c) { return c ^ (r & 1); }
QC_HD int qc_x_slot_w4a8(int r, int c) { return c ^ ((c >> 3) & 1) ^ ((r & 1) << 1); }

QC_HD int qc_x_offset(int r, int slot) { return r * QC_PIPE_X_ROW_BYTES + 16 * slot; }

/* The chunks a thread reads for its B fragments (token row 8 f + g). FP16 MMAs: sub-block sb
 * (64 k), q = 0, 1: k 64 sb + 16 t + 8 q. W4A8: q = 0..3: k 32 t + 8 q. */
QC_HD int qc_x_read_chunk_f16(int sb, int t, int q) { return 8 * sb + 2 * t + q; }
QC_HD int qc_x_read_chunk_w4a8(int t, int q) { return 4 * t + q; }

/* W4A8 converts each chunk in place to E4M3 (8 bytes, by the thread that copied it) and reads the
 * B fragments from there: the 8 bytes sit in the first or second half of the chunk's slot by bit 1
 * of the row, so a half warp's 8-byte reads (rows g..g+3, chunks 4t + q) hit 32 distinct banks. */
QC_HD int qc_x_fp8_offset(int r, int slot) { return qc_x_offset(r, slot) + 8 * ((r >> 1) & 1); }

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

#endif

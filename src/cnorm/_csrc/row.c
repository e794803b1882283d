/* Row family: per-row (or per-group) statistics and normalization over
 * the (M, K) view (layer, group, instance and RMS norm; docs/design.md,
 * "Kernel families").  Its parts, one job each:
 *
 *   row.c (this file)     dtype-free policy: block and chunk sizes, the
 *                         backward's per-chunk partial sums and their merge
 *   row_stats_impl.h      a block's statistics and the normalizing pass
 *   row_forward_impl.h    one row's forward and the forward kernel
 *   row_tiles_impl.h      the backward's sums and dx passes
 *   row_one_impl.h        one row's backward
 *   row_drivers_impl.h    residual add + norm, and the backward of few
 *                         long rows split by columns
 *   row_backward_impl.h   the backward kernel: chunks of rows in parallel
 *   row_batch_impl.h      2-byte batch norm on rows: planes' moments and
 *                         the affine pass (2-byte only)
 *
 * The *_impl.h parts are compiled once per dtype and SIMD path
 * (row_impl.h, instantiate.h); the forward's two also for 2-byte storage
 * (row_narrow_impl.h, instantiate_narrow.h). */
#include <string.h>
#include "common.h"
#include "row_narrow.h"
#include "stream.h"

/* Most chunks a backward call splits its rows into: enough for load balance,
 * few enough that the partial gradient sums stay small to merge. */
#define ROW_MAX_CHUNKS 64
/* Parameters per task when merging the chunks' partial sums. */
#define ROW_MERGE_BLOCK 1024
/* Layer norm backward: rows whose column gradients are summed in T before
 * they are added to the double outputs (a conversion per ROW_FLUSH_ROWS
 * values, not per value). */
#define ROW_FLUSH_ROWS 16
/* Columns per segment when a backward splits few long rows by columns
 * (row_backward_split). */
#define ROW_SEG 4096
/* Values per statistics block: small enough that the block's second pass
 * (squared deviations) hits L1, large enough to amortize the Chan merge. */
#define ROW_BLOCK 2048
/* Values per block of the normalizing pass: for 2-byte storage, few
 * enough that its loads and its converted stores to memory alternate at a
 * fine grain (measured, ROW_STORE_BLOCK_NARROW below). */
#define ROW_STORE_BLOCK (CNORM_NARROW_STORAGE ? ROW_STORE_BLOCK_NARROW : ROW_BLOCK)
#define ROW_STORE_BLOCK_NARROW 1024
/* T values of a tile's conversion buffer (common.h): a block for 2-byte
 * storage, none needed otherwise. */
#define ROW_BUF (CNORM_NARROW_STORAGE ? ROW_BLOCK : 1)

/* Residual add + norm: a task adds up to about this many bytes of each
 * array in one loop, then normalizes the block's rows from L2 (measured,
 * one thread, (32,128,768) and (128,128,768) float32: 16 KiB to 256 KiB
 * blocks took the fused call from 1.30-1.36x the time of np.add +
 * layer_norm to 1.14-1.25x, the larger blocks best). */
#define ROW_ADD_BLOCK_BYTES ((int64_t)128 * 1024)
/* ... except that a sum of at least ROW_ADD_STREAM_BYTES, in rows of at
 * most ROW_ADD_ROW_BYTES, is streamed to memory (stream.h) from an L1
 * buffer that each row's forward then reads.  s is the residual stream: a
 * model reads it again only at the next residual add, after a whole
 * sublayer, and x, residual, s and y of such sizes (32 MiB and more
 * together) would not keep it in cache meanwhile; a plain store reads each
 * line of s first.  Measured, one thread, float32, ratio to np.add +
 * layer_norm: (32,128,768) 0.95-0.96 to 0.77-0.78, (128,128,768) 0.89-0.91
 * to 0.69-0.70 (benchmarks/RESULTS.md, "Residual add: streamed sums"). */
#define ROW_ADD_STREAM_BYTES ((int64_t)8 << 20)
#define ROW_ADD_ROW_BYTES 8192

/* Backward rows longer than this (bytes), too few for two chunks of
 * ROW_FLUSH_ROWS rows, are split by columns (row_backward_split). */
#define ROW_SPLIT_BYTES ((int64_t)64 * 1024)

/* Tiles stay out of line: GCC unswitches the loop-invariant NULL and
 * `first` tests of the simple loops in them (inlined into the row loops,
 * it gave up on some). */
#if defined(__GNUC__)
#define ROW_TILE static __attribute__((noinline))
#else
#define ROW_TILE static
#endif

/* Whether the backward splits few long rows by columns (S == 1, rows
 * longer than ROW_SPLIT_BYTES, too few for two chunks of ROW_FLUSH_ROWS
 * rows). */
static int row_splits(int64_t M, int64_t K, int64_t S, int64_t elsize)
{
    return S == 1 && K * elsize > ROW_SPLIT_BYTES && M < 2 * ROW_FLUSH_ROWS;
}

/* Whether a residual add + norm streams its sum (ROW_ADD_STREAM_BYTES). */
static int row_add_streams(int64_t M, int64_t K, int64_t elsize)
{
    return CNORM_CAN_STREAM && K * elsize <= ROW_ADD_ROW_BYTES
           && M * K * elsize >= ROW_ADD_STREAM_BYTES;
}

int cnorm_row_backward_rows_fit(int64_t K)
{
    return K * (int64_t)sizeof(float) <= ROW_SPLIT_BYTES;
}

/* 1 for a valid row view with M >= 1 rows. */
static int row_valid(int64_t M, int64_t K, int64_t G, int64_t S)
{
    return M >= 1 && K >= 1 && G >= 1 && S >= 1 && K % S == 0;
}

/* With no rows the parameter gradients are sums of nothing (sizes checked
 * by the caller). */
static void row_zero_grads(int64_t K, int64_t G, int64_t S, double *dweight, double *dbias)
{
    const size_t bytes = (size_t)(G * (K / S)) * sizeof(double);
    if (dweight)
        memset(dweight, 0, bytes);
    if (dbias)
        memset(dbias, 0, bytes);
}

/* Backward splits its rows into chunks of `rows` rows; each chunk sums its
 * parameter gradients into its own partial arrays (chunk 0 straight into the
 * output), merged afterwards in chunk order.  Chunk boundaries depend on the
 * shape only, so the result is bit-identical for any thread count.  Layer
 * norm's column gradients also need, per chunk, col_bytes of scratch for
 * their sums in T. */
typedef struct row_chunks {
    int64_t rows, count, stride;   /* stride: doubles per partial array */
    double *part[2];               /* dweight, dbias partials of chunks 1.. */
    char *cols;                    /* chunk c's column sums: cols + c * col_bytes */
    int64_t col_bytes;
    void *scratch;
} row_chunks;

/* Non-zero (CNORM_ENOMEM) when the scratch cannot be allocated.  A chunk
 * is worth a thread, there are at most ROW_MAX_CHUNKS, and when gradients
 * are wanted a chunk reads at least 16 * GP values: its partials (GP
 * doubles per output, written once, read once by the merge) and column
 * sums then add about a tenth to the memory traffic (a third with 4 * GP:
 * layer norm backward of (32, 65536) ran 1.6x slower).  col_bytes: 0, or
 * the bytes of column sums per chunk. */
static int row_chunks_init(row_chunks *ch, int64_t M, int64_t K, int64_t GP,
                           int want_dw, int want_db, int64_t col_bytes)
{
    int64_t rows = cnorm_max64(cnorm_cdiv64(CNORM_PARALLEL_MIN_WORK, K),
                               cnorm_cdiv64(M, ROW_MAX_CHUNKS));
    if (want_dw || want_db)
        rows = cnorm_max64(rows, cnorm_cdiv64(16 * GP, K));
    ch->rows = cnorm_min64(rows, M);
    ch->count = cnorm_cdiv64(M, ch->rows);
    ch->stride = cnorm_cdiv64(GP, 8) * 8;   /* partials on separate cache lines */
    ch->col_bytes = cnorm_cdiv64(col_bytes, 64) * 64;
    const int64_t arrays = ch->count == 1 ? 0 : (int64_t)(want_dw != 0) + (want_db != 0);
    const int64_t part_bytes = (ch->count - 1) * ch->stride * (int64_t)sizeof(double);
    const int64_t bytes[3] = {want_dw && arrays ? part_bytes : 0,
                              want_db && arrays ? part_bytes : 0,
                              ch->count * ch->col_bytes};
    void *parts[3];
    const int rc = cnorm_scratch_alloc(3, bytes, parts, &ch->scratch);
    ch->part[0] = parts[0];
    ch->part[1] = parts[1];
    ch->cols = parts[2];
    return rc;
}

/* Chunk c's partial array for output `out` (k = 0: dweight, 1: dbias). */
static double *row_chunk_part(const row_chunks *ch, double *out, int k, int64_t c)
{
    if (!out || c == 0)
        return out;
    return ch->part[k] + (c - 1) * ch->stride;
}

typedef struct {
    const row_chunks *ch;
    int64_t GP;
    double *dweight, *dbias;
} row_merge_job;

/* Merge task t: out[p] = chunk 0 + chunk 1 + ... (chunk order) for p in
 * block t of ROW_MERGE_BLOCK parameters. */
static void row_merge_task(const void *job, int64_t t)
{
    const row_merge_job *j = job;
    const int64_t p0 = t * ROW_MERGE_BLOCK, p1 = cnorm_min64(j->GP, p0 + ROW_MERGE_BLOCK);
    double *out[2] = {j->dweight, j->dbias};
    for (int k = 0; k < 2; k++)
        if (out[k] && j->ch->count > 1)
            cnorm_add_parts(out[k] + p0, j->ch->part[k] + p0, j->ch->count - 1,
                            j->ch->stride, p1 - p0);
}

/* Adds chunks 1.. into the outputs (chunk 0 is there already), frees the
 * scratch. */
static void row_chunks_merge(row_chunks *ch, int64_t GP, double *dweight, double *dbias)
{
    if (ch->part[0] || ch->part[1]) {
        const row_merge_job job = {ch, GP, dweight, dbias};
        const int64_t tasks = cnorm_cdiv64(GP, ROW_MERGE_BLOCK);
        cnorm_parallel(cnorm_threads_for(ch->count * GP, tasks), tasks, row_merge_task, &job);
    }
    free(ch->scratch);
    ch->scratch = NULL;
}

#define CNORM_FAMILY_IMPL "row_impl.h"
#define CNORM_FAMILY_KERNELS CNORM_ROW_KERNELS
#include "instantiate.h"
#undef CNORM_FAMILY_IMPL
#undef CNORM_FAMILY_KERNELS
#undef CNORM_FAMILY_TYPES
#undef CNORM_FAMILY_ELEMENT_TYPES

/* The forward again on 2-byte storage (cnorm_row_forward_bf16 and _f16,
 * and cnorm_row_moments_* and cnorm_row_affine_* for lowp.c's batch norm):
 * the float32 loops on values converted in registers or in L1 blocks, so
 * memory sees each 2-byte value loaded once by the statistics and stored
 * once by the normalizing pass. */
#define CNORM_FAMILY_IMPL "row_narrow_impl.h"
#define CNORM_FAMILY_KERNELS CNORM_ROW_NARROW_KERNELS
#define CNORM_FAMILY_TYPES "instantiate_narrow.h"
#define CNORM_FAMILY_ELEMENT_TYPES CNORM_ROW_NARROW_TYPES
#include "instantiate.h"

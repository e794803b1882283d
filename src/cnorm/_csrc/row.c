/* Row family kernels over (M, K): layer, group, instance and RMS norm.
 * The dtype-independent pieces live here; the loops are in row_impl.h. */
#include <string.h>
#include "common.h"

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

/* The passes after a row's first one run from cache and leave the memory
 * idle; they go in pieces of ROW_PIECE values, each preceded by a software
 * prefetch of the same piece of the next row, so the next first pass finds
 * it in cache.  Small pieces spread the prefetches over the pass (pieces of
 * 512 measured 5-15% slower: a burst of prefetches queues up and stalls).
 * Rows above ROW_PREFETCH_MAX bytes are long enough for the hardware
 * prefetcher. */
#define ROW_PIECE 128
#define ROW_PREFETCH_MAX ((int64_t)64 * 1024)

/* Accumulator lanes of a lane sum: 4 AVX2 registers of float (8 SSE2, 2
 * AVX-512), so the adds of a sum form several independent chains and the
 * loop runs at the adder's throughput, not its latency.  Also 32 for
 * double: with 16, GCC 12 vectorizes ROW_LANE_SUM2 across the outer loop
 * with a permute per value (10x the instructions) instead of lane-wise. */
#define ROW_LANES 32

/* acc[0] = the sum of acc[0 : ROW_LANES], added as a fixed pairwise tree
 * (five halvings of the 32 lanes, upper half onto lower half): a few vector
 * adds where a lane-by-lane chain was 32 dependent scalar ones, and the same
 * order on every ISA. */
#define ROW_FOLD_STEP(acc, h)                                                 \
    for (int l_ = 0; l_ < (h); l_++)                                          \
        (acc)[l_] += (acc)[l_ + (h)]
#define ROW_FOLD(acc)                                                         \
    do {                                                                      \
        ROW_FOLD_STEP(acc, 16); ROW_FOLD_STEP(acc, 8); ROW_FOLD_STEP(acc, 4); \
        ROW_FOLD_STEP(acc, 2); ROW_FOLD_STEP(acc, 1);                         \
    } while (0)

/* result = sum of expr over k in [0, n), n <= CNORM_BLOCK, in ROW_LANES
 * accumulators of type T folded by ROW_FOLD.  A plain lane loop: GCC
 * vectorizes it without -ffast-math because the summation order is the
 * code's, hence the same for every thread count. */
#define ROW_LANE_SUM(result, n, k, expr)                                      \
    do {                                                                      \
        T acc_[ROW_LANES] = {0};                                              \
        int64_t i_ = 0;                                                       \
        for (; i_ + ROW_LANES <= (n); i_ += ROW_LANES)                        \
            for (int l_ = 0; l_ < ROW_LANES; l_++) {                          \
                const int64_t k = i_ + l_;                                    \
                acc_[l_] += (expr);                                           \
            }                                                                 \
        for (int l_ = 0; i_ + l_ < (n); l_++) {                               \
            const int64_t k = i_ + l_;                                        \
            acc_[l_] += (expr);                                               \
        }                                                                     \
        ROW_FOLD(acc_);                                                       \
        (result) = acc_[0];                                                   \
    } while (0)

/* Two lane sums in one loop over k, so the backward reads dy and x once for
 * both (the compiler shares the subexpressions of value1 and value2). */
#define ROW_LANE_SUM2(result1, result2, n, k, value1, value2)                 \
    do {                                                                      \
        T a_[ROW_LANES] = {0}, b_[ROW_LANES] = {0};                           \
        int64_t i_ = 0;                                                       \
        for (; i_ + ROW_LANES <= (n); i_ += ROW_LANES)                        \
            for (int l_ = 0; l_ < ROW_LANES; l_++) {                          \
                const int64_t k = i_ + l_;                                    \
                a_[l_] += (value1);                                           \
                b_[l_] += (value2);                                           \
            }                                                                 \
        for (int l_ = 0; i_ + l_ < (n); l_++) {                               \
            const int64_t k = i_ + l_;                                        \
            a_[l_] += (value1);                                               \
            b_[l_] += (value2);                                               \
        }                                                                     \
        ROW_FOLD(a_);                                                         \
        ROW_FOLD(b_);                                                         \
        (result1) = a_[0];                                                    \
        (result2) = b_[0];                                                    \
    } while (0)

/* Tiles stay out of line: GCC unswitches the loop-invariant NULL and
 * `first` tests of the simple loops in them (inlined into the row loops,
 * it gave up on some). */
#if defined(__GNUC__)
#define ROW_TILE static __attribute__((noinline))
#else
#define ROW_TILE static
#endif

/* Asks for [p, p + bytes) into L2, for writing when `write`; p may be NULL
 * (nothing next).  A no-op without GCC builtins. */
static inline void row_prefetch(const void *p, int64_t bytes, int write)
{
#if defined(__GNUC__)
    if (!p)
        return;
    for (int64_t i = 0; i < bytes; i += 64) {
        if (write)
            __builtin_prefetch((const char *)p + i, 1, 2);
        else
            __builtin_prefetch((const char *)p + i, 0, 2);
    }
#else
    (void)p, (void)bytes, (void)write;
#endif
}

/* 1 for a valid row view with M >= 1 rows. */
static int row_valid(int64_t M, int64_t K, int64_t G, int64_t S)
{
    return M >= 1 && K >= 1 && G >= 1 && S >= 1 && K % S == 0;
}

/* With no rows the parameter gradients are sums of nothing. */
static void row_zero_grads(int64_t K, int64_t G, int64_t S, double *dweight, double *dbias)
{
    if (!row_valid(1, K, G, S))
        return;
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
    ch->part[0] = ch->part[1] = NULL;
    ch->cols = NULL;
    ch->scratch = NULL;
    const int64_t arrays = ch->count == 1 ? 0 : (int64_t)(want_dw != 0) + (want_db != 0);
    const int64_t n = (ch->count - 1) * ch->stride;
    const int64_t bytes = arrays * n * (int64_t)sizeof(double) + ch->count * ch->col_bytes;
    if (bytes == 0)
        return CNORM_OK;
    ch->scratch = malloc((size_t)bytes);
    if (!ch->scratch)
        return CNORM_ENOMEM;
    double *part = ch->scratch;
    ch->part[0] = want_dw && arrays ? part : NULL;
    ch->part[1] = want_db && arrays ? part + (want_dw ? n : 0) : NULL;
    ch->cols = ch->col_bytes ? (char *)(part + arrays * n) : NULL;
    return CNORM_OK;
}

/* Chunk c's partial array for output `out` (k = 0: dweight, 1: dbias). */
static double *row_chunk_part(const row_chunks *ch, double *out, int k, int64_t c)
{
    if (!out || c == 0)
        return out;
    return ch->part[k] + (c - 1) * ch->stride;
}

typedef void (*row_task)(const void *job, int64_t t);

/* Runs task(job, t) for t in [0, n) on nt threads, static schedule.  One
 * thread runs inline: even a one-thread OpenMP region costs libgomp a team
 * set-up with malloc and futex calls, as long as a whole small row. */
static void row_run(int nt, int64_t n, row_task task, const void *job)
{
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t t = 0; t < n; t++)
            task(job, t);
        return;
    }
#endif
    (void)nt;
    for (int64_t t = 0; t < n; t++)
        task(job, t);
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
        for (int64_t c = 1; out[k] && c < j->ch->count; c++) {
            const double *part = row_chunk_part(j->ch, out[k], k, c);
            for (int64_t p = p0; p < p1; p++)
                out[k][p] += part[p];
        }
}

/* Adds chunks 1.. into the outputs (chunk 0 is there already), frees the
 * scratch. */
static void row_chunks_merge(row_chunks *ch, int64_t GP, double *dweight, double *dbias)
{
    if (ch->part[0] || ch->part[1]) {
        const row_merge_job job = {ch, GP, dweight, dbias};
        const int64_t tasks = cnorm_cdiv64(GP, ROW_MERGE_BLOCK);
        row_run(cnorm_threads_for(ch->count * GP, tasks), tasks, row_merge_task, &job);
    }
    free(ch->scratch);
    ch->scratch = NULL;
}

#define CNORM_FAMILY_IMPL "row_impl.h"
#define CNORM_FAMILY_KERNELS CNORM_ROW_KERNELS
#include "instantiate.h"

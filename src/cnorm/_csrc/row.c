/* Row family kernels over (M, K): layer, group, instance and RMS norm.
 * The dtype-independent pieces live here; the loops are in row_impl.h. */
#include <string.h>
#include "common.h"

/* Most chunks a backward call splits its rows into: enough for load balance,
 * few enough that the partial gradient sums stay small to merge. */
#define ROW_MAX_CHUNKS 64
/* Parameters per task when merging the chunks' partial sums. */
#define ROW_MERGE_BLOCK 1024
/* Layer norm backward: columns per stack block of row_col_grads, and the
 * rows (at most, and bytes of dy and x) of a group that stays in L2. */
#define ROW_COLS 256
#define ROW_GROUP_ROWS 16
#define ROW_GROUP_BYTES ((int64_t)128 * 1024)

/* The passes after a row's first one run from cache and leave the memory
 * idle; they go in pieces of ROW_PIECE values, each preceded by a software
 * prefetch of the same piece of the next row (or group of rows), so the
 * next first pass finds it in cache.  Rows above ROW_PREFETCH_MAX bytes
 * are long enough for the hardware prefetcher. */
#define ROW_PIECE 512
#define ROW_PREFETCH_MAX ((int64_t)64 * 1024)

/* result = sum of expr over k in [0, n), n <= CNORM_BLOCK, in CNORM_LANES
 * accumulators of type T, then the lanes in double in lane order.  A plain
 * lane loop: GCC vectorizes it without -ffast-math because the summation
 * order is the code's, hence the same on every ISA and thread count. */
#define ROW_LANE_SUM(result, n, k, expr)                                      \
    do {                                                                      \
        T acc_[CNORM_LANES] = {0};                                            \
        int64_t i_ = 0;                                                       \
        for (; i_ + CNORM_LANES <= (n); i_ += CNORM_LANES)                    \
            for (int l_ = 0; l_ < CNORM_LANES; l_++) {                        \
                const int64_t k = i_ + l_;                                    \
                acc_[l_] += (expr);                                           \
            }                                                                 \
        for (int l_ = 0; i_ + l_ < (n); l_++) {                               \
            const int64_t k = i_ + l_;                                        \
            acc_[l_] += (expr);                                               \
        }                                                                     \
        (result) = 0.0;                                                       \
        for (int l_ = 0; l_ < CNORM_LANES; l_++)                              \
            (result) += acc_[l_];                                             \
    } while (0)

/* Tiles stay out of line: they are the unit a SIMD dispatch will compile
 * per ISA, and GCC unswitches the loop-invariant NULL tests of the simple
 * loops in them (inlined into the row loops, it gave up on some). */
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
    for (int64_t i = 0; p && i < bytes; i += 64) {
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
 * parameter gradients into its own partial array (chunk 0 straight into the
 * output), merged afterwards in chunk order.  Chunk boundaries depend on the
 * shape only, so the result is bit-identical for any thread count. */
typedef struct row_chunks {
    int64_t rows, count, stride;   /* stride: doubles per partial array */
    double *part[2];               /* dweight, dbias partials of chunks 1.. */
    double *scratch;
} row_chunks;

/* Non-zero (CNORM_ENOMEM) when the partials cannot be allocated.  A chunk
 * is worth a thread, there are at most ROW_MAX_CHUNKS, and when gradients
 * are wanted a chunk reads at least 4 * GP values, so the partials (GP
 * doubles per output) stay small next to the data. */
static int row_chunks_init(row_chunks *ch, int64_t M, int64_t K, int64_t GP,
                           int want_dw, int want_db)
{
    int64_t rows = cnorm_max64(cnorm_cdiv64(CNORM_PARALLEL_MIN_WORK, K),
                               cnorm_cdiv64(M, ROW_MAX_CHUNKS));
    if (want_dw || want_db)
        rows = cnorm_max64(rows, cnorm_cdiv64(4 * GP, K));
    ch->rows = cnorm_min64(rows, M);
    ch->count = cnorm_cdiv64(M, ch->rows);
    ch->stride = cnorm_cdiv64(GP, 8) * 8;   /* partials on separate cache lines */
    ch->part[0] = ch->part[1] = ch->scratch = NULL;
    const int64_t arrays = (int64_t)(want_dw != 0) + (want_db != 0);
    if (ch->count == 1 || arrays == 0)
        return CNORM_OK;
    const int64_t n = (ch->count - 1) * ch->stride;
    ch->scratch = malloc((size_t)(arrays * n) * sizeof(double));
    if (!ch->scratch)
        return CNORM_ENOMEM;
    ch->part[0] = want_dw ? ch->scratch : NULL;
    ch->part[1] = want_db ? ch->scratch + (want_dw ? n : 0) : NULL;
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

/* Adds chunks 1.. into the outputs (chunk 0 is there already), frees them. */
static void row_chunks_merge(row_chunks *ch, int64_t GP, double *dweight, double *dbias)
{
    if (!ch->scratch)
        return;
    const row_merge_job job = {ch, GP, dweight, dbias};
    const int64_t tasks = cnorm_cdiv64(GP, ROW_MERGE_BLOCK);
    row_run(cnorm_threads_for(ch->count * GP, tasks), tasks, row_merge_task, &job);
    free(ch->scratch);
    ch->scratch = NULL;
}

#define CNORM_FAMILY_IMPL "row_impl.h"
#include "instantiate.h"

#define CNORM_ROW_DISPATCH(T, SFX)                                                     \
    CNORM_DISPATCH(cnorm_row_forward_##SFX,                                            \
                   (const T *x, int64_t M, int64_t K, int64_t G, int64_t S, int center, \
                    double eps, const T *weight, const T *bias, T *y, T *mean,          \
                    T *rstd),                                                          \
                   (x, M, K, G, S, center, eps, weight, bias, y, mean, rstd))          \
    CNORM_DISPATCH(cnorm_row_backward_##SFX,                                           \
                   (const T *dy, const T *x, int64_t M, int64_t K, int64_t G, int64_t S, \
                    int center, const T *mean, const T *rstd, const T *weight, T *dx,  \
                    double *dweight, double *dbias),                                   \
                   (dy, x, M, K, G, S, center, mean, rstd, weight, dx, dweight, dbias))

CNORM_ROW_DISPATCH(float, f32)
CNORM_ROW_DISPATCH(double, f64)

/* float16 / bfloat16 entry points of batch norm and the row-family
 * backward.  The row forward, batch-norm inference, batch-norm training
 * and backward on planes, and the row backward of rows that fit its
 * buffers convert inside the row family's loops (row.c).  Otherwise the
 * float32 kernels run on chunks of the input converted to float32 in a
 * per-thread scratch buffer that stays in cache, and each chunk's output
 * is rounded back before the next one, so memory sees 2-byte loads and
 * stores only.  A chunk is whole rows (row backward: a multiple of the
 * rows that share a parameter pattern) or LOWP_CHUNK values of the
 * (N, C, S) view (LOWP_PASS_CHUNK for the forward passes that store; whole
 * samples when they fit); inside a chunk the float32 kernel runs on the
 * calling thread (its work is below the parallel threshold).
 *
 * Batch-norm training and backward on chunks (small planes, channels-last)
 * take two such passes: the first reduces each chunk with the float32
 * kernel (moments, or the backward's sums) and merges the chunk's
 * per-channel results into its piece's; pieces (runs of consecutive
 * chunks, one thread each) have bounds that depend on the shape only and
 * merge in piece order, so the statistics are the same bits for any thread
 * count (docs/design.md, "Threads and determinism").  The second pass is
 * elementwise, as inference.  The row-family backward of long rows is one
 * pass: each chunk of rows gives its dx and its parameter gradients, which
 * merge per piece the same way. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "channel_coefs.h"
#include "convert.h"
#include "row_narrow.h"

/* float32 values per chunk of a reduction: in L2. */
#define LOWP_CHUNK ((int64_t)1 << 14)
/* ... and of a forward pass that stores its chunk (inference, the second
 * pass of training): small enough that loads and stores to memory
 * alternate at a fine grain, which keeps the hardware's streams going
 * (measured, one thread, float16 (32,64,56,56) inference: 2^14 values
 * 1.39x the float32 time, 2^12 0.97x, 2^11 0.71x, 2^10 and 2^9 slower
 * again; benchmarks/RESULTS.md, "Low precision: smaller chunks for the
 * storing passes").  The backward's dx pass, two inputs per value,
 * measured faster with LOWP_CHUNK. */
#define LOWP_PASS_CHUNK ((int64_t)1 << 11)
/* Row backward on chunks (rows too long for the row tiles' buffers,
 * cnorm_row_backward_rows_fit): rows per chunk at least (measured when all
 * rows took chunks, layer_norm_backward (8,64,4096) float16, one thread:
 * 1 row minimum 2.15x the float32 time, 8 rows 1.92x, 16 rows 1.85x, with
 * (32,128,768) unchanged at 1.9x; the float32 buffers of 16 rows of 4096
 * fill a 512 KiB L2). */
#define LOWP_ROW_BWD_ROWS 8
/* ... and at most this many piece partials (pieces x parameters) of each
 * gradient: allocated, zeroed and merged per call, serially (measured,
 * (8,64,4096) float16: 2^20 cells 1.9x the float32 time, 2^16 1.15x,
 * 2^15 1.1x; fewer cells would leave fewer pieces than threads). */
#define LOWP_ROW_BWD_CELLS ((int64_t)1 << 15)
/* Reductions: at most this many pieces, and at most LOWP_CELLS piece
 * partials (pieces x channels) of each kind. */
#define LOWP_PIECES 64
#define LOWP_CELLS ((int64_t)1 << 20)

/* What a chunk function gets: the chunk converted to float32 (x, and x2
 * for a second input; x is also the output), per-thread scratch a and b
 * (lowp_io.tmp doubles each), units [u0, u0 + units) and its piece. */
typedef struct {
    float *x, *x2;
    double *a, *b;
    int64_t u0, units, piece;
} lowp_chunk;

typedef int (*chunk_fn)(const void *job, const lowp_chunk *ch);

typedef struct {
    cnorm_to_f32_fn load;          /* serial: a chunk is converted on its thread */
    cnorm_from_f32_fn store;
    const uint16_t *x, *x2;        /* x2: a second input (backward: x beside dy), or NULL */
    uint16_t *y;                   /* NULL: a reduction, nothing is stored */
    int64_t unit;                  /* values per unit (a row, a value) ... */
    int64_t runs, stride;          /* ... in each of `runs` runs `stride` apart (a channel:
                                    * N runs of S values); a chunk is runs * units * unit
                                    * values, run after run */
    int64_t tmp;                   /* doubles of per-thread scratch a and b */
} lowp_io;

/* Runs chunk over `units` units in chunks of `per` units, in at most
 * `pieces` pieces of consecutive chunks on threads; scratch for every
 * thread comes first, so CNORM_ENOMEM writes nothing. */
static int lowp_run(const lowp_io *io, int64_t units, int64_t per, int64_t pieces,
                    chunk_fn chunk, const void *job)
{
    const int64_t chunks = cnorm_cdiv64(units, per), np = cnorm_min64(pieces, chunks);
    const int nt = cnorm_threads_for(units * io->unit, np);
    const int64_t len = per * io->unit * io->runs;            /* floats per input */
    const int64_t nbuf = len * (io->x2 ? 2 : 1);              /* floats per thread */
    const int64_t bytes[2] = {nt * nbuf * (int64_t)sizeof(float),
                              nt * 2 * io->tmp * (int64_t)sizeof(double)};
    void *parts[2], *block;
    int status = CNORM_OK;
    if (cnorm_scratch_alloc(2, bytes, parts, &block) != CNORM_OK)
        return CNORM_ENOMEM;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
#endif
    for (int64_t p = 0; p < np; p++) {
#ifdef _OPENMP
        const int64_t t = omp_get_thread_num();
#else
        const int64_t t = 0;
#endif
        lowp_chunk ch = {0};
        ch.x = (float *)parts[0] + t * nbuf;
        ch.x2 = io->x2 ? ch.x + len : NULL;
        ch.a = io->tmp ? (double *)parts[1] + t * 2 * io->tmp : NULL;
        ch.b = io->tmp ? ch.a + io->tmp : NULL;
        ch.piece = p;
        for (int64_t c = p * chunks / np; c < (p + 1) * chunks / np; c++) {
            const int64_t u0 = c * per, off = u0 * io->unit;
            ch.u0 = u0;
            ch.units = cnorm_min64(per, units - u0);
            const int64_t n = ch.units * io->unit;
            for (int64_t r = 0; r < io->runs; r++) {
                io->load(io->x + off + r * io->stride, ch.x + r * n, n);
                if (io->x2)
                    io->load(io->x2 + off + r * io->stride, ch.x2 + r * n, n);
            }
            if (chunk(job, &ch) != CNORM_OK)
                status = CNORM_EINVAL;   /* sizes were checked: cannot happen */
            for (int64_t r = 0; io->y && r < io->runs; r++)
                io->store(ch.x + r * n, io->y + off + r * io->stride, n);
        }
    }
    free(block);
    return status;
}

static lowp_io lowp_io_of(int bfloat16, const uint16_t *x, const uint16_t *x2, uint16_t *y,
                          int64_t unit, int64_t tmp)
{
    lowp_io io = {0};
    io.load = cnorm_to_f32_serial(bfloat16);
    io.store = cnorm_from_f32_serial(bfloat16);
    io.x = x;
    io.x2 = x2;
    io.y = y;
    io.unit = unit;
    io.runs = 1;
    io.tmp = tmp;
    return io;
}

/* The same for units that are whole channels of the (N, C, S) view: N runs
 * of S values, C*S apart. */
static lowp_io lowp_channels_io(int bfloat16, const uint16_t *x, const uint16_t *x2,
                                uint16_t *y, int64_t N, int64_t C, int64_t S)
{
    lowp_io io = lowp_io_of(bfloat16, x, x2, y, S, 0);
    io.runs = N;
    io.stride = C * S;
    return io;
}

/* ---- row family backward ------------------------------------------------ */

/* dy is the first input (its buffer becomes dx), x the second.  Each chunk
 * (whole groups of G rows) runs the float32 backward; its parameter
 * gradients (scratch a, b) are added to its piece's partials part[0..2)
 * [P][GP], merged in piece order at the end. */
typedef struct {
    int64_t K, G, S, GP;
    int center;
    const float *mean, *rstd, *weight;
    double *part[2];               /* dweight, dbias partials, or NULL */
} lowp_row_bwd_job;

static int row_bwd_chunk(const void *job, const lowp_chunk *ch)
{
    const lowp_row_bwd_job *j = job;
    const int64_t m0 = ch->u0;
    double *dw = j->part[0] ? ch->a : NULL, *db = j->part[1] ? ch->b : NULL;
    const int status = cnorm_row_backward_f32(ch->x, ch->x2, ch->units, j->K, j->G, j->S,
                                              j->center, j->center ? j->mean + m0 : NULL,
                                              j->rstd + m0, j->weight, ch->x, dw, db);
    double *out[2] = {dw, db};
    for (int k = 0; k < 2; k++)
        if (out[k])
            cnorm_add_parts(j->part[k] + ch->piece * j->GP, out[k], 1, 0, j->GP);
    return status;
}

static int row_backward_lowp(int bfloat16, const uint16_t *dy, const uint16_t *x, int64_t M,
                             int64_t K, int64_t G, int64_t S, int center, const float *mean,
                             const float *rstd, const float *weight, uint16_t *dx,
                             double *dweight, double *dbias)
{
    if (M == 0)   /* sums of nothing, as the float32 kernel gives them */
        return cnorm_row_backward_f32(NULL, NULL, 0, K, G, S, center, NULL, NULL, NULL, NULL,
                                      dweight, dbias);
    if (M < 0 || K < 1 || G < 1 || S < 1 || K % S || !dy || !x || !rstd || !dx ||
        (center && !mean))
        return CNORM_EINVAL;
    if (cnorm_row_backward_rows_fit(K))   /* each row converted once, on the row tiles */
        return (bfloat16 ? cnorm_row_backward_rows_bf16 : cnorm_row_backward_rows_f16)(
            dy, x, M, K, G, S, center, mean, rstd, weight, dx, dweight, dbias);
    const int64_t GP = G * (K / S);
    /* at least LOWP_ROW_BWD_ROWS rows (each chunk adds 2 * GP gradient sums)
     * while that stays within 4 * LOWP_CHUNK values: long rows, one at a time */
    const int64_t least = cnorm_min64(LOWP_ROW_BWD_ROWS, cnorm_max64(1, 4 * LOWP_CHUNK / K));
    const int64_t per = cnorm_cdiv64(cnorm_max64(least, LOWP_CHUNK / K), G) * G;
    const int64_t P = cnorm_max64(1, cnorm_min64(cnorm_min64(LOWP_PIECES, cnorm_cdiv64(M, per)),
                                                 LOWP_ROW_BWD_CELLS / GP));
    double *part = calloc((size_t)(2 * P * GP), sizeof(double));
    if (!part)
        return CNORM_ENOMEM;
    const lowp_row_bwd_job job = {K, G, S, GP, center, mean, rstd, weight,
                                  {dweight ? part : NULL, dbias ? part + P * GP : NULL}};
    lowp_io io = lowp_io_of(bfloat16, dy, x, dx, K, GP);
    const int status = lowp_run(&io, M, per, P, row_bwd_chunk, &job);
    double *out[2] = {dweight, dbias};
    for (int k = 0; k < 2; k++)
        if (out[k]) {
            memset(out[k], 0, (size_t)GP * sizeof(double));
            cnorm_add_parts(out[k], job.part[k], P, GP, GP);   /* in piece order */
        }
    free(part);
    return status;
}

/* ---- channel family: chunks of the (N, C, S) view --------------------- */

/* A float32 kernel on the sub-view (N, C, S) of channels [c, c + C) that
 * starts o values into the chunk. */
typedef int (*view_fn)(const void *job, const lowp_chunk *ch, int64_t o, int64_t N, int64_t c,
                       int64_t C, int64_t S);

/* The first member of every channel job: the view and the kernel of the
 * pass that runs. */
typedef struct {
    int64_t C, S;
    view_fn view;
} lowp_chan;

/* Values [v0, v0 + n) of the chunk, in as few sub-views as the layout
 * allows: whole samples, else whole planes of one sample, else part of a
 * plane (a chunk need not start or end on a plane: it keeps its length,
 * in cache, however large a plane is).  A sub-view has at most
 * min(C, LOWP_CHUNK) channels. */
static int chan_chunk(const void *job, const lowp_chunk *ch)
{
    const lowp_chan *j = job;
    const int64_t plane = j->S, sample = j->C * j->S;
    int64_t v0 = ch->u0, n = ch->units, o = 0;
    int status = CNORM_OK;
    while (n > 0 && status == CNORM_OK) {
        const int64_t c = v0 / plane % j->C, off = v0 % plane;
        int64_t N = 1, C = 1, S = cnorm_min64(plane - off, n);
        if (off == 0 && c == 0 && n >= sample) {
            N = n / sample;
            C = j->C;
            S = plane;
        } else if (off == 0 && n >= plane) {
            C = cnorm_min64(j->C - c, n / plane);
            S = plane;
        }
        status = j->view(job, ch, o, N, c, C, S);
        o += N * C * S;
        v0 += N * C * S;
        n -= N * C * S;
    }
    return status;
}

/* Values per chunk of at most `chunk` (LOWP_CHUNK or LOWP_PASS_CHUNK):
 * whole samples when they fit, so that most chunks are one float32 call. */
static int64_t chan_per(int64_t C, int64_t S, int64_t chunk)
{
    const int64_t sample = C * S;
    return sample <= chunk ? chunk / sample * sample : chunk;
}

/* Pieces of a reduction over C channels (their partials are [pieces][C]). */
static int64_t chan_pieces(int64_t C)
{
    return cnorm_max64(1, cnorm_min64(LOWP_PIECES, LOWP_CELLS / C));
}

/* Doubles of per-thread scratch a and b: one per channel of a sub-view. */
static int64_t chan_tmp(int64_t C) { return cnorm_min64(C, LOWP_CHUNK); }

/* Whether training and backward take whole channels at a time (their N
 * runs gathered into the buffer: one pass over memory, as the float32
 * kernels fuse a channel that stays in cache): planar runs of at least
 * LOWP_FUSE_RUN values and at most LOWP_FUSE values per channel. */
#define LOWP_FUSE_RUN 64
#define LOWP_FUSE ((int64_t)1 << 18)
static int chan_fused(int64_t N, int64_t S)
{
    return S >= LOWP_FUSE_RUN && N * S <= LOWP_FUSE;
}

/* Channels per fused unit: about LOWP_CHUNK values or more (one channel
 * of small planes is too little work for a float32 call), at most
 * LOWP_FUSE; consecutive channels of a sample are contiguous, so the
 * gathered runs only grow. */
static int64_t chan_fused_per(int64_t N, int64_t C, int64_t S)
{
    return cnorm_max64(1, cnorm_min64(C, LOWP_CHUNK / (N * S)));
}

/* ---- batch-norm inference ---------------------------------------------- */

/* Which rows the row family's 2-byte affine pass gets: planes of their own
 * (one coefficient pair per row), or samples with the coefficients expanded
 * to one pair per value (several short samples to a row of about
 * LOWP_ROW_VALUES: each row is a call of the tile).  Samples are rows when
 * their planes are single values (channels-last: the table is per
 * channel), their table is small (at most LOWP_EXPAND values) or their
 * planes are (under LOWP_PLANE_ROW values, up to LOWP_EXPAND_MAX values a
 * sample).
 * Measured, one thread, bfloat16 against float32: (32,64,8,8) planes 1.76x,
 * samples 1.02x; (8,256,14,14) planes 1.1x, samples (a 400 KiB table)
 * 1.43x; (32,56,56,64) channels-last, samples of 64 values, 0.54-0.58x. */
#define LOWP_PLANE_ROW 64
#define LOWP_EXPAND ((int64_t)1 << 13)
#define LOWP_EXPAND_MAX ((int64_t)1 << 20)
#define LOWP_ROW_VALUES 2048



typedef int (*row_affine_fn)(const uint16_t *, int64_t, int64_t, int64_t, const float *,
                             const float *, const float *, int, uint16_t *);

/* Whether some channel's running mean lies beyond its running standard
 * deviation.  Only there does x * scale + shift lose the low bits of y:
 * the float32 rounding of scale and of shift is 2^-24 of |x * scale| and
 * of |running_mean * scale|, which otherwise stay within a few |weight|,
 * the size of the centred form's own rounding. */
static int bn_infer_off_centre(int64_t C, const float *running_mean, const float *running_var,
                               double eps)
{
    for (int64_t c = 0; c < C; c++)
        if (fabs((double)running_mean[c]) > sqrt((double)running_var[c] + eps))
            return 1;
    return 0;
}

/* y = act((x - running_mean) * scale + bias) or act(x * scale + shift)
 * per channel, scale = weight / sqrt(running_var + eps), shift = bias -
 * running_mean * scale, on the row family's 2-byte tiles
 * (row_narrow.h): the values are converted in registers or L1 blocks, not
 * in chunks.  The centred form keeps x - running_mean exact for x near
 * the mean, so data far from 0 (mean 1e3, std 1) keeps 2-byte results
 * within one ulp where the float32 kernel's x * scale + shift would cancel.
 * Planes take it always (a scalar centre per row costs nothing); samples
 * only when bn_infer_off_centre, as the third per-value table costs time:
 * channels-last (32,56,56,64), one thread, 0.78-0.98x of float32 centred
 * against 0.49-0.64x uncentred.  The tables start on cache lines (their
 * unaligned loads, split across lines, measured slower still). */
static int bn_forward_infer_lowp(int bfloat16, const uint16_t *x, int64_t N, int64_t C,
                                int64_t S, const float *running_mean,
                                const float *running_var, const float *weight,
                                const float *bias, double eps, int activation, uint16_t *y)
{
    if (N < 0 || C < 0 || S < 0 || !cnorm_activation_valid(activation) || !x ||
        !running_mean || !running_var || !y)
        return CNORM_EINVAL;
    if (N == 0 || C == 0 || S == 0)
        return CNORM_OK;
    const int64_t sample = C * S;
    /* (S == 1: the table is the per-channel one, whatever C) */
    const int planes = S > 1 && sample > LOWP_EXPAND &&
                       (S >= LOWP_PLANE_ROW || sample > LOWP_EXPAND_MAX);
    const int64_t per = planes ? 1 : S;                       /* pairs per channel ... */
    const int centred = planes || bn_infer_off_centre(C, running_mean, running_var, eps);
    const int64_t reps = planes ? 1 : cnorm_max64(1, LOWP_ROW_VALUES / sample);  /* ... sample */
    const int64_t width = reps * C * per;                     /* values of a row's table */
    const int64_t line = 64 / (int64_t)sizeof(float);
    const int64_t stride = (width + line - 1) / line * line;
    void *tables = malloc((size_t)((centred ? 3 : 2) * stride + line) * sizeof(float));
    if (!tables)
        return CNORM_ENOMEM;
    float *scale = (float *)(((uintptr_t)tables + 63) & ~(uintptr_t)63);
    float *shift = scale + stride, *center = centred ? shift + stride : NULL;
    for (int64_t c = 0; c < C; c++) {
        double a, b;
        cnorm_bn_infer_coefs(running_mean[c], running_var[c], weight ? weight[c] : 1.0,
                             bias ? bias[c] : 0.0, eps, &a, &b);
        if (centred)
            b = bias ? bias[c] : 0.0;
        for (int64_t r = 0; r < reps; r++)
            for (int64_t s = 0; s < per; s++) {
                const int64_t k = (r * C + c) * per + s;
                scale[k] = (float)a;
                shift[k] = (float)b;
                if (centred)
                    center[k] = running_mean[c];
            }
    }
    const row_affine_fn affine = bfloat16 ? cnorm_row_affine_bf16 : cnorm_row_affine_f16;
    int status;
    if (planes) {
        status = affine(x, N * C, S, C, center, scale, shift, activation, y);
    } else {   /* N / reps rows of width values, then the rest of the samples */
        const int64_t rows = N / reps, done = rows * width;
        status = affine(x, rows, width, 0, center, scale, shift, activation, y);
        if (status == CNORM_OK && N % reps)
            status = affine(x + done, 1, (N % reps) * sample, 0, center, scale, shift,
                            activation, y + done);
    }
    free(tables);
    return status;
}

/* The shared start of training and backward: CNORM_EINVAL for negative
 * sizes or a missing pointer (inputs_given == 0); an empty reduction
 * (N*S == 0) zeroes the per-channel outputs a and b; 1 when there is work
 * (cnorm_bn_forward_train_f32's and cnorm_bn_backward_f32's checks). */
static int chan_lowp_prologue(int64_t N, int64_t C, int64_t S, double *a, double *b,
                              int inputs_given)
{
    if (N < 0 || C < 0 || S < 0 || !a || !b || !inputs_given)
        return CNORM_EINVAL;
    if (N == 0 || S == 0)
        for (int64_t c = 0; c < C; c++)
            a[c] = b[c] = 0.0;
    return N == 0 || S == 0 || C == 0 ? CNORM_OK : 1;
}

/* ---- batch-norm training forward --------------------------------------- */

/* Chunked: pass 1 (moments_view) merges each sub-view's moments into its
 * piece's partials count/mean/m2 at part[0..3) [P][C]; pass 2
 * (standardize_view) is y = act((x - center) * scale + shift) with the
 * float32 training kernel's coefficients at coef[0..3) [C].  Fused
 * (train_channel_chunk): one channel at a time, both in one pass. */
typedef struct {
    lowp_chan chan;
    double *part[3];
    float *coef[3];
    double count, eps;
    const float *weight, *bias;
    const cnorm_renorm *renorm;
    int activation;
    double *mean, *var;
} lowp_train_job;

/* Channel c's outputs and coefficients from its moments (m2: the sum of
 * squared deviations), as the float32 kernel's train_channel. */
static void train_coefs(const lowp_train_job *j, int64_t c, double m, double m2)
{
    double scale, shift;
    const float mt = (float)m;
    cnorm_bn_train_coefs(c, j->count, m, m2, (double)mt, j->weight ? (double)j->weight[c] : 1.0,
                         j->bias ? (double)j->bias[c] : 0.0, j->eps, j->renorm, &scale, &shift);
    j->mean[c] = m;
    j->var[c] = m2 / j->count;
    j->coef[0][c] = mt;
    j->coef[1][c] = (float)scale;
    j->coef[2][c] = (float)shift;
}

static int moments_view(const void *job, const lowp_chunk *ch, int64_t o, int64_t N, int64_t c,
                        int64_t C, int64_t S)
{
    const lowp_train_job *j = job;
    const int64_t at = ch->piece * j->chan.C + c;
    double *pn = j->part[0] + at, *pm = j->part[1] + at, *pm2 = j->part[2] + at;
    const int status = cnorm_channel_moments_f32(ch->x + o, N, C, S, ch->a, ch->b);
    for (int64_t k = 0; k < C; k++)
        cnorm_merge(pn + k, pm + k, pm2 + k, (double)(N * S), ch->a[k], ch->b[k]);
    return status;
}

static int standardize_view(const void *job, const lowp_chunk *ch, int64_t o, int64_t N,
                            int64_t c, int64_t C, int64_t S)
{
    const lowp_train_job *j = job;
    return cnorm_channel_standardize_f32(ch->x + o, N, C, S, j->coef[0] + c, j->coef[1] + c,
                                         j->coef[2] + c, j->activation, ch->x + o);
}

/* Channels [ch->u0, ch->u0 + ch->units), gathered as an (N, units, S) view. */
static int train_channels_chunk(const void *job, const lowp_chunk *ch)
{
    const lowp_train_job *j = job;
    const int64_t c = ch->u0, N = (int64_t)j->count / j->chan.S;
    int status = cnorm_channel_moments_f32(ch->x, N, ch->units, j->chan.S, ch->a, ch->b);
    for (int64_t k = 0; k < ch->units; k++)
        train_coefs(j, c + k, ch->a[k], ch->b[k]);
    return status == CNORM_OK ? standardize_view(job, ch, 0, N, c, ch->units, j->chan.S)
                              : status;
}

/* Training on planes runs on the row family's 2-byte tiles: each plane's
 * moments (planes are rows), merged per channel in plane order (the same
 * bits for any thread count), then the affine pass over the planes,
 * y = act((x - mean) * scale + shift), in memory order; memory sees two
 * 2-byte loads and a store per value and nothing in float32.  It takes
 * planes of at least LOWP_TRAIN_PLANE values, or of LOWP_PLANE_ROW in
 * inputs of LOWP_TRAIN_LARGE values or more; the per-plane work of smaller
 * planes costs more than the chunks' conversions while x is in cache.
 * Measured, one thread, time over float32's, float16 and bfloat16, planes
 * against chunks (benchmarks/RESULTS.md, stop 30): (32,64,56,56) 0.48-0.54
 * against 1.01-1.03; (4,3,512,512) 0.64-0.73 against 1.2; (128,256,14,14)
 * 0.80-0.92 against 1.2-1.3; (16,64,24,24) 0.8-1.4 against 1.1-1.3;
 * (8,64,20,20) 1.8-2.0 against 1.5-1.6. */
#define LOWP_TRAIN_PLANE 512
#define LOWP_TRAIN_LARGE ((int64_t)1 << 21)

/* Whether training and backward of this planar view run on planes. */
static int chan_planes(int64_t N, int64_t C, int64_t S)
{
    return S >= LOWP_TRAIN_PLANE || (S >= LOWP_PLANE_ROW && N * C * S >= LOWP_TRAIN_LARGE);
}

static int train_planes_lowp(int bfloat16, lowp_train_job *job, const uint16_t *x, int64_t N,
                             int64_t C, int64_t S, uint16_t *y)
{
    double *pmean = malloc((size_t)(2 * N * C) * sizeof(double));
    if (!pmean)
        return CNORM_ENOMEM;
    double *pm2 = pmean + N * C;
    int status = (bfloat16 ? cnorm_row_moments_bf16 : cnorm_row_moments_f16)(x, N * C, S,
                                                                             pmean, pm2);
    for (int64_t c = 0; c < C && status == CNORM_OK; c++) {
        double n = 0.0, m = 0.0, m2 = 0.0;
        for (int64_t i = 0; i < N; i++)   /* in plane order */
            cnorm_merge(&n, &m, &m2, (double)S, pmean[i * C + c], pm2[i * C + c]);
        train_coefs(job, c, m, m2);
    }
    free(pmean);
    if (status == CNORM_OK)
        status = (bfloat16 ? cnorm_row_affine_bf16 : cnorm_row_affine_f16)(
            x, N * C, S, C, job->coef[0], job->coef[1], job->coef[2], job->activation, y);
    return status;
}

static int bn_forward_train_lowp(int bfloat16, const uint16_t *x, int64_t N, int64_t C,
                                int64_t S, const float *weight, const float *bias, double eps,
                                int activation, const cnorm_renorm *renorm, uint16_t *y,
                                double *mean, double *var)
{
    const int renorm_given = !renorm || (renorm->running_mean && renorm->running_var &&
                                         renorm->r && renorm->d);
    int status = cnorm_activation_valid(activation)
                     ? chan_lowp_prologue(N, C, S, mean, var, x && y && renorm_given)
                     : CNORM_EINVAL;
    if (status != 1)
        return status;
    const int planes = chan_planes(N, C, S);
    const int fused = !planes && chan_fused(N, S);
    const int64_t reduce_per = chan_per(C, S, LOWP_CHUNK);
    const int64_t P = planes || fused ? 0 : cnorm_min64(chan_pieces(C),
                                                        cnorm_cdiv64(N * C * S, reduce_per));
    const int64_t bytes[2] = {3 * P * C * (int64_t)sizeof(double),
                              3 * C * (int64_t)sizeof(float)};
    void *parts[2], *block;
    if (cnorm_scratch_alloc(2, bytes, parts, &block) != CNORM_OK)
        return CNORM_ENOMEM;
    lowp_train_job job = {{C, S, moments_view}, {NULL}, {NULL}, (double)(N * S), eps, weight,
                          bias, renorm, activation, mean, var};
    for (int i = 0; i < 3; i++) {
        job.part[i] = P ? (double *)parts[0] + i * P * C : NULL;
        job.coef[i] = (float *)parts[1] + i * C;
    }
    if (planes) {
        status = train_planes_lowp(bfloat16, &job, x, N, C, S, y);
        free(block);
        return status;
    }
    if (fused) {
        const int64_t per = chan_fused_per(N, C, S);
        lowp_io io = lowp_channels_io(bfloat16, x, NULL, y, N, C, S);
        io.tmp = per;
        status = lowp_run(&io, C, per, INT64_MAX, train_channels_chunk, &job);
        free(block);
        return status;
    }
    memset(parts[0], 0, (size_t)bytes[0]);   /* count 0: an empty partial */
    lowp_io io = lowp_io_of(bfloat16, x, NULL, NULL, 1, chan_tmp(C));
    status = lowp_run(&io, N * C * S, reduce_per, P, chan_chunk, &job);
    for (int64_t c = 0; c < C && status == CNORM_OK; c++) {
        double n = 0.0, m = 0.0, m2 = 0.0;
        for (int64_t p = 0; p < P; p++)   /* in piece order */
            cnorm_merge(&n, &m, &m2, job.part[0][p * C + c], job.part[1][p * C + c],
                        job.part[2][p * C + c]);
        train_coefs(&job, c, m, m2);
    }
    if (status == CNORM_OK) {
        job.chan.view = standardize_view;
        io = lowp_io_of(bfloat16, x, NULL, y, 1, 0);
        status = lowp_run(&io, N * C * S, chan_per(C, S, LOWP_PASS_CHUNK), INT64_MAX,
                          chan_chunk, &job);
    }
    free(block);
    return status;
}

/* ---- batch-norm backward ------------------------------------------------ */

/* dy is the first input (its buffer becomes dx), x the second.  Chunked:
 * pass 1 (dots_view) adds each sub-view's sums of dy and dy * x_hat into
 * its piece's partials part[0..2) [P][C]; pass 2 (dx_view) is the float32
 * kernel's dx from the total sums.  Fused (backward_channels_chunk): whole
 * channels, sums and dx in one float32 call. */
typedef struct {
    lowp_chan chan;
    double *part[2];
    double count;
    const float *mean, *invstd, *weight;
    int dx;                        /* whether dx is written */
    double *sum_dy, *sum_dy_xhat;
} lowp_backward_job;

static int dots_view(const void *job, const lowp_chunk *ch, int64_t o, int64_t N, int64_t c,
                     int64_t C, int64_t S)
{
    const lowp_backward_job *j = job;
    const int64_t at = ch->piece * j->chan.C + c;
    const int status = cnorm_bn_backward_f32(ch->x + o, ch->x2 + o, N, C, S, j->mean + c,
                                             j->invstd + c, NULL, NULL, ch->a, ch->b);
    for (int64_t k = 0; k < C; k++) {
        j->part[0][at + k] += ch->a[k];
        j->part[1][at + k] += ch->b[k];
    }
    return status;
}

static int dx_view(const void *job, const lowp_chunk *ch, int64_t o, int64_t N, int64_t c,
                   int64_t C, int64_t S)
{
    const lowp_backward_job *j = job;
    return cnorm_bn_backward_dx_f32(ch->x + o, ch->x2 + o, N, C, S, j->mean + c, j->invstd + c,
                                    j->weight ? j->weight + c : NULL, j->sum_dy + c,
                                    j->sum_dy_xhat + c, j->count, ch->x + o);
}

/* Channels [ch->u0, ch->u0 + ch->units), gathered as an (N, units, S) view. */
static int backward_channels_chunk(const void *job, const lowp_chunk *ch)
{
    const lowp_backward_job *j = job;
    const int64_t c = ch->u0;
    return cnorm_bn_backward_f32(ch->x, ch->x2, (int64_t)j->count / j->chan.S, ch->units,
                                 j->chan.S, j->mean + c, j->invstd + c,
                                 j->weight ? j->weight + c : NULL, j->dx ? ch->x : NULL,
                                 j->sum_dy + c, j->sum_dy_xhat + c);
}

/* The backward on planes (chan_planes), as training: each plane's sums of
 * dy and dy * (x - mean) on the row tiles, added per channel in plane
 * order, then dx over the planes with the float32 kernel's constants
 * (cnorm_bn_backward_dx_f32's). */
static int backward_planes_lowp(int bfloat16, const lowp_backward_job *j, const uint16_t *dy,
                                const uint16_t *x, int64_t N, int64_t C, int64_t S,
                                uint16_t *dx)
{
    const int64_t bytes[2] = {2 * N * C * (int64_t)sizeof(double),
                              j->dx ? 3 * C * (int64_t)sizeof(float) : 0};
    void *parts[2], *block;
    if (cnorm_scratch_alloc(2, bytes, parts, &block) != CNORM_OK)
        return CNORM_ENOMEM;
    double *psdy = parts[0], *psdx = psdy + N * C;
    float *a = parts[1], *k1 = a ? a + C : NULL, *k3 = a ? a + 2 * C : NULL;
    int status = (bfloat16 ? cnorm_row_dots_bf16 : cnorm_row_dots_f16)(dy, x, N * C, S, C,
                                                                       j->mean, psdy, psdx);
    for (int64_t c = 0; c < C && status == CNORM_OK; c++) {
        double sdy = 0.0, sdx = 0.0;
        for (int64_t i = 0; i < N; i++) {   /* in plane order */
            sdy += psdy[i * C + c];
            sdx += psdx[i * C + c];
        }
        const double is = j->invstd[c], w = (j->weight ? (double)j->weight[c] : 1.0) * is;
        j->sum_dy[c] = sdy;
        j->sum_dy_xhat[c] = is * sdx;
        if (a) {
            a[c] = (float)(-is * is * sdx / j->count);
            k1[c] = (float)w;
            k3[c] = (float)(-w * sdy / j->count);
        }
    }
    if (status == CNORM_OK && a)
        status = (bfloat16 ? cnorm_row_bn_dx_bf16 : cnorm_row_bn_dx_f16)(
            dy, x, N * C, S, C, j->mean, a, k1, k3, dx);
    free(block);
    return status;
}

static int bn_backward_lowp(int bfloat16, const uint16_t *dy, const uint16_t *x, int64_t N,
                            int64_t C, int64_t S, const float *mean, const float *invstd,
                            const float *weight, uint16_t *dx, double *sum_dy,
                            double *sum_dy_xhat)
{
    int status = chan_lowp_prologue(N, C, S, sum_dy, sum_dy_xhat, dy && x && mean && invstd);
    if (status != 1)
        return status;
    lowp_backward_job job = {{C, S, dots_view}, {NULL}, (double)(N * S), mean, invstd, weight,
                             dx != NULL, sum_dy, sum_dy_xhat};
    if (chan_planes(N, C, S))
        return backward_planes_lowp(bfloat16, &job, dy, x, N, C, S, dx);
    if (chan_fused(N, S)) {
        const int64_t per = chan_fused_per(N, C, S);
        const lowp_io io = lowp_channels_io(bfloat16, dy, x, dx, N, C, S);
        return lowp_run(&io, C, per, INT64_MAX, backward_channels_chunk, &job);
    }
    const int64_t reduce_per = chan_per(C, S, LOWP_CHUNK);
    const int64_t P = cnorm_min64(chan_pieces(C), cnorm_cdiv64(N * C * S, reduce_per));
    double *part = calloc((size_t)(2 * P * C), sizeof(double));
    if (!part)
        return CNORM_ENOMEM;
    job.part[0] = part;
    job.part[1] = part + P * C;
    lowp_io io = lowp_io_of(bfloat16, dy, x, NULL, 1, chan_tmp(C));
    status = lowp_run(&io, N * C * S, reduce_per, P, chan_chunk, &job);
    for (int64_t c = 0; c < C; c++) {
        sum_dy[c] = sum_dy_xhat[c] = 0.0;
        for (int64_t p = 0; p < P; p++) {   /* in piece order */
            sum_dy[c] += job.part[0][p * C + c];
            sum_dy_xhat[c] += job.part[1][p * C + c];
        }
    }
    free(part);
    if (status == CNORM_OK && dx) {
        job.chan.view = dx_view;
        io = lowp_io_of(bfloat16, dy, x, dx, 1, 0);
        status = lowp_run(&io, N * C * S, chan_per(C, S, LOWP_CHUNK), INT64_MAX,
                          chan_chunk, &job);
    }
    return status;
}

/* ---- the exported names ------------------------------------------------- */

#define LOWP_ROW_BACKWARD(name, bf)                                                         \
    int name(const uint16_t *dy, const uint16_t *x, int64_t M, int64_t K, int64_t G,         \
             int64_t S, int center, const float *mean, const float *rstd,                   \
             const float *weight, uint16_t *dx, double *dweight, double *dbias)             \
    {                                                                                       \
        return row_backward_lowp(bf, dy, x, M, K, G, S, center, mean, rstd, weight, dx,      \
                                 dweight, dbias);                                           \
    }
#define LOWP_INFER(name, bf)                                                                \
    int name(const uint16_t *x, int64_t N, int64_t C, int64_t S, const float *running_mean,  \
             const float *running_var, const float *weight, const float *bias, double eps,   \
             int activation, uint16_t *y)                                                   \
    {                                                                                       \
        return bn_forward_infer_lowp(bf, x, N, C, S, running_mean, running_var, weight, bias, \
                                     eps, activation, y);                                   \
    }
#define LOWP_TRAIN(name, bf)                                                                \
    int name(const uint16_t *x, int64_t N, int64_t C, int64_t S, const float *weight,        \
             const float *bias, double eps, int activation, const cnorm_renorm *renorm,      \
             uint16_t *y, double *mean, double *var)                                        \
    {                                                                                       \
        return bn_forward_train_lowp(bf, x, N, C, S, weight, bias, eps, activation, renorm,  \
                                     y, mean, var);                                         \
    }

#define LOWP_BACKWARD(name, bf)                                                             \
    int name(const uint16_t *dy, const uint16_t *x, int64_t N, int64_t C, int64_t S,         \
             const float *mean, const float *invstd, const float *weight, uint16_t *dx,      \
             double *sum_dy, double *sum_dy_xhat)                                           \
    {                                                                                       \
        return bn_backward_lowp(bf, dy, x, N, C, S, mean, invstd, weight, dx, sum_dy,        \
                                sum_dy_xhat);                                               \
    }

LOWP_ROW_BACKWARD(cnorm_row_backward_f16, 0)
LOWP_ROW_BACKWARD(cnorm_row_backward_bf16, 1)
LOWP_INFER(cnorm_bn_forward_infer_f16, 0)
LOWP_INFER(cnorm_bn_forward_infer_bf16, 1)
LOWP_TRAIN(cnorm_bn_forward_train_f16, 0)
LOWP_TRAIN(cnorm_bn_forward_train_bf16, 1)
LOWP_BACKWARD(cnorm_bn_backward_f16, 0)
LOWP_BACKWARD(cnorm_bn_backward_bf16, 1)

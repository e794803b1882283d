/* Channel family: per-channel statistics and affine maps over the (N, C, S)
 * view (batch norm, batch renorm, standardization); docs/design.md,
 * "Kernel families".  Its parts, one job each:
 *
 *   channel_geom.h          the view cut into groups, blocks and pieces
 *   channel.c (this file)   dtype-free policy: merging pieces, scratch,
 *                           fusion and streaming choices, coefficients
 *   channel_tiles_impl.h    reduction tiles: the vectorizable sum loops
 *   channel_stats_impl.h    a block's and a piece's statistics
 *   channel_passes_impl.h   the elementwise passes and their job
 *   channel_drivers_impl.h  the public kernels: reduce, finish, apply
 *
 * The *_impl.h parts are compiled once per dtype and SIMD path
 * (channel_impl.h, instantiate.h); tiles and passes hold no OpenMP, the
 * drivers own the parallel loops (runtime.h). */
#include <float.h>
#include <string.h>
#include "channel_geom.h"
#include "simd.h"
#include "stream.h"

/* A planar channel whose data (x, or dy and x) is at most this size is
 * still in L2, or in L3, when its elementwise pass follows its reduction,
 * so the two are fused per channel.  Measured here (512 KiB L2, 32 MiB L3,
 * one thread, ratio to memcpy): 1 MiB beat 256 and 512 KiB; 4 MiB then
 * took 16x64x112x112 backward (1.6 MB per channel) from 2.24-2.36 to
 * 1.79-1.83 and 48x64x112x112 training (2.4 MB) from 1.45-1.70 to
 * 1.41-1.53, 8 MiB its backward (4.8 MB) from 1.95-2.16 to 1.77-1.89.
 * Where the L3 share is smaller the fused pass re-reads from memory, which
 * costs what the unfused second pass does. */
#define CHAN_FUSE_BYTES ((int64_t)8 << 20)
/* ... and whose runs are at least this long: the fused pass writes a
 * channel's runs one after another, far apart, and short runs written that
 * way cost more than a second read of x in memory order (measured, one
 * thread, L2 evicted, ratio to memcpy: 8x256x14x14 backward 6.1-6.6 fused
 * against 4.5-4.9, 8x512x7x7 8.2-8.8 against 5.6-6.6; runs of 3 KiB and
 * 4 KiB were even, 12 KiB favoured fusion). */
#define CHAN_FUSE_RUN_BYTES 2048
/* Planar elementwise passes write with non-temporal stores when the output
 * is at least this large: far beyond the L3 share of a core on common
 * CPUs, so it would not be in cache when read next, and a plain store
 * first reads every output line. */
#define CHAN_STREAM_BYTES ((int64_t)64 << 20)

/* Piece partials live in arrays [nchunk][ncol]; counts in [ngrp][nchunk].
 * Merge group g's chunks, in chunk order, into chunk 0's slot. */
static void chan_merge_group(const chan_geom *G, int64_t g, const double *pcnt,
                             double *pmean, double *pm2)
{
    int64_t k0, kw, pg, q;
    chan_group(G, g, &k0, &kw, &pg);
    double n = pcnt[g * G->nchunk];
    for (q = 1; q < G->nchunk; q++) {
        double nb = pcnt[g * G->nchunk + q];
        int64_t o = q * G->ncol + k0;
        cnorm_merge_cols(n, pmean + k0, pm2 + k0, nb, pmean + o, pm2 + o, kw);
        n += nb;
    }
}

static void chan_sum_group(const chan_geom *G, int64_t g, double *pa, double *pb)
{
    int64_t k0, kw, pg;
    chan_group(G, g, &k0, &kw, &pg);
    cnorm_add_parts(pa + k0, pa + G->ncol + k0, G->nchunk - 1, G->ncol, kw);
    cnorm_add_parts(pb + k0, pb + G->ncol + k0, G->nchunk - 1, G->ncol, kw);
}

/* Channel c's moments from its merged columns (interleaved: S columns of
 * N values each, merged in s order), whose means are kept less base[s]
 * (column_base, channel_stats_impl.h): merged relative to base[0]. */
static void chan_channel_moments(const chan_geom *G, int64_t c, const double *pmean,
                                 const double *pm2, const double *base, double *mean,
                                 double *m2)
{
    if (G->planar) {
        *mean = base[0] + pmean[c];
        *m2 = pm2[c];
    } else {
        double n = 0.0, m = 0.0, s2 = 0.0;
        int64_t s;
        for (s = 0; s < G->S; s++)
            cnorm_merge(&n, &m, &s2, (double)G->N, pmean[c * G->S + s] + (base[s] - base[0]),
                        pm2[c * G->S + s]);
        *mean = base[0] + m;
        *m2 = s2;
    }
}

static void chan_channel_sums(const chan_geom *G, int64_t c, const double *pa,
                              const double *pb, double *a, double *b)
{
    int64_t s, w = G->planar ? 1 : G->S, k0 = G->planar ? c : c * G->S;
    *a = 0.0;
    *b = 0.0;
    for (s = 0; s < w; s++) {
        *a += pa[k0 + s];
        *b += pb[k0 + s];
    }
}

/* Per-call scratch: piece counts [ngrp][nchunk], piece partials a and b
 * [nchunk][ncol], then ncoef coefficients of elsize. */
typedef struct { double *cnt, *a, *b; void *coef, *block; } chan_scratch;

static int chan_scratch_alloc(const chan_geom *G, int64_t ncoef, size_t elsize,
                              chan_scratch *s)
{
    const int64_t np = G->ngrp * G->nchunk, nab = G->nchunk * G->ncol;
    const int64_t d = (int64_t)sizeof(double);
    const int64_t bytes[4] = {np * d, nab * d, nab * d, ncoef * (int64_t)elsize};
    void *parts[4];
    const int rc = cnorm_scratch_alloc(4, bytes, parts, &s->block);
    s->cnt = parts[0];
    s->a = parts[1];
    s->b = parts[2];
    s->coef = parts[3];
    return rc;
}

static void chan_scratch_free(chan_scratch *s) { free(s->block); }

/* Shared start of the reducing entry points: CNORM_EINVAL for negative
 * sizes, a NULL a or b, or inputs_given == 0 (a required input is NULL); an
 * empty reduction (N*S == 0) zeroes the per-channel outputs a and b (the
 * caller rejects training on it); CHAN_GO_ON when there is work. */
#define CHAN_GO_ON 1
static int chan_prologue(int64_t N, int64_t C, int64_t S, double *a, double *b,
                         int inputs_given)
{
    int64_t c;
    if (N < 0 || C < 0 || S < 0 || !a || !b || !inputs_given)
        return CNORM_EINVAL;
    if (N == 0 || S == 0) {
        for (c = 0; c < C; c++)
            a[c] = b[c] = 0.0;
        return CNORM_OK;
    }
    return C == 0 ? CNORM_OK : CHAN_GO_ON;
}

/* Whether a training forward or backward runs fused per channel: planar
 * runs of S elements of elsize bytes, `arrays` inputs per channel (x, or
 * dy and x). */
static int chan_fuse(const chan_geom *G, size_t elsize, int64_t arrays)
{
    int64_t run_bytes = G->S * (int64_t)elsize;
    return G->planar && run_bytes >= CHAN_FUSE_RUN_BYTES
           && arrays * G->N * run_bytes <= CHAN_FUSE_BYTES;
}

/* Whether the planar elementwise pass from x into y streams its stores
 * (y is a separate output far larger than the caches). */
static int chan_stream(const chan_geom *G, size_t elsize, const void *x, const void *y)
{
    return CNORM_CAN_STREAM && G->planar && x != y
           && G->total * (int64_t)elsize >= CHAN_STREAM_BYTES;
}

/* Batch-norm coefficients of one channel, in double (see cnorm.h), for
 * y = (x - mt) * scale + shift, where mt is the mean rounded to the element
 * type: shift absorbs the rounding, so y keeps full precision when
 * |mean| >> std, and a constant channel (mean == mt) gives exactly bias.
 * Also the coefficients of the float16/bfloat16 training forward (lowp.c). */
void cnorm_bn_train_coefs(int64_t c, double count, double mean, double m2, double mt,
                          double w, double b, double eps, const cnorm_renorm *rn,
                          double *scale, double *shift)
{
    double var = m2 / count;
    if (rn) {
        double sb = sqrt(var + eps), sr = sqrt(rn->running_var[c] + eps);
        double r = sb / sr, d = (mean - rn->running_mean[c]) / sr;
        /* comparisons, not fmin/fmax, so a NaN stays NaN */
        r = r < 1.0 / rn->rmax ? 1.0 / rn->rmax : r > rn->rmax ? rn->rmax : r;
        d = d < -rn->dmax ? -rn->dmax : d > rn->dmax ? rn->dmax : d;
        rn->r[c] = r;
        rn->d[c] = d;
        *scale = w * r / sb;
        *shift = b + w * d;
    } else {
        *scale = w / sqrt(var + eps);
        *shift = b;
    }
    if (mean != mt)
        *shift -= *scale * (mean - mt);
}

void cnorm_bn_infer_coefs(double running_mean, double running_var, double w, double b,
                          double eps, double *scale, double *shift)
{
    *scale = w / sqrt(running_var + eps);
    *shift = b - running_mean * *scale;
}

#define CNORM_FAMILY_IMPL "channel_impl.h"
#define CNORM_FAMILY_KERNELS CNORM_CHANNEL_KERNELS
#include "instantiate.h"

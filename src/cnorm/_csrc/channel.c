/* Channel family: per-channel statistics and affine maps over the (N, C, S)
 * view (batch norm, batch renorm).  See docs/design.md, sections 1-3.
 *
 * Layouts.  Planar (S >= one strip of lanes): a channel is N runs of S
 * contiguous values; we vectorize along s.  Interleaved (small S, e.g.
 * channels-last): x is N rows of K = C*S columns; each column gets its own
 * accumulators, so we vectorize across columns and merge the S columns of
 * a channel at the end.  A reduction block is `runs` runs of `len`
 * contiguous values.  Planar blocks are one column (block_* in
 * channel_impl.h).  Interleaved blocks are cut into "super-rows" of P
 * positions, position j belonging to column j % kw: P = lcm(K, strip), so
 * K = 3 still fills the vector lanes, or a column tile of wide rows.
 *
 * Strips.  Reductions run one strip of CHAN_LANES positions at a time with
 * a private accumulator per lane (4-6 AVX2 vectors per sum: enough
 * independent chains to hide the add/FMA latency).  A run or super-row whose width is
 * not a multiple of the strip ends with an overlapping strip, the last
 * strip width of it, whose lanes that repeat earlier positions are
 * dropped: no scalar tails, no masks in the loops.
 *
 * Statistics are one pass per block, sums of d = x - c and d^2 with c the
 * block's first value, checked: where that could lose more than 3 bits
 * (c far from the mean) or values are not finite, the block (then in L1)
 * gets an exact second pass; float32 squares that overflow or underflow
 * are redone in double.  Blocks merge with Chan's formula in double.
 *
 * Elementwise passes walk x in memory order (planar: run by run with
 * scalar constants; interleaved: super-row or whole row at a time with
 * per-column constants): training y = (x - mean) * scale + shift, so a
 * constant channel gives exactly its bias; inference y = x * scale + shift.
 *
 * Determinism.  Each group (a channel, or a tile of interleaved columns) is
 * cut into blocks and chunks of blocks whose bounds depend only on the
 * shape.  A chunk ("piece") is reduced by one thread; pieces are merged in
 * chunk order, so the result is the same bits for any thread count.
 *
 * Tiles (tile_*, block_*, run_*, rows_*) hold the vectorizable loops and no
 * OpenMP; channel_impl.h compiles them once per dtype and SIMD path
 * (instantiate.h); drivers own the parallel loops. */
#include <float.h>
#include <string.h>
#include "common.h"
#include "simd.h"
/* Non-temporal stores need GCC/Clang vector types (and x86 intrinsics for
 * the stores themselves; elsewhere they are plain). */
#if defined(__GNUC__) || defined(__clang__)
#define CHAN_CAN_STREAM 1
#else
#define CHAN_CAN_STREAM 0
#endif
#if CNORM_HAVE_X86_PATHS
#include <immintrin.h>
#define chan_sfence() _mm_sfence()
#else
#define chan_sfence() ((void)0)
#endif

/* Lanes of one strip: 32 float32 (4 AVX2 vectors), 24 float64 (6): with 16
 * float64 lanes GCC unrolls the lane loops before vectorizing and then
 * vectorizes the loop around them with shuffles (measured: float64
 * statistics 2-3x slower); 2 sums x 6 vectors + a centre fit the 16 AVX2
 * registers. */
#define CHAN_LANES(elsize) ((elsize) < 8 ? 32 : 24)
/* Statistics block: small enough that an exact second pass finds it in L1,
 * large enough to amortize its fold and Chan merge. */
#define CHAN_BLOCK_BYTES 16384
/* Interleaved blocks span at least this many rows, so a block's
 * per-column work (fold, check, Chan merge in double) stays small per
 * element (measured: 128 rows 20-35% faster than 32 on 1568x256). */
#define CHAN_MIN_ROWS 128
/* Tiles of wide rows are reduced this many rows at a time, strip by
 * strip: sweeping a strip down all of a block's rows (a 4 KiB stride for
 * 1024 float32 columns) ran at half the speed (measured: 8 and 32 worse). */
#define CHAN_SWEEP_ROWS 16
/* Interleaved: widest column tile, bytes; wider rows are split in tiles. */
#define CHAN_TILE_BYTES 1024
#define CHAN_TILE_MAX 256   /* CHAN_TILE_BYTES / sizeof(float) */
/* Widest super-row (positions); lcm(K, strip) above this falls back to
 * P = K. */
#define CHAN_PMAX 1024
/* Elements per parallel piece: enough work to amortize a task, small
 * enough that C = 1 still splits across cores. */
#define CHAN_CHUNK ((int64_t)1 << 15)
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
typedef struct {
    int64_t N, C, S, K, total;
    int planar;
    int64_t L;        /* lanes of a reduction strip */
    int64_t ncol;     /* columns with their own statistics: C or K */
    int64_t ngrp;     /* groups: channels (planar) or column tiles */
    int64_t tw;       /* columns per group (interleaved), 1 (planar) */
    int64_t P;        /* super-row width */
    int64_t brows;    /* runs (planar) or rows (interleaved) per block */
    int64_t seg, nseg;  /* planar: segment of a run in one block, count */
    int64_t nblk;     /* blocks per group */
    int64_t cblk;     /* blocks per chunk */
    int64_t nchunk;   /* chunks per group */
    int64_t rpt;      /* planar elementwise: runs per task */
} chan_geom;

/* Reduction ops of a strip. */
enum { CHAN_SUMS, CHAN_SQDEV, CHAN_DOTS };

/* A block: `runs` runs of `len` contiguous values, run i at off + i*ld. */
typedef struct { int64_t off, runs, ld, len; } chan_block;

/* The rows a tile works on: n1 x n2 rows, row (i, j) at i*s1 + j*s2. */
typedef struct { int64_t n1, s1, n2, s2; } chan_rect;

static int64_t chan_gcd(int64_t a, int64_t b)
{
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static int64_t chan_roundup(int64_t a, int64_t m) { return cnorm_cdiv64(a, m) * m; }

/* Requires N, C, S >= 1. */
static void chan_geom_init(chan_geom *G, int64_t N, int64_t C, int64_t S, int64_t elsize)
{
    int64_t nominal, L = CHAN_LANES(elsize), blk = CHAN_BLOCK_BYTES / elsize;
    G->N = N;
    G->C = C;
    G->S = S;
    G->K = C * S;
    G->total = N * C * S;
    G->L = L;
    G->planar = S >= L;
    G->rpt = cnorm_max64(1, CHAN_CHUNK / S);
    if (G->planar) {
        G->ncol = C;
        G->ngrp = C;
        G->tw = 1;
        G->P = L;
        if (S <= blk) {
            G->seg = S;
            G->nseg = 1;
            G->brows = blk / S;
        } else {   /* even segments; the last one is never empty */
            G->seg = cnorm_cdiv64(S, cnorm_cdiv64(S, blk));
            G->nseg = cnorm_cdiv64(S, G->seg);
            G->brows = 1;
        }
        G->nblk = cnorm_cdiv64(N, G->brows) * G->nseg;
        nominal = G->brows * G->seg;
    } else {
        int64_t K = G->K, tile = CHAN_TILE_BYTES / elsize;
        G->ncol = K;
        if (K <= tile) {
            int64_t lcm = K / chan_gcd(K, L) * L;
            G->tw = K;
            G->P = lcm <= CHAN_PMAX ? lcm : K;
        } else {   /* balanced tiles, whole strips wide */
            G->tw = chan_roundup(cnorm_cdiv64(K, cnorm_cdiv64(K, tile)), L);
            G->P = G->tw;
        }
        G->ngrp = cnorm_cdiv64(K, G->tw);
        /* whole super-rows per block, except at the end of x */
        G->brows = chan_roundup(cnorm_max64(CHAN_MIN_ROWS, blk / G->tw), G->P / G->tw);
        G->nblk = cnorm_cdiv64(N, G->brows);
        nominal = G->brows * G->tw;
    }
    G->cblk = cnorm_max64(1, CHAN_CHUNK / nominal);
    G->nchunk = cnorm_cdiv64(G->nblk, G->cblk);
}

/* Columns [k0, k0+kw) of group g and its super-row width pg (narrower than
 * P only for a last, partial column tile). */
static void chan_group(const chan_geom *G, int64_t g, int64_t *k0, int64_t *kw,
                       int64_t *pg)
{
    if (G->planar) {
        *k0 = g;
        *kw = 1;
        *pg = G->P;
    } else {
        *k0 = g * G->tw;
        *kw = cnorm_min64(G->tw, G->K - *k0);
        *pg = *kw == G->tw ? G->P : *kw;
    }
}

static chan_block chan_block_at(const chan_geom *G, int64_t g, int64_t b)
{
    chan_block B;
    if (G->planar) {   /* (no division in the common case: one segment) */
        int64_t n0 = (G->nseg == 1 ? b : b / G->nseg) * G->brows;
        int64_t s0 = G->nseg == 1 ? 0 : b % G->nseg * G->seg;
        B.runs = cnorm_min64(G->brows, G->N - n0);
        B.len = cnorm_min64(G->seg, G->S - s0);
        B.off = (n0 * G->C + g) * G->S + s0;
        B.ld = G->K;
    } else {
        int64_t r0 = b * G->brows, k0 = g * G->tw;
        B.runs = cnorm_min64(G->brows, G->N - r0);
        B.len = cnorm_min64(G->tw, G->K - k0);
        B.off = r0 * G->K + k0;
        B.ld = G->K;
        if (B.len == G->K) {   /* whole rows are one contiguous run */
            B.len *= B.runs;
            B.runs = 1;
        }
    }
    return B;
}

/* Chan merge of kw columns that share the counts na and nb: the per-column
 * work has no division, so it vectorizes.  Same arithmetic as cnorm_merge. */
static void chan_merge_cols(double na, double *ma, double *m2a, double nb,
                            const double *mb, const double *m2b, int64_t kw)
{
    int64_t k;
    if (nb == 0.0)
        return;
    if (na == 0.0 && kw == 1) {   /* no call to memcpy for one value */
        *ma = *mb;
        *m2a = *m2b;
        return;
    }
    if (na == 0.0) {
        memcpy(ma, mb, (size_t)kw * sizeof(double));
        memcpy(m2a, m2b, (size_t)kw * sizeof(double));
        return;
    }
    double n = na + nb, w = nb / n, f = na * nb / n;
    for (k = 0; k < kw; k++) {
        double d = mb[k] - ma[k];
        ma[k] += d * w;
        m2a[k] += m2b[k] + d * d * f;
    }
}

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
        chan_merge_cols(n, pmean + k0, pm2 + k0, nb, pmean + o, pm2 + o, kw);
        n += nb;
    }
}

static void chan_sum_group(const chan_geom *G, int64_t g, double *pa, double *pb)
{
    int64_t k0, kw, pg, q, k;
    chan_group(G, g, &k0, &kw, &pg);
    for (q = 1; q < G->nchunk; q++)
        for (k = k0; k < k0 + kw; k++) {
            pa[k] += pa[q * G->ncol + k];
            pb[k] += pb[q * G->ncol + k];
        }
}

/* Channel c's moments from its merged columns (interleaved: S columns of
 * N values each, merged in s order). */
static void chan_channel_moments(const chan_geom *G, int64_t c, const double *pmean,
                                 const double *pm2, double *mean, double *m2)
{
    if (G->planar) {
        *mean = pmean[c];
        *m2 = pm2[c];
    } else {
        double n = 0.0, m = 0.0, s2 = 0.0;
        int64_t s;
        for (s = 0; s < G->S; s++)
            cnorm_merge(&n, &m, &s2, (double)G->N, pmean[c * G->S + s], pm2[c * G->S + s]);
        *mean = m;
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

/* Per-call scratch, one allocation: piece counts [ngrp][nchunk], piece
 * partials a and b [nchunk][ncol], then ncoef coefficients of elsize. */
typedef struct { double *cnt, *a, *b; void *coef; } chan_scratch;

static int chan_scratch_alloc(const chan_geom *G, int64_t ncoef, size_t elsize,
                              chan_scratch *s)
{
    int64_t np = G->ngrp * G->nchunk, nab = G->nchunk * G->ncol;
    double *m = malloc((size_t)(np + 2 * nab) * sizeof(double) + (size_t)ncoef * elsize);
    if (!m)
        return CNORM_ENOMEM;
    s->cnt = m;
    s->a = m + np;
    s->b = s->a + nab;
    s->coef = s->b + nab;
    return CNORM_OK;
}

static void chan_scratch_free(chan_scratch *s) { free(s->cnt); }

/* Shared start of the reducing entry points: CNORM_EINVAL for negative
 * sizes; an empty reduction (N*S == 0) zeroes the per-channel outputs a and b
 * (the caller rejects training on it); CHAN_GO_ON when there is work. */
#define CHAN_GO_ON 1
static int chan_prologue(int64_t N, int64_t C, int64_t S, double *a, double *b)
{
    int64_t c;
    if (N < 0 || C < 0 || S < 0)
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
    return CHAN_CAN_STREAM && G->planar && x != y
           && G->total * (int64_t)elsize >= CHAN_STREAM_BYTES;
}

/* Runs task(job, p) for p in [0, n) on nt threads.  Pieces and merge order
 * never depend on nt, so any nt gives the same bits.  nt == 1 stays out of
 * the OpenMP runtime: even a serial region costs a futex call there. */
static void chan_parallel(int nt, int64_t n, void (*task)(const void *, int64_t),
                          const void *job)
{
    int64_t p;
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (p = 0; p < n; p++)
            task(job, p);
        return;
    }
#else
    (void)nt;
#endif
    for (p = 0; p < n; p++)
        task(job, p);
}

/* Batch-norm coefficients of one channel, in double (see cnorm.h), for
 * y = (x - mt) * scale + shift, where mt is the mean rounded to the element
 * type: shift absorbs the rounding, so y keeps full precision when
 * |mean| >> std, and a constant channel (mean == mt) gives exactly bias. */
static void chan_train_coefs(int64_t c, double count, double mean, double m2, double mt,
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

#define CNORM_FAMILY_IMPL "channel_impl.h"
#define CNORM_FAMILY_KERNELS CNORM_CHANNEL_KERNELS
#include "instantiate.h"

/* Geometry and blocking of the channel family (channel.c): how an
 * (N, C, S) view is cut into groups, blocks, strips and pieces, which
 * depends on the shape only (docs/design.md, "Views" and "Threads and
 * determinism").
 *
 * Layouts.  Planar (S >= one strip of lanes): a channel is N runs of S
 * contiguous values; we vectorize along s.  Interleaved (small S, e.g.
 * channels-last): x is N rows of K = C*S columns; each column gets its own
 * accumulators, so we vectorize across columns and merge the S columns of
 * a channel at the end.  A reduction block is `runs` runs of `len`
 * contiguous values.  Planar blocks are one column (block_* in
 * channel_tiles_impl.h).  Interleaved blocks are cut into "super-rows" of P
 * positions, position j belonging to column j % kw: P = lcm(K, strip), so
 * K = 3 still fills the vector lanes, or a column tile of wide rows.
 *
 * Strips.  Reductions run one strip of CHAN_LANES positions at a time with
 * a private accumulator per lane (4-6 AVX2 vectors per sum: enough
 * independent chains to hide the add/FMA latency).  A run or super-row
 * whose width is not a multiple of the strip ends with an overlapping strip, the last
 * strip width of it, whose lanes that repeat earlier positions are
 * dropped: no scalar tails, no masks in the loops.
 *
 * Determinism.  Each group (a channel, or a tile of interleaved columns) is
 * cut into blocks and chunks of blocks whose bounds depend only on the
 * shape.  A chunk ("piece") is reduced by one thread; pieces are merged in
 * chunk order, so the result is the same bits for any thread count. */
#ifndef CNORM_CHANNEL_GEOM_H
#define CNORM_CHANNEL_GEOM_H

#include "common.h"
#include "channel_coefs.h"

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
/* The stack arrays of a tile's statistics are CHAN_TILE_MAX long: a
 * compile error if the two constants drift apart. */
typedef char chan_tile_max_is_float_count[CHAN_TILE_MAX * sizeof(float) == CHAN_TILE_BYTES ? 1 : -1];
/* Widest super-row (positions); lcm(K, strip) above this falls back to
 * P = K. */
#define CHAN_PMAX 1024
/* Elements per parallel piece: enough work to amortize a task, small
 * enough that C = 1 still splits across cores. */
#define CHAN_CHUNK ((int64_t)1 << 15)

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

static inline chan_block chan_block_at(const chan_geom *G, int64_t g, int64_t b)
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

#endif /* CNORM_CHANNEL_GEOM_H */

/* Channel family body for one element type and SIMD path; included by
 * instantiate.h with T and SFX defined (see common.h).  No include guard on
 * purpose. */

#include "activation_impl.h"

/* Lanes (positions) of a strip. */
#define CL ((int)CHAN_LANES(sizeof(T)))

/* ---- reduction tiles: the vectorizable loops, no OpenMP --------------- *
 * A tile sums one strip (CL positions) over a rect of rows (n1, n2 >= 1)
 * into private lanes, which the compiler keeps in registers, then writes
 * them out to the caller's accumulators acc[0..CL) (and acc2): stores them
 * (add = 0) or adds them (add = 1), except lanes below m0: an overlapping
 * last strip drops the positions an earlier strip already counted.  The
 * lanes start from the first row, not from zero: GCC turns any zero fill
 * into `rep stos`, which costs more than a small block's arithmetic.
 * Ops: CHAN_SUMS, d = x - c and d^2 (the statistics, one pass);
 * CHAN_SQDEV, (x - c)^2 (their exact second pass); CHAN_DOTS, u and
 * u * (x - c) (the backward's sums of dy and dy * (x - mean)). */

/* acc (+)= lanes a[m0..CL).  (a + 0 keeps GCC from making the store a
 * memcpy, for the same reason; it only turns a -0 partial sum into +0.) */
static void SFX(lanes_out)(const T *a, int m0, int add, T *restrict acc)
{
    int l;
    if (add)
        for (l = m0; l < CL; l++)
            acc[l] += a[l];
    else
        for (l = m0; l < CL; l++)
            acc[l] = a[l] + (T)0;
}

static void SFX(tile_sums)(const T *restrict x, chan_rect r, const T *restrict c, int m0,
                           int add, T *restrict acc, T *restrict acc2)
{
    T a[CL], q[CL], cc[CL];
    int64_t i, j;
    int l;
    for (l = 0; l < CL; l++) {
        T d;
        cc[l] = c[l];
        d = x[l] - cc[l];
        a[l] = d;
        q[l] = d * d;
    }
    for (i = 0; i < r.n1; i++)
        for (j = i ? 0 : 1; j < r.n2; j++) {
            const T *p = x + i * r.s1 + j * r.s2;
            for (l = 0; l < CL; l++) {
                T d = p[l] - cc[l];
                a[l] += d;
                q[l] += d * d;
            }
        }
    SFX(lanes_out)(a, m0, add, acc);
    SFX(lanes_out)(q, m0, add, acc2);
}

static void SFX(tile_sqdev)(const T *restrict x, chan_rect r, const T *restrict c, int m0,
                            int add, T *restrict acc)
{
    T a[CL], cc[CL];
    int64_t i, j;
    int l;
    for (l = 0; l < CL; l++) {
        T d;
        cc[l] = c[l];
        d = x[l] - cc[l];
        a[l] = d * d;
    }
    for (i = 0; i < r.n1; i++)
        for (j = i ? 0 : 1; j < r.n2; j++) {
            const T *p = x + i * r.s1 + j * r.s2;
            for (l = 0; l < CL; l++) {
                T d = p[l] - cc[l];
                a[l] += d * d;
            }
        }
    SFX(lanes_out)(a, m0, add, acc);
}

static void SFX(tile_dots)(const T *restrict u, const T *restrict x, chan_rect r,
                           const T *restrict c, int m0, int add, T *restrict acc,
                           T *restrict acc2)
{
    T a[CL], w[CL], cc[CL];
    int64_t i, j;
    int l;
    for (l = 0; l < CL; l++) {
        cc[l] = c[l];
        a[l] = u[l];
        w[l] = u[l] * (x[l] - cc[l]);
    }
    for (i = 0; i < r.n1; i++)
        for (j = i ? 0 : 1; j < r.n2; j++) {
            const T *pu = u + i * r.s1 + j * r.s2, *px = x + i * r.s1 + j * r.s2;
            for (l = 0; l < CL; l++) {
                a[l] += pu[l];
                w[l] += pu[l] * (px[l] - cc[l]);
            }
        }
    SFX(lanes_out)(a, m0, add, acc);
    SFX(lanes_out)(w, m0, add, acc2);
}

/* One strip of op CHAN_*; u is read by CHAN_DOTS only (dy). */
static void SFX(strip)(int op, const T *x, const T *u, chan_rect r, const T *c, int m0,
                       int add, T *acc, T *acc2)
{
    if (op == CHAN_SUMS)
        SFX(tile_sums)(x, r, c, m0, add, acc, acc2);
    else if (op == CHAN_SQDEV)
        SFX(tile_sqdev)(x, r, c, m0, add, acc);
    else
        SFX(tile_dots)(u, x, r, c, m0, add, acc, acc2);
}

/* Rows narrower than a strip (tiny inputs only): lane by lane. */
static void SFX(strip_narrow)(int op, const T *x, const T *u, chan_rect r, int64_t w,
                              const T *c, int add, T *acc, T *acc2)
{
    int64_t i, j, l;
    for (l = 0; l < w; l++) {
        T s = 0, s2 = 0;
        for (i = 0; i < r.n1; i++)
            for (j = 0; j < r.n2; j++) {
                int64_t o = i * r.s1 + j * r.s2 + l;
                T d = x[o] - c[l];
                if (op == CHAN_SUMS) {
                    s += d;
                    s2 += d * d;
                } else if (op == CHAN_SQDEV) {
                    s += d * d;
                } else {
                    s += u[o];
                    s2 += u[o] * d;
                }
            }
        acc[l] = add ? acc[l] + s : s;
        if (op != CHAN_SQDEV)
            acc2[l] = add ? acc2[l] + s2 : s2;
    }
}

/* Rows of w positions: whole strips, then the overlapping last one. */
static void SFX(strips)(int op, const T *x, const T *u, chan_rect r, int64_t w,
                        const T *c, int add, T *acc, T *acc2)
{
    int64_t o, rem = w % CL;
    for (o = 0; o + CL <= w; o += CL)
        SFX(strip)(op, x + o, u + o, r, c + o, 0, add, acc + o, acc2 + o);
    if (rem && w > CL)
        SFX(strip)(op, x + w - CL, u + w - CL, r, c + w - CL, (int)(CL - rem), add,
                   acc + w - CL, acc2 + w - CL);
    else if (rem)
        SFX(strip_narrow)(op, x, u, r, w, c, add, acc, acc2);
}

/* ---- planar blocks: one column, runs of len >= CL values ------------- *
 * One call: lanes a (and q) take the whole strips of every run, lanes t
 * (and tq) the overlapping last strip of each run (when len is not whole
 * strips), in a second short loop so that each keeps its lanes in
 * registers; of those only lanes m0.. count.  All start from the first
 * run and are folded here in a fixed order. */

/* sum of a[0..CL) and of t[m0..CL): halve the lanes three times in T, add
 * the last CL/8 in double. */
static double SFX(fold_lanes)(T *a, const T *t, int m0)
{
    double s = 0.0;
    int l;
    for (l = 0; l < CL; l++)
        a[l] += l >= m0 ? t[l] : (T)0;
    for (l = 0; l < CL / 2; l++)
        a[l] += a[l + CL / 2];
    for (l = 0; l < CL / 4; l++)
        a[l] += a[l + CL / 4];
    for (l = 0; l < CL / 8; l++)
        a[l] += a[l + CL / 8];
    for (l = 0; l < CL / 8; l++)
        s += a[l];
    return s;
}

/* CHAN_SUMS: sums of d = x - c and of d^2 */
static void SFX(block_sums)(const T *restrict x, int64_t runs, int64_t ld, int64_t len, T c,
                            double *s1, double *s2)
{
    T a[CL], q[CL], t[CL], tq[CL];
    int64_t i, o, last = len - CL;
    int l, m0 = len % CL ? CL - (int)(len % CL) : CL;
    for (l = 0; l < CL; l++) {
        T d = x[l] - c;
        a[l] = d;
        q[l] = d * d;
    }
    for (i = 0; i < runs; i++) {
        const T *p = x + i * ld;
        for (o = i ? 0 : CL; o + CL <= len; o += CL)
            for (l = 0; l < CL; l++) {
                T d = p[o + l] - c;
                a[l] += d;
                q[l] += d * d;
            }
    }
    if (m0 < CL) {
        for (l = 0; l < CL; l++) {
            T d = x[last + l] - c;
            t[l] = d;
            tq[l] = d * d;
        }
        for (i = 1; i < runs; i++) {
            const T *p = x + i * ld + last;
            for (l = 0; l < CL; l++) {
                T d = p[l] - c;
                t[l] += d;
                tq[l] += d * d;
            }
        }
    }
    *s1 = SFX(fold_lanes)(a, t, m0);
    *s2 = SFX(fold_lanes)(q, tq, m0);
}

/* CHAN_SQDEV: sum of (x - c)^2 */
static double SFX(block_sqdev)(const T *restrict x, int64_t runs, int64_t ld, int64_t len,
                               T c)
{
    T a[CL], t[CL];
    int64_t i, o, last = len - CL;
    int l, m0 = len % CL ? CL - (int)(len % CL) : CL;
    for (l = 0; l < CL; l++) {
        T d = x[l] - c, e = x[last + l] - c;
        a[l] = d * d;
        t[l] = e * e;
    }
    for (i = 0; i < runs; i++) {
        const T *p = x + i * ld;
        for (o = i ? 0 : CL; o + CL <= len; o += CL)
            for (l = 0; l < CL; l++) {
                T d = p[o + l] - c;
                a[l] += d * d;
            }
        if (i && m0 < CL)
            for (l = 0; l < CL; l++) {
                T d = p[last + l] - c;
                t[l] += d * d;
            }
    }
    return SFX(fold_lanes)(a, t, m0);
}

/* CHAN_DOTS: sums of u and of u * (x - c) */
static void SFX(block_dots)(const T *restrict u, const T *restrict x, int64_t runs,
                            int64_t ld, int64_t len, T c, double *su, double *sw)
{
    T a[CL], w[CL], t[CL], tw[CL];
    int64_t i, o, last = len - CL;
    int l, m0 = len % CL ? CL - (int)(len % CL) : CL;
    for (l = 0; l < CL; l++) {
        a[l] = u[l];
        w[l] = u[l] * (x[l] - c);
    }
    for (i = 0; i < runs; i++) {
        const T *pu = u + i * ld, *px = x + i * ld;
        for (o = i ? 0 : CL; o + CL <= len; o += CL)
            for (l = 0; l < CL; l++) {
                a[l] += pu[o + l];
                w[l] += pu[o + l] * (px[o + l] - c);
            }
    }
    if (m0 < CL) {
        for (l = 0; l < CL; l++) {
            t[l] = u[last + l];
            tw[l] = u[last + l] * (x[last + l] - c);
        }
        for (i = 1; i < runs; i++) {
            const T *pu = u + i * ld + last, *px = x + i * ld + last;
            for (l = 0; l < CL; l++) {
                t[l] += pu[l];
                tw[l] += pu[l] * (px[l] - c);
            }
        }
    }
    *su = SFX(fold_lanes)(a, t, m0);
    *sw = SFX(fold_lanes)(w, tw, m0);
}

/* acc[0..np) = 0 (rare: blocks shorter than one super-row). */
static void SFX(zero)(T *acc, int64_t np)
{
    int64_t j;
    for (j = 0; j < np; j++)
        acc[j] = 0;
}

/* Op over block B into the np position accumulators acc (and acc2), which
 * it overwrites: super-rows of pg positions (kw == 1: runs shorter than a
 * strip, lane by lane). */
static void SFX(visit)(int op, const chan_block *B, int64_t kw, int64_t pg, int64_t np,
                       const T *x, const T *u, const T *c, T *acc, T *acc2)
{
    const T *xb = x + B->off, *ub = u + B->off;
    chan_rect tail = { B->runs, B->ld, 1, 0 };
    if (kw == 1) {   /* len < CL: block_* take the others */
        SFX(zero)(acc, np);
        SFX(zero)(acc2, np);
        SFX(strip_narrow)(op, xb, ub, tail, B->len, c, 1, acc, acc2);
    } else {
        int64_t nsr = B->len / pg, rem = B->len % pg;
        chan_rect r = { B->runs, B->ld, nsr, pg };
        if (B->runs > 1) {   /* a tile of wide rows: short sweeps down them */
            int64_t i0;
            for (i0 = 0; i0 < B->runs; i0 += CHAN_SWEEP_ROWS) {
                chan_rect rg = { cnorm_min64(CHAN_SWEEP_ROWS, B->runs - i0), B->ld, 1, 0 };
                SFX(strips)(op, xb + i0 * B->ld, ub + i0 * B->ld, rg, B->len, c, i0 > 0,
                            acc, acc2);
            }
            return;
        }
        if (nsr) {
            SFX(strips)(op, xb, ub, r, pg, c, 0, acc, acc2);
        } else {
            SFX(zero)(acc, np);
            SFX(zero)(acc2, np);
        }
        if (rem)
            SFX(strips)(op, xb + nsr * pg, ub + nsr * pg, tail, rem, c, 1, acc, acc2);
    }
}

/* v[0..kw) repeated over np positions (np is a multiple of kw). */
static void SFX(replicate)(T *v, int64_t kw, int64_t np)
{
    int64_t i, k;
    if (kw == 1) {
        T v0 = v[0];
        for (i = 1; i < np; i++)
            v[i] = v0;
        return;
    }
    for (i = kw; i < np; i += kw)
        for (k = 0; k < kw; k++)
            v[i + k] = v[k];
}

/* Column totals of np position accumulators (fixed order; acc is
 * clobbered). */
static void SFX(fold)(T *acc, int64_t kw, int64_t np, double *out)
{
    int64_t i, k;
    for (i = kw; i < np; i += kw)
        for (k = 0; k < kw; k++)
            acc[k] += acc[i + k];
    for (k = 0; k < kw; k++)
        out[k] = acc[k];
}

/* Column totals out[0..kw) (and out2) of op over block B (c: centre per
 * position; u: dy for CHAN_DOTS); acc, acc2: room for np positions. */
static void SFX(reduce)(int op, const chan_block *B, int64_t kw, int64_t pg, int64_t np,
                        const T *x, const T *u, const T *c, T *acc, T *acc2, double *out,
                        double *out2)
{
    if (kw == 1 && B->len >= CL) {
        const T *xb = x + B->off;
        if (op == CHAN_SUMS)
            SFX(block_sums)(xb, B->runs, B->ld, B->len, c[0], out, out2);
        else if (op == CHAN_SQDEV)
            out[0] = SFX(block_sqdev)(xb, B->runs, B->ld, B->len, c[0]);
        else
            SFX(block_dots)(u + B->off, xb, B->runs, B->ld, B->len, c[0], out, out2);
        return;
    }
    SFX(visit)(op, B, kw, pg, np, x, u, c, acc, acc2);
    SFX(fold)(acc, kw, np, out);
    if (op != CHAN_SQDEV)
        SFX(fold)(acc2, kw, np, out2);
}

/* Position vector (np positions) of group g from a per-channel array, or
 * zeros when perchan is NULL. */
static void SFX(expand)(const chan_geom *G, int64_t g, const T *perchan, int64_t np, T *out)
{
    int64_t k0, kw, pg, k;
    chan_group(G, g, &k0, &kw, &pg);
    if (!perchan) {
        for (k = 0; k < kw; k++)
            out[k] = 0;
    } else if (G->planar) {
        out[0] = perchan[g];
    } else {   /* column k0 + k is channel (k0 + k) / S: counted, not divided */
        int64_t c = k0 / G->S, s = k0 % G->S;
        for (k = 0; k < kw; k++) {
            out[k] = perchan[c];
            if (++s == G->S) {
                s = 0;
                c++;
            }
        }
    }
    SFX(replicate)(out, kw, np);
}

/* Mean of column k of block B (nb values), in double: the rare path where
 * float32 sums overflowed (|x| near 1e36 and beyond) or x holds NaN/Inf,
 * which this reproduces. */
static double SFX(block_mean_wide)(const T *x, const chan_block *B, int64_t kw, int64_t k,
                                   double nb)
{
    double s = 0.0;
    int64_t i, t;
    for (i = 0; i < B->runs; i++) {
        const T *p = x + B->off + i * B->ld;
        for (t = k; t < B->len; t += kw)
            s += (double)p[t];
    }
    return s / nb;
}

/* Sum of squared deviations of column k of block B from mean, in double:
 * the rare path where float32 squares overflow or underflow. */
static double SFX(block_m2_wide)(const T *x, const chan_block *B, int64_t kw, int64_t k,
                                 double mean)
{
    double s = 0.0;
    int64_t i, t;
    for (i = 0; i < B->runs; i++) {
        const T *p = x + B->off + i * B->ld;
        for (t = k; t < B->len; t += kw) {
            double d = (double)p[t] - mean;
            s += d * d;
        }
    }
    return s;
}

/* Whether a block's m2 from float32 lanes may be wrong: squares that
 * overflowed (|x - mean| beyond ~1e19), or that fell below the normal range
 * (spread below ~1e-16), unless the block is constant (both passes exactly
 * 0).  Non-finite inputs make the mean non-finite: the caller skips those.
 * float64 lanes have nothing wider to fall back on. */
static int SFX(m2_unsafe)(double m2, double nb, double s1)
{
    if (sizeof(T) >= sizeof(double))
        return 0;
    return !isfinite(m2)
           || (m2 < nb * ((double)FLT_MIN / FLT_EPSILON) && (m2 != 0.0 || s1 != 0.0));
}

/* Moments of group g's columns over chunk q, block by block: one pass sums
 * deviations d = x - c from the block's first row and d^2; then
 * m2 = sum d^2 - (sum d)^2 / n loses at most 3 bits where
 * sum d^2 <= 8 m2 (c within 2.6 std of the mean).  Where it is not (or
 * values are non-finite), the exact second pass, the block now in L1:
 * squared deviations from the block mean rounded to T, corrected for that
 * rounding.  Blocks merge into the piece's (n, mean, m2) in double.
 * Returns n. */
static double SFX(piece_moments)(const chan_geom *G, const T *x, int64_t g, int64_t q,
                                 double *mean, double *m2)
{
    T acc[CHAN_PMAX], acc2[CHAN_PMAX], ctr[CHAN_PMAX];
    double s1[CHAN_TILE_MAX], bm[CHAN_TILE_MAX], bm2[CHAN_TILE_MAX], n = 0.0;
    int64_t k0, kw, pg, np, b, k;
    int64_t b1 = cnorm_min64(G->nblk, (q + 1) * G->cblk);
    chan_group(G, g, &k0, &kw, &pg);
    np = kw == 1 ? CL : pg;
    for (b = q * G->cblk; b < b1; b++) {
        int onepass = 1;
        chan_block B = chan_block_at(G, g, b);
        double nb = (double)(kw == 1 ? B.runs * B.len : B.runs * B.len / kw), inb = 1.0 / nb;
        if (kw == 1) {   /* no call to memcpy for one value */
            ctr[0] = x[B.off];
        } else {
            for (k = 0; k < kw; k++)
                ctr[k] = x[B.off + k];
        }
        if (kw > 1 || B.len < CL)   /* the block_* tiles take ctr[0] alone */
            SFX(replicate)(ctr, kw, np);
        SFX(reduce)(CHAN_SUMS, &B, kw, pg, np, x, x, ctr, acc, acc2, s1, bm2);
        for (k = 0; k < kw; k++) {
            double v = bm2[k];
            bm[k] = ctr[k] + s1[k] * inb;
            bm2[k] = v - s1[k] * (s1[k] * inb);
            onepass &= bm2[k] >= v * 0.125;
        }
        if (!onepass) {   /* rare: the exact second pass */
            for (k = 0; k < kw; k++)
                ctr[k] = (T)bm[k];
            SFX(replicate)(ctr, kw, np);
            SFX(reduce)(CHAN_SQDEV, &B, kw, pg, np, x, x, ctr, acc, acc2, bm2, NULL);
            for (k = 0; k < kw; k++) {
                double e = bm[k] - ctr[k];
                bm2[k] -= nb * e * e;
                if (bm2[k] < 0.0)   /* rounding only; a NaN fails the test and stays */
                    bm2[k] = 0.0;
            }
        }
        for (k = 0; k < kw; k++) {
            int wide = SFX(m2_unsafe)(bm2[k], nb, s1[k]);
            if (wide && !isfinite(bm[k]))   /* float32 sums overflowed, or NaN/Inf */
                bm[k] = SFX(block_mean_wide)(x, &B, kw, k, nb);
            if (wide && isfinite(bm[k]))
                bm2[k] = SFX(block_m2_wide)(x, &B, kw, k, bm[k]);
        }
        chan_merge_cols(n, mean, m2, nb, bm, bm2, kw);
        n += nb;
    }
    return n;
}

/* Backward sums of column k of block B in double (sum u, sum u * (x - c)):
 * the rare path where float32 lanes overflowed, or u or x holds NaN/Inf. */
static void SFX(block_dots_wide)(const T *u, const T *x, const chan_block *B, int64_t kw,
                                 int64_t k, double c, double *su, double *sw)
{
    double a = 0.0, w = 0.0;
    int64_t i, t;
    for (i = 0; i < B->runs; i++) {
        const T *pu = u + B->off + i * B->ld, *px = x + B->off + i * B->ld;
        for (t = k; t < B->len; t += kw) {
            a += (double)pu[t];
            w += (double)pu[t] * ((double)px[t] - c);
        }
    }
    *su = a;
    *sw = w;
}

/* Backward sums of group g's columns over chunk q, block by block, both
 * in one pass: lanes in T per block, blocks added in double. */
static void SFX(piece_dot)(const chan_geom *G, const T *dy, const T *x, const T *mean,
                           int64_t g, int64_t q, double *sdy, double *sdx)
{
    T acc[CHAN_PMAX], acc2[CHAN_PMAX], mp[CHAN_PMAX];
    double f[CHAN_TILE_MAX], f2[CHAN_TILE_MAX];
    int64_t k0, kw, pg, np, b, k;
    int64_t b1 = cnorm_min64(G->nblk, (q + 1) * G->cblk);
    chan_group(G, g, &k0, &kw, &pg);
    np = kw == 1 ? CL : pg;
    SFX(expand)(G, g, mean, np, mp);
    for (k = 0; k < kw; k++)
        sdy[k] = sdx[k] = 0.0;
    for (b = q * G->cblk; b < b1; b++) {
        chan_block B = chan_block_at(G, g, b);
        SFX(reduce)(CHAN_DOTS, &B, kw, pg, np, x, dy, mp, acc, acc2, f, f2);
        for (k = 0; k < kw; k++) {
            if (sizeof(T) < sizeof(double) && !(isfinite(f[k]) && isfinite(f2[k])))
                SFX(block_dots_wide)(dy, x, &B, kw, k, mp[k], &f[k], &f2[k]);
            sdy[k] += f[k];
            sdx[k] += f2[k];
        }
    }
}

/* ---- elementwise loops ------------------------------------------------ *
 * Training forward: y = (x - m) * a + b with m the mean rounded to T (x - m
 * is exact for x near m, so a constant channel gives exactly b); inference
 * and cnorm_channel_affine: m = 0, or the rows_scale loops.  Backward:
 * dx = (dy + a * (x - m)) * k1 + k3 (a = -invstd^2 * sum(dy*(x-m)) / M:
 * k1 * a may underflow T where a and k1 do not, e.g. for data near 1e30).
 * y may equal x (dx may equal dy): each loop exists out of place, with
 * restrict, and in place, with one pointer; plain loops, which GCC
 * vectorizes best (measured: strips with the constants held in registers,
 * or a temporary per strip, are slower). */

/* A planar run: per-channel constants in scalars. */
static void SFX(run_affine_oop)(const T *restrict x, T *restrict y, int64_t len, T m, T a,
                                T b)
{
    int64_t i;
    for (i = 0; i < len; i++)
        y[i] = (x[i] - m) * a + b;
}

static void SFX(run_affine_ip)(T *y, int64_t len, T m, T a, T b)
{
    int64_t i;
    for (i = 0; i < len; i++)
        y[i] = (y[i] - m) * a + b;
}

static void SFX(run_bwd_oop)(const T *restrict dy, const T *restrict x, T *restrict dx,
                             int64_t len, T m, T a, T k1, T k3)
{
    int64_t i;
    for (i = 0; i < len; i++)
        dx[i] = (dy[i] + a * (x[i] - m)) * k1 + k3;
}

static void SFX(run_bwd_ip)(T *d, const T *restrict x, int64_t len, T m, T a, T k1, T k3)
{
    int64_t i;
    for (i = 0; i < len; i++)
        d[i] = (d[i] + a * (x[i] - m)) * k1 + k3;
}

/* Streaming variants of the two planar out-of-place loops, for outputs far
 * larger than the caches (see CHAN_STREAM_BYTES): whole vectors go to
 * memory with non-temporal stores, which skip the read of each output line
 * that a plain store costs (measured, 308 MB float64 y = x * a + b: 47-55
 * ms plain, 33-40 ms streamed, memcpy 32-36 ms).  The first values up to
 * a vector-aligned y and the last partial vector are plain stores. */
#if CHAN_CAN_STREAM
#if defined(__AVX512F__)
#define CHAN_STREAM_VEC 64
#elif defined(__AVX__)
#define CHAN_STREAM_VEC 32
#else
#define CHAN_STREAM_VEC 16
#endif
typedef T SFX(vec) __attribute__((vector_size(CHAN_STREAM_VEC), aligned(CHAN_STREAM_VEC)));
#define CV ((int64_t)(CHAN_STREAM_VEC / sizeof(T)))

static inline SFX(vec) SFX(vload)(const T *p)
{
    SFX(vec) v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void SFX(vstream)(T *p, SFX(vec) v)
{
#if defined(__AVX512F__)
    if (sizeof(T) == 4)
        _mm512_stream_ps((float *)p, (__m512)v);
    else
        _mm512_stream_pd((double *)p, (__m512d)v);
#elif defined(__AVX__)
    if (sizeof(T) == 4)
        _mm256_stream_ps((float *)p, (__m256)v);
    else
        _mm256_stream_pd((double *)p, (__m256d)v);
#elif defined(__SSE2__)
    if (sizeof(T) == 4)
        _mm_stream_ps((float *)p, (__m128)v);
    else
        _mm_stream_pd((double *)p, (__m128d)v);
#else
    memcpy(p, &v, sizeof v);
#endif
}

/* Values before y + i is vector-aligned (or len). */
static inline int64_t SFX(stream_head)(const T *y, int64_t len)
{
    int64_t off = (int64_t)((uintptr_t)y % CHAN_STREAM_VEC);
    return off % (int64_t)sizeof(T) ? len   /* misaligned T: no streaming */
                                   : cnorm_min64(len, (CHAN_STREAM_VEC - off) % CHAN_STREAM_VEC
                                                          / (int64_t)sizeof(T));
}

static void SFX(run_affine_stream)(const T *restrict x, T *restrict y, int64_t len, T m, T a,
                                   T b)
{
    int64_t i = SFX(stream_head)(y, len), v;
    SFX(run_affine_oop)(x, y, i, m, a, b);
    for (v = i; v + CV <= len; v += CV)
        SFX(vstream)(y + v, (SFX(vload)(x + v) - m) * a + b);
    SFX(run_affine_oop)(x + v, y + v, len - v, m, a, b);
}

static void SFX(run_bwd_stream)(const T *restrict dy, const T *restrict x, T *restrict dx,
                                int64_t len, T m, T a, T k1, T k3)
{
    int64_t i = SFX(stream_head)(dx, len), v;
    SFX(run_bwd_oop)(dy, x, dx, i, m, a, k1, k3);
    for (v = i; v + CV <= len; v += CV)
        SFX(vstream)(dx + v, (SFX(vload)(dy + v) + a * (SFX(vload)(x + v) - m)) * k1 + k3);
    SFX(run_bwd_oop)(dy + v, x + v, dx + v, len - v, m, a, k1, k3);
}
#undef CV
#undef CHAN_STREAM_VEC
#else
static void SFX(run_affine_stream)(const T *restrict x, T *restrict y, int64_t len, T m, T a,
                                   T b)
{
    SFX(run_affine_oop)(x, y, len, m, a, b);
}

static void SFX(run_bwd_stream)(const T *restrict dy, const T *restrict x, T *restrict dx,
                                int64_t len, T m, T a, T k1, T k3)
{
    SFX(run_bwd_oop)(dy, x, dx, len, m, a, k1, k3);
}
#endif

/* Interleaved rows of w positions (rect r), per-position constants. */
static void SFX(rows_affine_oop)(const T *restrict x, T *restrict y, chan_rect r, int64_t w,
                                 const T *restrict m, const T *restrict a,
                                 const T *restrict b)
{
    int64_t i, j, l;
    for (i = 0; i < r.n1; i++)
        for (j = 0; j < r.n2; j++) {
            const T *p = x + i * r.s1 + j * r.s2;
            T *q = y + i * r.s1 + j * r.s2;
            for (l = 0; l < w; l++)
                q[l] = (p[l] - m[l]) * a[l] + b[l];
        }
}

static void SFX(rows_affine_ip)(T *y, chan_rect r, int64_t w, const T *restrict m,
                                const T *restrict a, const T *restrict b)
{
    int64_t i, j, l;
    for (i = 0; i < r.n1; i++)
        for (j = 0; j < r.n2; j++) {
            T *q = y + i * r.s1 + j * r.s2;
            for (l = 0; l < w; l++)
                q[l] = (q[l] - m[l]) * a[l] + b[l];
        }
}

/* y = x * a + b: inference and cnorm_channel_affine on interleaved rows
 * (one constant stream fewer than the centred form: measured faster). */
static void SFX(rows_scale_oop)(const T *restrict x, T *restrict y, chan_rect r, int64_t w,
                                const T *restrict a, const T *restrict b)
{
    int64_t i, j, l;
    for (i = 0; i < r.n1; i++)
        for (j = 0; j < r.n2; j++) {
            const T *p = x + i * r.s1 + j * r.s2;
            T *q = y + i * r.s1 + j * r.s2;
            for (l = 0; l < w; l++)
                q[l] = p[l] * a[l] + b[l];
        }
}

static void SFX(rows_scale_ip)(T *y, chan_rect r, int64_t w, const T *restrict a,
                               const T *restrict b)
{
    int64_t i, j, l;
    for (i = 0; i < r.n1; i++)
        for (j = 0; j < r.n2; j++) {
            T *q = y + i * r.s1 + j * r.s2;
            for (l = 0; l < w; l++)
                q[l] = q[l] * a[l] + b[l];
        }
}

static void SFX(rows_bwd_oop)(const T *restrict dy, const T *restrict x, T *restrict dx,
                              chan_rect r, int64_t w, const T *restrict m,
                              const T *restrict a, const T *restrict k1,
                              const T *restrict k3)
{
    int64_t i, j, l;
    for (i = 0; i < r.n1; i++)
        for (j = 0; j < r.n2; j++) {
            int64_t o = i * r.s1 + j * r.s2;
            const T *pd = dy + o, *px = x + o;
            T *q = dx + o;
            for (l = 0; l < w; l++)
                q[l] = (pd[l] + a[l] * (px[l] - m[l])) * k1[l] + k3[l];
        }
}

static void SFX(rows_bwd_ip)(T *d, const T *restrict x, chan_rect r, int64_t w,
                             const T *restrict m, const T *restrict a,
                             const T *restrict k1, const T *restrict k3)
{
    int64_t i, j, l;
    for (i = 0; i < r.n1; i++)
        for (j = 0; j < r.n2; j++) {
            int64_t o = i * r.s1 + j * r.s2;
            const T *px = x + o;
            T *q = d + o;
            for (l = 0; l < w; l++)
                q[l] = (q[l] + a[l] * (px[l] - m[l])) * k1[l] + k3[l];
        }
}

/* ---- drivers ---------------------------------------------------------- *
 * A job holds one call's arguments; tasks run one piece (or, fused, one
 * channel) of it under chan_parallel. */

typedef struct {
    const chan_geom *G;
    chan_scratch s;
    const T *x, *dy;
    T *y;
    int bwd;                       /* elementwise pass: 0 affine, 1 backward */
    int stream;                    /* planar out-of-place: non-temporal stores */
    int act;                       /* forward: CNORM_ACT_* on y, run by run */
    const T *m;                    /* its per-channel centre, or NULL (0) */
    const T *p1, *p2, *p3;         /* affine: scale, shift; backward: a, k1, k3 */
    T *coef;                       /* where train/backward compute them */
    T *wide;                       /* interleaved rows wider than a tile with
                                    * S > 1: room for their per-column constants */
    double count;                  /* values per channel, N*S */
    /* training forward */
    const T *weight, *bias;
    double eps;
    const cnorm_renorm *renorm;
    double *mean, *var;
    /* backward */
    const T *invstd;
    double *sum_dy, *sum_dy_xhat;
} SFX(chan_job);

/* Elementwise pass over planar runs r0, r0 + step, ... (< r1); run
 * r = n*C + c. */
static void SFX(apply_runs)(const SFX(chan_job) *j, int64_t r0, int64_t r1, int64_t step)
{
    const chan_geom *G = j->G;
    int64_t r, c = r0 % G->C, S = G->S;
    for (r = r0; r < r1; r += step) {
        T m = j->m ? j->m[c] : (T)0;
        const T *x = j->x + r * S;
        T *y = j->y + r * S;
        if (j->bwd) {
            const T *dy = j->dy + r * S;
            if (dy == y)
                SFX(run_bwd_ip)(y, x, S, m, j->p1[c], j->p2[c], j->p3[c]);
            else if (j->stream)
                SFX(run_bwd_stream)(dy, x, y, S, m, j->p1[c], j->p2[c], j->p3[c]);
            else
                SFX(run_bwd_oop)(dy, x, y, S, m, j->p1[c], j->p2[c], j->p3[c]);
        } else if (x == y) {
            SFX(run_affine_ip)(y, S, m, j->p1[c], j->p2[c]);
        } else if (j->stream) {
            SFX(run_affine_stream)(x, y, S, m, j->p1[c], j->p2[c]);
        } else {
            SFX(run_affine_oop)(x, y, S, m, j->p1[c], j->p2[c]);
        }
        if (!j->bwd && j->act)   /* the run is in cache: no streaming with act */
            SFX(activate)(y, S, j->act);
        c += step;
        while (c >= G->C)
            c -= G->C;
    }
    if (j->stream)   /* this thread's streamed stores, visible before its task ends */
        chan_sfence();
}

/* Interleaved elementwise pass over x[o0, o1): whole super-rows of w
 * positions with per-position constants m (or NULL), c1, c2, c3, then a
 * last partial one. */
static void SFX(apply_span)(const SFX(chan_job) *j, int64_t o0, int64_t o1, int64_t w,
                            const T *m, const T *c1, const T *c2, const T *c3)
{
    int64_t nsr = (o1 - o0) / w, part;
    for (part = 0; part < 2; part++) {
        int64_t o = o0 + (part ? nsr * w : 0), wd = part ? (o1 - o0) % w : w;
        chan_rect r = { 1, 0, part ? 1 : nsr, w };
        if (r.n2 == 0 || wd == 0)
            continue;
        if (j->bwd && j->dy == j->y)
            SFX(rows_bwd_ip)(j->y + o, j->x + o, r, wd, m, c1, c2, c3);
        else if (j->bwd)
            SFX(rows_bwd_oop)(j->dy + o, j->x + o, j->y + o, r, wd, m, c1, c2, c3);
        else if (m && j->x == j->y)
            SFX(rows_affine_ip)(j->y + o, r, wd, m, c1, c2);
        else if (m)
            SFX(rows_affine_oop)(j->x + o, j->y + o, r, wd, m, c1, c2);
        else if (j->x == j->y)
            SFX(rows_scale_ip)(j->y + o, r, wd, c1, c2);
        else
            SFX(rows_scale_oop)(j->x + o, j->y + o, r, wd, c1, c2);
        if (!j->bwd && j->act)   /* the span just written, still in L2 */
            SFX(activate)(j->y + o, r.n2 * wd, j->act);
    }
}

/* Width of the interleaved elementwise unit: a super-row (constants
 * expanded per task, on the stack) or, wider than a tile, a whole row. */
static int64_t SFX(unit_width)(const chan_geom *G)
{
    return G->ngrp == 1 ? G->P : G->K;
}

/* Elementwise task p: planar, runs [p*rpt, (p+1)*rpt) in memory order;
 * interleaved, units [p*upt, (p+1)*upt) in memory order. */
static void SFX(task_apply)(const void *job, int64_t p)
{
    const SFX(chan_job) *j = job;
    const chan_geom *G = j->G;
    int64_t w, upt;
    if (G->planar) {
        SFX(apply_runs)(j, p * G->rpt, cnorm_min64(G->N * G->C, (p + 1) * G->rpt), 1);
        return;
    }
    w = SFX(unit_width)(G);
    upt = cnorm_max64(1, CHAN_CHUNK / w);
    if (G->ngrp == 1) {
        T c0[CHAN_PMAX], c1[CHAN_PMAX], c2[CHAN_PMAX], c3[CHAN_PMAX];
        SFX(expand)(G, 0, j->m, w, c0);
        SFX(expand)(G, 0, j->p1, w, c1);
        SFX(expand)(G, 0, j->p2, w, c2);
        if (j->bwd)
            SFX(expand)(G, 0, j->p3, w, c3);
        SFX(apply_span)(j, p * upt * w, cnorm_min64(G->total, (p + 1) * upt * w), w,
                        j->m ? c0 : NULL, c1, c2, c3);
    } else if (G->S == 1) {   /* per-column = per-channel */
        SFX(apply_span)(j, p * upt * w, cnorm_min64(G->total, (p + 1) * upt * w), w,
                        j->m, j->p1, j->p2, j->p3);
    } else {                  /* expanded by run_apply */
        const T *e = j->wide;
        int64_t K = G->K;
        SFX(apply_span)(j, p * upt * w, cnorm_min64(G->total, (p + 1) * upt * w), w,
                        j->m ? e : NULL, e + K, e + 2 * K, e + 3 * K);
    }
}

/* Values of scratch run_apply needs for interleaved rows wider than a
 * tile with S > 1 (their per-column constants). */
static int64_t SFX(wide_size)(const chan_geom *G)
{
    return !G->planar && G->ngrp > 1 && G->S > 1 ? 4 * G->K : 0;
}

/* The elementwise pass over all of x. */
static void SFX(run_apply)(SFX(chan_job) *j)
{
    const chan_geom *G = j->G;
    int64_t n, k, K = G->K;
    if (G->planar) {
        n = cnorm_cdiv64(G->N * G->C, G->rpt);
    } else {
        int64_t w = SFX(unit_width)(G);
        n = cnorm_cdiv64(cnorm_cdiv64(G->total, w), cnorm_max64(1, CHAN_CHUNK / w));
        if (SFX(wide_size)(G))
            for (k = 0; k < K; k++) {
                int64_t c = k / G->S;
                j->wide[k] = j->m ? j->m[c] : (T)0;
                j->wide[K + k] = j->p1[c];
                j->wide[2 * K + k] = j->p2[c];
                j->wide[3 * K + k] = j->bwd ? j->p3[c] : (T)0;
            }
    }
    chan_parallel(cnorm_threads_for(G->total, n), n, SFX(task_apply), j);
}

/* Reduction tasks: p = q * ngrp + g runs piece (g, q), so that threads
 * walk memory in order (chunk by chunk); results go to fixed slots. */
static void SFX(task_moments)(const void *job, int64_t p)
{
    const SFX(chan_job) *j = job;
    const chan_geom *G = j->G;
    int64_t g = p % G->ngrp, q = p / G->ngrp, k0, kw, pg;
    chan_group(G, g, &k0, &kw, &pg);
    j->s.cnt[g * G->nchunk + q] = SFX(piece_moments)(G, j->x, g, q, j->s.a + q * G->ncol + k0,
                                     j->s.b + q * G->ncol + k0);
}

static void SFX(task_dot)(const void *job, int64_t p)
{
    const SFX(chan_job) *j = job;
    const chan_geom *G = j->G;
    int64_t g = p % G->ngrp, q = p / G->ngrp, k0, kw, pg;
    chan_group(G, g, &k0, &kw, &pg);
    SFX(piece_dot)(G, j->dy, j->x, j->m, g, q, j->s.a + q * G->ncol + k0,
                   j->s.b + q * G->ncol + k0);
}

/* Channel c of a training forward once its pieces are reduced: merge them,
 * write mean/var (and r/d), and its centre/scale/shift into coef. */
static void SFX(train_channel)(const SFX(chan_job) *j, int64_t c)
{
    double m, m2, scale, shift;
    int64_t C = j->G->C;
    T mt;
    if (j->G->planar)   /* interleaved groups were merged before */
        chan_merge_group(j->G, c, j->s.cnt, j->s.a, j->s.b);
    chan_channel_moments(j->G, c, j->s.a, j->s.b, &m, &m2);
    mt = (T)m;
    chan_train_coefs(c, j->count, m, m2, (double)mt,
                     j->weight ? (double)j->weight[c] : 1.0,
                     j->bias ? (double)j->bias[c] : 0.0, j->eps, j->renorm, &scale, &shift);
    j->mean[c] = m;
    j->var[c] = m2 / j->count;
    j->coef[c] = mt;
    j->coef[C + c] = (T)scale;
    j->coef[2 * C + c] = (T)shift;
}

/* Channel c of a backward once its pieces are reduced: sums, outputs and
 * the dx = (dy + a*(x - mean)) * k1 + k3 constants (when dx is wanted). */
static void SFX(bwd_channel)(const SFX(chan_job) *j, int64_t c)
{
    double sdy, sdx;
    int64_t C = j->G->C;
    if (j->G->planar)
        chan_sum_group(j->G, c, j->s.a, j->s.b);
    chan_channel_sums(j->G, c, j->s.a, j->s.b, &sdy, &sdx);
    double is = j->invstd[c], M = j->count;
    double k1 = (j->weight ? (double)j->weight[c] : 1.0) * is;
    j->sum_dy[c] = sdy;
    j->sum_dy_xhat[c] = is * sdx;
    if (j->y) {
        j->coef[c] = (T)(-is * is * sdx / M);
        j->coef[C + c] = (T)k1;
        j->coef[2 * C + c] = (T)(-k1 * sdy / M);
    }
}

/* Fused per channel: reduce its pieces, finish it, and run its elementwise
 * pass while its data is still in L2. */
static void SFX(task_train_fused)(const void *job, int64_t c)
{
    const SFX(chan_job) *j = job;
    int64_t q;
    for (q = 0; q < j->G->nchunk; q++)
        SFX(task_moments)(job, q * j->G->ngrp + c);
    SFX(train_channel)(j, c);
    SFX(apply_runs)(j, c, j->G->N * j->G->C, j->G->C);
}

static void SFX(task_bwd_fused)(const void *job, int64_t c)
{
    const SFX(chan_job) *j = job;
    int64_t q;
    for (q = 0; q < j->G->nchunk; q++)
        SFX(task_dot)(job, q * j->G->ngrp + c);
    SFX(bwd_channel)(j, c);
    SFX(apply_runs)(j, c, j->G->N * j->G->C, j->G->C);
}

/* Runs `task` over every reduction piece. */
static void SFX(run_pieces)(SFX(chan_job) *j, void (*task)(const void *, int64_t))
{
    int64_t np = j->G->ngrp * j->G->nchunk;
    chan_parallel(cnorm_threads_for(j->G->total, np), np, task, j);
}

/* Interleaved partials: merge each column tile's chunks (planar channels
 * are merged per channel by train_channel / bwd_channel). */
static void SFX(merge_tiles)(SFX(chan_job) *j, int moments)
{
    int64_t g;
    if (j->G->planar)
        return;
    for (g = 0; g < j->G->ngrp; g++) {
        if (moments)
            chan_merge_group(j->G, g, j->s.cnt, j->s.a, j->s.b);
        else
            chan_sum_group(j->G, g, j->s.a, j->s.b);
    }
}

static int SFX(cnorm_channel_moments)(const T *x, int64_t N, int64_t C, int64_t S,
                                      double *mean, double *m2)
{
    chan_geom G;
    SFX(chan_job) j = { 0 };
    int64_t c;
    int status = chan_prologue(N, C, S, mean, m2);
    if (status != CHAN_GO_ON)
        return status;
    chan_geom_init(&G, N, C, S, sizeof(T));
    if (chan_scratch_alloc(&G, 0, 0, &j.s) != CNORM_OK)
        return CNORM_ENOMEM;
    j.G = &G;
    j.x = x;
    SFX(run_pieces)(&j, SFX(task_moments));
    SFX(merge_tiles)(&j, 1);
    for (c = 0; c < C; c++) {
        if (G.planar)
            chan_merge_group(&G, c, j.s.cnt, j.s.a, j.s.b);
        chan_channel_moments(&G, c, j.s.a, j.s.b, &mean[c], &m2[c]);
    }
    chan_scratch_free(&j.s);
    return CNORM_OK;
}

/* The elementwise pass y = (x - center[c]) * scale[c] + shift[c] (center
 * NULL: 0); scratch for wide interleaved rows is allocated here (ENOMEM
 * before anything is written). */
static int SFX(affine)(const chan_geom *G, const T *x, const T *center, const T *scale,
                       const T *shift, int act, T *y)
{
    SFX(chan_job) j = { 0 };
    int64_t nw = SFX(wide_size)(G);
    j.G = G;
    j.x = x;
    j.m = center;
    j.y = y;
    j.act = act;
    j.stream = !act && chan_stream(G, sizeof(T), x, y);
    j.p1 = scale;
    j.p2 = shift;
    if (nw && !(j.wide = malloc((size_t)nw * sizeof(T))))
        return CNORM_ENOMEM;
    SFX(run_apply)(&j);
    free(j.wide);
    return CNORM_OK;
}

static int SFX(cnorm_channel_affine)(const T *x, int64_t N, int64_t C, int64_t S,
                                     const T *scale, const T *shift, T *y)
{
    chan_geom G;
    if (N < 0 || C < 0 || S < 0)
        return CNORM_EINVAL;
    if (N == 0 || C == 0 || S == 0)
        return CNORM_OK;
    chan_geom_init(&G, N, C, S, sizeof(T));
    return SFX(affine)(&G, x, NULL, scale, shift, CNORM_ACT_NONE, y);
}

/* The centred form keeps x - center exact for x near center, so data far
 * from 0 (mean 1e6, std 1) standardizes to full precision. */
static int SFX(cnorm_channel_standardize)(const T *x, int64_t N, int64_t C, int64_t S,
                                          const T *center, const T *scale, const T *shift,
                                          int activation, T *y)
{
    chan_geom G;
    if (N < 0 || C < 0 || S < 0 || !cnorm_activation_valid(activation))
        return CNORM_EINVAL;
    if (N == 0 || C == 0 || S == 0)
        return CNORM_OK;
    chan_geom_init(&G, N, C, S, sizeof(T));
    return SFX(affine)(&G, x, center, scale, shift, activation, y);
}

/* y = x * scale + shift with scale = weight / sqrt(running_var + eps) and
 * shift = bias - running_mean * scale: one constant stream fewer than the
 * centred form of the training pass, which the interleaved layouts feel. */
static int SFX(cnorm_bn_forward_infer)(const T *x, int64_t N, int64_t C, int64_t S,
                                       const T *running_mean, const T *running_var,
                                       const T *weight, const T *bias, double eps,
                                       int activation, T *y)
{
    enum { STACK_C = 256 };   /* typical layers need no allocation */
    T stack[2 * STACK_C], *coef = stack;
    if (!cnorm_activation_valid(activation))
        return CNORM_EINVAL;
    chan_geom G;
    int64_t c;
    int rc;
    if (N < 0 || C < 0 || S < 0)
        return CNORM_EINVAL;
    if (N == 0 || C == 0 || S == 0)
        return CNORM_OK;
    if (C > STACK_C && !(coef = malloc((size_t)(2 * C) * sizeof(T))))
        return CNORM_ENOMEM;
    for (c = 0; c < C; c++) {
        double scale = (weight ? (double)weight[c] : 1.0) /
                       sqrt((double)running_var[c] + eps);
        coef[c] = (T)scale;
        coef[C + c] = (T)((bias ? (double)bias[c] : 0.0) - (double)running_mean[c] * scale);
    }
    chan_geom_init(&G, N, C, S, sizeof(T));
    rc = SFX(affine)(&G, x, NULL, coef, coef + C, activation, y);
    if (coef != stack)
        free(coef);
    return rc;
}

static int SFX(cnorm_bn_forward_train)(const T *x, int64_t N, int64_t C, int64_t S,
                                       const T *weight, const T *bias, double eps,
                                       int activation, const cnorm_renorm *renorm,
                                       T *y, double *mean, double *var)
{
    chan_geom G;
    SFX(chan_job) j = { 0 };
    int64_t c;
    int status = cnorm_activation_valid(activation) ? chan_prologue(N, C, S, mean, var)
                                                    : CNORM_EINVAL;
    if (status != CHAN_GO_ON)
        return status;
    chan_geom_init(&G, N, C, S, sizeof(T));
    if (chan_scratch_alloc(&G, 3 * C + SFX(wide_size)(&G), sizeof(T), &j.s) != CNORM_OK)
        return CNORM_ENOMEM;
    j.G = &G;
    j.x = x;
    j.y = y;
    j.act = activation;
    j.stream = !activation && chan_stream(&G, sizeof(T), x, y);
    j.coef = j.s.coef;
    j.wide = j.coef + 3 * C;
    j.m = j.coef;
    j.p1 = j.coef + C;
    j.p2 = j.coef + 2 * C;
    j.count = (double)(N * S);
    j.weight = weight;
    j.bias = bias;
    j.eps = eps;
    j.renorm = renorm;
    j.mean = mean;
    j.var = var;
    if (chan_fuse(&G, sizeof(T), 1)) {
        chan_parallel(cnorm_threads_for(G.total, C), C, SFX(task_train_fused), &j);
    } else {
        SFX(run_pieces)(&j, SFX(task_moments));
        SFX(merge_tiles)(&j, 1);
        for (c = 0; c < C; c++)
            SFX(train_channel)(&j, c);
        SFX(run_apply)(&j);
    }
    chan_scratch_free(&j.s);
    return CNORM_OK;
}

static int SFX(cnorm_bn_backward)(const T *dy, const T *x, int64_t N, int64_t C, int64_t S,
                                  const T *mean, const T *invstd, const T *weight, T *dx,
                                  double *sum_dy, double *sum_dy_xhat)
{
    chan_geom G;
    SFX(chan_job) j = { 0 };
    int64_t c;
    int status = chan_prologue(N, C, S, sum_dy, sum_dy_xhat);
    if (status != CHAN_GO_ON)
        return status;
    chan_geom_init(&G, N, C, S, sizeof(T));
    if (chan_scratch_alloc(&G, dx ? 3 * C + SFX(wide_size)(&G) : 0, sizeof(T), &j.s)
        != CNORM_OK)
        return CNORM_ENOMEM;
    j.G = &G;
    j.x = x;
    j.dy = dy;
    j.y = dx;
    j.bwd = 1;
    j.stream = dx && chan_stream(&G, sizeof(T), x, dx);
    j.m = mean;
    j.coef = j.s.coef;
    j.wide = j.coef + 3 * C;
    j.p1 = j.coef;
    j.p2 = j.coef + C;
    j.p3 = j.coef + 2 * C;
    j.count = (double)(N * S);
    j.weight = weight;
    j.invstd = invstd;
    j.sum_dy = sum_dy;
    j.sum_dy_xhat = sum_dy_xhat;
    if (dx && chan_fuse(&G, sizeof(T), 2)) {
        chan_parallel(cnorm_threads_for(G.total, C), C, SFX(task_bwd_fused), &j);
    } else {
        SFX(run_pieces)(&j, SFX(task_dot));
        SFX(merge_tiles)(&j, 0);
        for (c = 0; c < C; c++)
            SFX(bwd_channel)(&j, c);
        if (dx)
            SFX(run_apply)(&j);
    }
    chan_scratch_free(&j.s);
    return CNORM_OK;
}

/* The elementwise pass of cnorm_bn_backward alone, from sums and a count
 * that need not be this call's own (statistics over several processes). */
static int SFX(cnorm_bn_backward_dx)(const T *dy, const T *x, int64_t N, int64_t C, int64_t S,
                                     const T *mean, const T *invstd, const T *weight,
                                     const double *sum_dy, const double *sum_dy_xhat,
                                     double count, T *dx)
{
    chan_geom G;
    SFX(chan_job) j = { 0 };
    T *coef;
    int64_t c;
    if (N < 0 || C < 0 || S < 0 || !(count > 0.0))
        return CNORM_EINVAL;
    if (N == 0 || C == 0 || S == 0)
        return CNORM_OK;
    chan_geom_init(&G, N, C, S, sizeof(T));
    if (!(coef = malloc((size_t)(3 * C + SFX(wide_size)(&G)) * sizeof(T))))
        return CNORM_ENOMEM;
    for (c = 0; c < C; c++) {   /* bwd_channel's coefficients, with the given sums */
        const double is = invstd[c], k1 = (weight ? (double)weight[c] : 1.0) * is;
        coef[c] = (T)(-is * sum_dy_xhat[c] / count);
        coef[C + c] = (T)k1;
        coef[2 * C + c] = (T)(-k1 * sum_dy[c] / count);
    }
    j.G = &G;
    j.x = x;
    j.dy = dy;
    j.y = dx;
    j.bwd = 1;
    j.stream = chan_stream(&G, sizeof(T), x, dx);
    j.m = mean;
    j.p1 = coef;
    j.p2 = coef + C;
    j.p3 = coef + 2 * C;
    j.wide = coef + 3 * C;
    SFX(run_apply)(&j);
    free(coef);
    return CNORM_OK;
}

#undef CL

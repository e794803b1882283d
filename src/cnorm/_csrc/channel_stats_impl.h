/* Channel family, statistics (see channel.c for the parts): a block's
 * column totals from the tiles, and a piece's moments or dot sums from its
 * blocks.  Statistics are one pass per block, sums of d = x - c and d^2
 * with c the block's first value, checked: where that could lose more than
 * 3 bits (c far from the mean) or values are not finite, the block (then in
 * L1) gets an exact second pass; float32 squares that overflow or
 * underflow are redone in double.  Blocks merge with Chan's formula in
 * double (docs/design.md, "Statistics").  Part of channel_impl.h. */

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

/* What column k's block means are kept relative to: its first value (row
 * 0's; a planar channel's first run's), the same for every block and piece,
 * so that merges subtract offsets of the data's spread rather than means
 * rounded to double (float64 at mean 1e8, std 1: m2 kept 1e-10 of its
 * precision that way); 0 where that value is not finite. */
static double SFX(column_base)(const chan_geom *G, const T *x, int64_t k)
{
    const double v = (double)x[G->planar ? k * G->S : k];
    return isfinite(v) ? v : 0.0;
}

/* Moments of group g's columns over chunk q, block by block: one pass sums
 * deviations d = x - c from the block's first row and d^2; then
 * m2 = sum d^2 - (sum d)^2 / n loses at most 3 bits where
 * sum d^2 <= 8 m2 (c within 2.6 std of the mean).  Where it is not (or
 * values are non-finite), the exact second pass, the block now in L1:
 * squared deviations from the block mean rounded to T, corrected for that
 * rounding.  Blocks merge into the piece's (n, mean, m2) in double, the
 * mean less column_base.
 * Returns n. */
static double SFX(piece_moments_tiles)(const chan_geom *G, const T *x, int64_t g,
                                       int64_t q, double *mean, double *m2)
{
    T acc[CHAN_PMAX], acc2[CHAN_PMAX], ctr[CHAN_PMAX];
    double s1[CHAN_TILE_MAX], bm[CHAN_TILE_MAX], bm2[CHAN_TILE_MAX], off[CHAN_TILE_MAX];
    double base[CHAN_TILE_MAX], n = 0.0;
    int64_t k0, kw, pg, np, b, k;
    int64_t b1 = cnorm_min64(G->nblk, (q + 1) * G->cblk);
    chan_group(G, g, &k0, &kw, &pg);
    np = kw == 1 ? CL : pg;
    for (k = 0; k < kw; k++)
        base[k] = SFX(column_base)(G, x, k0 + k);
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
            off[k] = ((double)ctr[k] - base[k]) + s1[k] * inb;
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
            if (wide && !isfinite(bm[k])) {   /* float32 sums overflowed, or NaN/Inf */
                bm[k] = SFX(block_mean_wide)(x, &B, kw, k, nb);
                off[k] = bm[k] - base[k];
            }
            if (wide && isfinite(bm[k]))
                bm2[k] = SFX(block_m2_wide)(x, &B, kw, k, bm[k]);
        }
        cnorm_merge_cols(n, mean, m2, nb, off, bm2, kw);
        n += nb;
    }
    return n;
}

/* piece_moments of a planar channel g (one column, runs of at least CL
 * values, so every block goes to block_sums directly): the same steps and
 * bits with scalars, without the position arrays that interleaved tiles
 * need (a tiny call spends most of its time on that bookkeeping). */
static double SFX(piece_moments_planar)(const chan_geom *G, const T *x, int64_t g,
                                        int64_t q, double *mean, double *m2)
{
    const double base = SFX(column_base)(G, x, g);
    double n = 0.0;
    int64_t b, b1 = cnorm_min64(G->nblk, (q + 1) * G->cblk);
    for (b = q * G->cblk; b < b1; b++) {
        chan_block B = chan_block_at(G, g, b);
        const T *xb = x + B.off, c = xb[0];
        double nb = (double)(B.runs * B.len), inb = 1.0 / nb, s1, v, bm, bm2, off;
        SFX(block_sums)(xb, B.runs, B.ld, B.len, c, &s1, &v);
        bm = c + s1 * inb;
        off = ((double)c - base) + s1 * inb;
        bm2 = v - s1 * (s1 * inb);
        if (!(bm2 >= v * 0.125)) {   /* rare: the exact second pass */
            const T ct = (T)bm;
            const double e = bm - ct;
            bm2 = SFX(block_sqdev)(xb, B.runs, B.ld, B.len, ct) - nb * e * e;
            if (bm2 < 0.0)
                bm2 = 0.0;
        }
        if (SFX(m2_unsafe)(bm2, nb, s1)) {
            if (!isfinite(bm)) {
                bm = SFX(block_mean_wide)(x, &B, 1, 0, nb);
                off = bm - base;
            }
            if (isfinite(bm))
                bm2 = SFX(block_m2_wide)(x, &B, 1, 0, bm);
        }
        cnorm_merge_cols(n, mean, m2, nb, &off, &bm2, 1);
        n += nb;
    }
    return n;
}

/* Moments of group g over chunk q into mean (less column_base) and m2 (kw
 * columns); returns
 * the count per column. */
static double SFX(piece_moments)(const chan_geom *G, const T *x, int64_t g, int64_t q,
                                 double *mean, double *m2)
{
    return G->planar ? SFX(piece_moments_planar)(G, x, g, q, mean, m2)
                     : SFX(piece_moments_tiles)(G, x, g, q, mean, m2);
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
static void SFX(piece_dot_tiles)(const chan_geom *G, const T *dy, const T *x,
                                 const T *mean, int64_t g, int64_t q, double *sdy,
                                 double *sdx)
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

/* piece_dot of a planar channel g: block_dots directly, with its centre a
 * scalar (the same bits; see piece_moments_planar). */
static void SFX(piece_dot_planar)(const chan_geom *G, const T *dy, const T *x, const T *mean,
                                  int64_t g, int64_t q, double *sdy, double *sdx)
{
    const T c = mean ? mean[g] : (T)0;
    int64_t b, b1 = cnorm_min64(G->nblk, (q + 1) * G->cblk);
    double a = 0.0, w = 0.0;
    for (b = q * G->cblk; b < b1; b++) {
        chan_block B = chan_block_at(G, g, b);
        double f, f2;
        SFX(block_dots)(dy + B.off, x + B.off, B.runs, B.ld, B.len, c, &f, &f2);
        if (sizeof(T) < sizeof(double) && !(isfinite(f) && isfinite(f2)))
            SFX(block_dots_wide)(dy, x, &B, 1, 0, c, &f, &f2);
        a += f;
        w += f2;
    }
    *sdy = a;
    *sdx = w;
}

/* Backward sums of group g over chunk q into sdy and sdx (kw columns). */
static void SFX(piece_dot)(const chan_geom *G, const T *dy, const T *x, const T *mean,
                           int64_t g, int64_t q, double *sdy, double *sdx)
{
    if (G->planar)
        SFX(piece_dot_planar)(G, dy, x, mean, g, q, sdy, sdx);
    else
        SFX(piece_dot_tiles)(G, dy, x, mean, g, q, sdy, sdx);
}

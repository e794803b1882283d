/* Channel family body for one element type; included by channel.c with T
 * and SFX defined (see common.h).  No include guard on purpose. */

/* ---- tiles: the vectorizable loops, no OpenMP ------------------------ *
 * A tile runs over a rect of rows (chan_rect).  Reduction tiles take one
 * strip of w <= LANES columns: full strips sum into local lanes with a
 * constant-length loop, so the lanes stay in registers, and add them to the
 * caller's accumulators at the end; the rare edge strips (w < LANES) run
 * the same update directly. */

/* acc += x - c: pass 1, deviations from a shift. */
static void SFX(tile_sum)(const T *restrict x, chan_rect r, const T *restrict c,
                          T *restrict acc)
{
    int64_t i, j;
    int l;
    if (r.w < LANES) {
        for (i = 0; i < r.n1; i++)
            for (j = 0; j < r.n2; j++)
                for (l = 0; l < r.w; l++)
                    acc[l] += x[i * r.s1 + j * r.s2 + l] - c[l];
        return;
    }
    T a[LANES] = { 0 }, cc[LANES];
    for (l = 0; l < LANES; l++)
        cc[l] = c[l];
    for (i = 0; i < r.n1; i++)
        for (j = 0; j < r.n2; j++) {
            const T *p = x + i * r.s1 + j * r.s2;
            for (l = 0; l < LANES; l++)
                a[l] += p[l] - cc[l];
        }
    for (l = 0; l < LANES; l++)
        acc[l] += a[l];
}

/* acc += (x - c)^2: pass 2, squared deviations from the block mean. */
static void SFX(tile_sqdev)(const T *restrict x, chan_rect r, const T *restrict c,
                            T *restrict acc)
{
    int64_t i, j;
    int l;
    if (r.w < LANES) {
        for (i = 0; i < r.n1; i++)
            for (j = 0; j < r.n2; j++)
                for (l = 0; l < r.w; l++) {
                    T d = x[i * r.s1 + j * r.s2 + l] - c[l];
                    acc[l] += d * d;
                }
        return;
    }
    T a[LANES] = { 0 }, cc[LANES];
    for (l = 0; l < LANES; l++)
        cc[l] = c[l];
    for (i = 0; i < r.n1; i++)
        for (j = 0; j < r.n2; j++) {
            const T *p = x + i * r.s1 + j * r.s2;
            for (l = 0; l < LANES; l++) {
                T d = p[l] - cc[l];
                a[l] += d * d;
            }
        }
    for (l = 0; l < LANES; l++)
        acc[l] += a[l];
}

/* acc += u * (v - c): the backward sum of dy * (x - mean).  (The sum of dy
 * is tile_sum with c = 0: one accumulator per loop is what GCC's SLP
 * vectorizes reliably; a shared load feeding two accumulators is not.) */
static void SFX(tile_wdev)(const T *restrict u, const T *restrict v, chan_rect r,
                           const T *restrict c, T *restrict acc)
{
    int64_t i, j;
    int l;
    if (r.w < LANES) {
        for (i = 0; i < r.n1; i++)
            for (j = 0; j < r.n2; j++)
                for (l = 0; l < r.w; l++) {
                    int64_t o = i * r.s1 + j * r.s2 + l;
                    acc[l] += u[o] * (v[o] - c[l]);
                }
        return;
    }
    T a[LANES] = { 0 }, cc[LANES];
    for (l = 0; l < LANES; l++)
        cc[l] = c[l];
    for (i = 0; i < r.n1; i++)
        for (j = 0; j < r.n2; j++) {
            const T *pu = u + i * r.s1 + j * r.s2, *pv = v + i * r.s1 + j * r.s2;
            for (l = 0; l < LANES; l++)
                a[l] += pu[l] * (pv[l] - cc[l]);
        }
    for (l = 0; l < LANES; l++)
        acc[l] += a[l];
}

/* The elementwise tiles take whole rows (any width) and run LANES columns
 * at a time over a group of about 1 KiB of rows, so the constants stay in
 * registers and memory is still walked almost in order. */
static int64_t SFX(group_rows)(int64_t w)
{
    return cnorm_max64(1, 1024 / (w * (int64_t)sizeof(T)));
}

/* y = (x - m) * a + b: centring first keeps float32 precision when |mean|
 * >> std and makes a constant channel exactly b.  y may equal x: a row is
 * computed whole into t before it is stored, so no restrict is needed; local
 * copies of the constants keep GCC's SLP vectorizer on the full-width path. */
static void SFX(tile_affine)(const T *x, T *y, chan_rect r, const T *restrict m,
                             const T *restrict a, const T *restrict b)
{
    int64_t i, j, j0, jn, l0, g = SFX(group_rows)(r.w);
    int l;
    for (i = 0; i < r.n1; i++)
        for (j0 = 0; j0 < r.n2; j0 += g) {
            jn = cnorm_min64(r.n2, j0 + g);
            for (l0 = 0; l0 + LANES <= r.w; l0 += LANES) {
                T mm[LANES], aa[LANES], bb[LANES];
                for (l = 0; l < LANES; l++) {
                    mm[l] = m[l0 + l];
                    aa[l] = a[l0 + l];
                    bb[l] = b[l0 + l];
                }
                for (j = j0; j < jn; j++) {
                    const T *p = x + i * r.s1 + j * r.s2 + l0;
                    T *q = y + i * r.s1 + j * r.s2 + l0, t[LANES];
                    for (l = 0; l < LANES; l++)
                        t[l] = (p[l] - mm[l]) * aa[l] + bb[l];
                    for (l = 0; l < LANES; l++)
                        q[l] = t[l];
                }
            }
            for (j = j0; j < jn; j++)
                for (l = (int)l0; l < r.w; l++) {
                    int64_t o = i * r.s1 + j * r.s2 + l;
                    y[o] = (x[o] - m[l]) * a[l] + b[l];
                }
        }
}

/* dx = k1*dy + k2*((x - m)*s) + k3: x_hat = (x - m)*s is formed first, so
 * no coefficient holds invstd**2 (which underflows float32 for data near
 * 1e20 and beyond) and float32 keeps its precision when |mean| >> std.
 * dx may equal dy. */
static void SFX(tile_bwd)(const T *dy, const T *x, T *dx, chan_rect r, const T *restrict m,
                          const T *restrict s, const T *restrict k1, const T *restrict k2,
                          const T *restrict k3)
{
    int64_t i, j, j0, jn, l0, g = SFX(group_rows)(r.w);
    int l;
    for (i = 0; i < r.n1; i++)
        for (j0 = 0; j0 < r.n2; j0 += g) {
            jn = cnorm_min64(r.n2, j0 + g);
            for (l0 = 0; l0 + LANES <= r.w; l0 += LANES) {
                T cm[LANES], cs[LANES], c1[LANES], c2[LANES], c3[LANES];
                for (l = 0; l < LANES; l++) {
                    cm[l] = m[l0 + l];
                    cs[l] = s[l0 + l];
                    c1[l] = k1[l0 + l];
                    c2[l] = k2[l0 + l];
                    c3[l] = k3[l0 + l];
                }
                for (j = j0; j < jn; j++) {
                    int64_t o = i * r.s1 + j * r.s2 + l0;
                    const T *pd = dy + o, *px = x + o;
                    T *q = dx + o, t[LANES];
                    for (l = 0; l < LANES; l++)
                        t[l] = c1[l] * pd[l] + c2[l] * ((px[l] - cm[l]) * cs[l]) + c3[l];
                    for (l = 0; l < LANES; l++)
                        q[l] = t[l];
                }
            }
            for (j = j0; j < jn; j++)
                for (l = (int)l0; l < r.w; l++) {
                    int64_t o = i * r.s1 + j * r.s2 + l;
                    dx[o] = k1[l] * dy[o] + k2[l] * ((x[o] - m[l]) * s[l]) + k3[l];
                }
        }
}

/* ---- blocks and pieces (no OpenMP) ----------------------------------- */

/* Operands of a tile call: full arrays, and per-position vectors. */
typedef struct {
    const T *x, *dy;
    T *y;
    T *acc;
    const T *c1, *c2, *c3;
    const T *centre;   /* of the elementwise tiles */
    const T *spread;   /* tile_bwd: x_hat = (x - centre) * spread */
} SFX(chan_ops);

/* Runs tile `op` over block B cut into super-rows of P positions: the whole
 * super-rows, then the partial one at the end of each run.  Reductions go
 * one LANES-wide strip at a time (their lanes live in registers);
 * elementwise tiles take whole rows. */
static void SFX(visit)(int op, const chan_block *B, int64_t P, const SFX(chan_ops) *o)
{
    int64_t nsr = B->len / P, j0, part;
    for (part = 0; part < 2; part++) {
        int64_t width = part ? B->len - nsr * P : P;
        int64_t base = B->off + (part ? nsr * P : 0);
        chan_rect r = { B->runs, B->ld, part ? 1 : nsr, P, width };
        if (r.n2 == 0 || width == 0)
            continue;
        if (op == CHAN_AFFINE) {
            SFX(tile_affine)(o->x + base, o->y + base, r, o->centre, o->c1, o->c2);
            continue;
        }
        if (op == CHAN_BWD) {
            SFX(tile_bwd)(o->dy + base, o->x + base, o->y + base, r, o->centre, o->spread,
                          o->c1, o->c2, o->c3);
            continue;
        }
        for (j0 = 0; j0 < width; j0 += LANES) {   /* reductions: one strip at a time */
            int64_t off = base + j0;
            r.w = cnorm_min64(LANES, width - j0);
            switch (op) {
            case CHAN_SUM:
                SFX(tile_sum)(o->x + off, r, o->c1 + j0, o->acc + j0);
                break;
            case CHAN_SQDEV:
                SFX(tile_sqdev)(o->x + off, r, o->c1 + j0, o->acc + j0);
                break;
            default:
                SFX(tile_wdev)(o->dy + off, o->x + off, r, o->c1 + j0, o->acc + j0);
            }
        }
    }
}

/* v[0..kw) repeated over the pg positions of a super-row (pg is a
 * multiple of kw).  Runs per block and per piece, so planar (kw = 1) gets a
 * plain broadcast. */
static void SFX(replicate)(T *v, int64_t kw, int64_t pg)
{
    int64_t i, k;
    if (kw == 1) {
        T v0 = v[0];
        for (i = 1; i < pg; i++)
            v[i] = v0;
        return;
    }
    for (i = kw; i < pg; i += kw)
        for (k = 0; k < kw; k++)
            v[i + k] = v[k];
}

/* Per-position vector of group g from a per-channel array. */
static void SFX(expand)(const chan_geom *G, int64_t g, const T *perchan, T *out)
{
    int64_t k0, kw, pg, k;
    chan_group(G, g, &k0, &kw, &pg);
    for (k = 0; k < kw; k++)
        out[k] = perchan[G->planar ? g : (k0 + k) / G->S];
    SFX(replicate)(out, kw, pg);
}

/* Column totals of position accumulators (fixed order, in double). */
static void SFX(fold)(const T *acc, int64_t kw, int64_t pg, double *out)
{
    int64_t i, k;
    for (k = 0; k < kw; k++) {
        double s = acc[k];
        for (i = kw + k; i < pg; i += kw)
            s += acc[i];
        out[k] = s;
    }
}

/* The rare path of piece_moments: squares of finite T data that overflow T
 * (float32 deviations above ~1e19) leave a column's m2 infinite with a
 * finite mean; that block's squared deviations are summed again in double.
 * Position j of a run belongs to column j % kw (see visit). */
static void SFX(redo_overflowed)(const T *x, const chan_block *B, int64_t kw,
                                 const double *bm, double *bm2)
{
    double s[CHAN_TILE];
    int64_t i, j, k, redo = 0;
    for (k = 0; k < kw; k++)
        redo |= isfinite(bm[k]) && !isfinite(bm2[k]);
    if (!redo)
        return;
    for (k = 0; k < kw; k++)
        s[k] = 0.0;
    for (i = 0; i < B->runs; i++)
        for (j = 0; j < B->len; j++) {
            double d = (double)x[B->off + i * B->ld + j] - bm[j % kw];
            s[j % kw] += d * d;
        }
    for (k = 0; k < kw; k++)
        if (isfinite(bm[k]) && !isfinite(bm2[k]))
            bm2[k] = s[k];
}

/* Moments of group g's columns over chunk q, block by block: pass 1 sums
 * deviations from the block's first row, pass 2 (block now in L1) sums
 * squared deviations from the block mean rounded to T, corrected for that
 * rounding; blocks merge into the piece's (n, mean, m2) in double.
 * Returns n. */
static double SFX(piece_moments)(const chan_geom *G, const T *x, int64_t g, int64_t q,
                                 double *mean, double *m2)
{
    T acc[CHAN_PMAX], ctr[CHAN_PMAX];
    double bm[CHAN_TILE], bm2[CHAN_TILE], n = 0.0;
    int64_t k0, kw, pg, b, j, k;
    int64_t b1 = cnorm_min64(G->nblk, (q + 1) * G->cblk);
    SFX(chan_ops) o = { x, NULL, NULL, acc, ctr, NULL, NULL, NULL, NULL };
    chan_block B, next = chan_block_at(G, g, q * G->cblk);
    chan_group(G, g, &k0, &kw, &pg);
    for (b = q * G->cblk; b < b1; b++) {
        B = next;
        double nb = (double)(B.runs * B.len / kw);
        for (k = 0; k < kw; k++)
            ctr[k] = x[B.off + k];
        SFX(replicate)(ctr, kw, pg);
        for (j = 0; j < pg; j++)
            acc[j] = 0;
        SFX(visit)(CHAN_SUM, &B, G->P, &o);
        SFX(fold)(acc, kw, pg, bm);
        for (k = 0; k < kw; k++) {
            bm[k] = ctr[k] + bm[k] / nb;
            ctr[k] = (T)bm[k];
        }
        if (b + 1 < b1)
            next = chan_prefetch_block(G, g, b + 1, x, NULL, sizeof(T));
        SFX(replicate)(ctr, kw, pg);
        for (j = 0; j < pg; j++)
            acc[j] = 0;
        SFX(visit)(CHAN_SQDEV, &B, G->P, &o);
        SFX(fold)(acc, kw, pg, bm2);
        for (k = 0; k < kw; k++) {
            double e = bm[k] - ctr[k];
            bm2[k] -= nb * e * e;
            if (bm2[k] < 0.0)   /* rounding only; a NaN fails the test and stays */
                bm2[k] = 0.0;
        }
        SFX(redo_overflowed)(x, &B, kw, bm, bm2);
        chan_merge_cols(n, mean, m2, nb, bm, bm2, kw);
        n += nb;
    }
    return n;
}

/* Backward sums of group g's columns over chunk q, block by block: the
 * dy*(x - mean) pass streams both arrays, the sum of dy then rereads dy
 * from L1 while the next block is prefetched.  Lanes in T per block,
 * blocks added in double. */
static void SFX(piece_dot)(const chan_geom *G, const T *dy, const T *x, const T *mean,
                           int64_t g, int64_t q, double *sdy, double *sdx)
{
    T acc[CHAN_PMAX], mp[CHAN_PMAX], zero[CHAN_PMAX];
    double f[CHAN_TILE];
    int64_t k0, kw, pg, b, j, k;
    int64_t b1 = cnorm_min64(G->nblk, (q + 1) * G->cblk);
    SFX(chan_ops) os = { dy, NULL, NULL, acc, zero, NULL, NULL, NULL, NULL };
    SFX(chan_ops) ow = { x, dy, NULL, acc, mp, NULL, NULL, NULL, NULL };
    chan_block B, next = chan_block_at(G, g, q * G->cblk);
    chan_group(G, g, &k0, &kw, &pg);
    SFX(expand)(G, g, mean, mp);
    for (j = 0; j < pg; j++)
        zero[j] = 0;
    for (k = 0; k < kw; k++)
        sdy[k] = sdx[k] = 0.0;
    for (b = q * G->cblk; b < b1; b++) {
        B = next;
        for (j = 0; j < pg; j++)
            acc[j] = 0;
        SFX(visit)(CHAN_WDEV, &B, G->P, &ow);
        SFX(fold)(acc, kw, pg, f);
        for (k = 0; k < kw; k++)
            sdx[k] += f[k];
        if (b + 1 < b1)
            next = chan_prefetch_block(G, g, b + 1, dy, x, sizeof(T));
        for (j = 0; j < pg; j++)
            acc[j] = 0;
        SFX(visit)(CHAN_SUM, &B, G->P, &os);
        SFX(fold)(acc, kw, pg, f);
        for (k = 0; k < kw; k++)
            sdy[k] += f[k];
    }
}

/* Elementwise pass over piece (g, q): CHAN_AFFINE y = (x - pc)*p1 + p2, or
 * CHAN_BWD y = p1*dy + p2*((x - pc)*ps) + p3, with per-channel coefficients. */
static void SFX(piece_apply)(const chan_geom *G, int op, int64_t g, int64_t q,
                             const T *x, const T *dy, T *y, const T *pc, const T *ps,
                             const T *p1, const T *p2, const T *p3)
{
    T c1[CHAN_PMAX], c2[CHAN_PMAX], c3[CHAN_PMAX], cm[CHAN_PMAX], cs[CHAN_PMAX];
    int64_t b, b1 = cnorm_min64(G->nblk, (q + 1) * G->cblk);
    SFX(chan_ops) o = { x, dy, y, NULL, c1, c2, c3, cm, cs };
    SFX(expand)(G, g, pc, cm);
    SFX(expand)(G, g, p1, c1);
    SFX(expand)(G, g, p2, c2);
    if (op == CHAN_BWD) {
        SFX(expand)(G, g, ps, cs);
        SFX(expand)(G, g, p3, c3);
    }
    for (b = q * G->cblk; b < b1; b++) {
        chan_block B = chan_block_at(G, g, b);
        SFX(visit)(op, &B, G->P, &o);
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
    int op;                        /* of the elementwise pass */
    const T *pc, *ps;              /* its per-channel centre and spread */
    const T *p1, *p2, *p3;         /* and coefficients */
    T *coef;                       /* where train/backward compute them */
    double count;                  /* values per channel, N*S */
    /* training forward */
    const T *weight, *bias;
    double eps;
    const cnorm_renorm *renorm;
    double *mean, *var;
    /* backward */
    const T *bmean, *invstd;
    double *sum_dy, *sum_dy_xhat;
} SFX(chan_job);

static void SFX(task_moments)(const void *job, int64_t p)
{
    const SFX(chan_job) *j = job;
    const chan_geom *G = j->G;
    int64_t g = p / G->nchunk, q = p % G->nchunk, k0, kw, pg;
    chan_group(G, g, &k0, &kw, &pg);
    j->s.cnt[p] = SFX(piece_moments)(G, j->x, g, q, j->s.a + q * G->ncol + k0,
                                     j->s.b + q * G->ncol + k0);
}

static void SFX(task_dot)(const void *job, int64_t p)
{
    const SFX(chan_job) *j = job;
    const chan_geom *G = j->G;
    int64_t g = p / G->nchunk, q = p % G->nchunk, k0, kw, pg;
    chan_group(G, g, &k0, &kw, &pg);
    SFX(piece_dot)(G, j->dy, j->x, j->bmean, g, q, j->s.a + q * G->ncol + k0,
                   j->s.b + q * G->ncol + k0);
}

static void SFX(task_apply)(const void *job, int64_t p)
{
    const SFX(chan_job) *j = job;
    SFX(piece_apply)(j->G, j->op, p / j->G->nchunk, p % j->G->nchunk, j->x, j->dy,
                     j->y, j->pc, j->ps, j->p1, j->p2, j->p3);
}

/* Channel c of a training forward once its pieces are reduced: merge them,
 * write mean/var (and r/d), and its coefficients of y = (x - centre)*scale
 * + shift into coef.  The centre is the mean rounded to T; shift carries the
 * rounding, so a constant channel (exact mean) gives exactly the offset. */
static void SFX(train_channel)(const SFX(chan_job) *j, int64_t c)
{
    double m, m2, scale, offset;
    int64_t C = j->G->C;
    if (j->G->planar)   /* interleaved groups were merged before */
        chan_merge_group(j->G, c, j->s.cnt, j->s.a, j->s.b);
    chan_channel_moments(j->G, c, j->s.a, j->s.b, &m, &m2);
    chan_train_coefs(c, j->count, m, m2, j->weight ? (double)j->weight[c] : 1.0,
                     j->bias ? (double)j->bias[c] : 0.0, j->eps, j->renorm, &scale, &offset);
    T centre = (T)m;
    j->mean[c] = m;
    j->var[c] = m2 / j->count;
    j->coef[c] = (T)scale;
    j->coef[C + c] = (T)(offset + scale * ((double)centre - m));
    j->coef[2 * C + c] = centre;
}

/* Channel c of a backward once its pieces are reduced: sums, outputs and
 * the dx = k1*dy + k2*x_hat + k3 constants (into coef when dx is wanted). */
static void SFX(bwd_channel)(const SFX(chan_job) *j, int64_t c)
{
    double sdy, sdx;
    if (j->G->planar)
        chan_sum_group(j->G, c, j->s.a, j->s.b);
    chan_channel_sums(j->G, c, j->s.a, j->s.b, &sdy, &sdx);
    double is = j->invstd[c], sxh = is * sdx, M = j->count;
    double k1 = (j->weight ? (double)j->weight[c] : 1.0) * is;
    double k2 = -k1 * sxh / M;   /* multiplies x_hat, see tile_bwd */
    j->sum_dy[c] = sdy;
    j->sum_dy_xhat[c] = sxh;
    if (j->y) {
        j->coef[c] = (T)k1;
        j->coef[j->G->C + c] = (T)k2;
        j->coef[2 * j->G->C + c] = (T)(-k1 * sdy / M);
    }
}

/* Fused per channel: reduce its pieces, finish it, and run its elementwise
 * pass while its data is still in L2. */
static void SFX(task_train_fused)(const void *job, int64_t c)
{
    const SFX(chan_job) *j = job;
    int64_t q, p0 = c * j->G->nchunk;
    for (q = 0; q < j->G->nchunk; q++)
        SFX(task_moments)(job, p0 + q);
    SFX(train_channel)(j, c);
    for (q = 0; q < j->G->nchunk; q++)
        SFX(task_apply)(job, p0 + q);
}

static void SFX(task_bwd_fused)(const void *job, int64_t c)
{
    const SFX(chan_job) *j = job;
    int64_t q, p0 = c * j->G->nchunk;
    for (q = 0; q < j->G->nchunk; q++)
        SFX(task_dot)(job, p0 + q);
    SFX(bwd_channel)(j, c);
    for (q = 0; q < j->G->nchunk; q++)
        SFX(task_apply)(job, p0 + q);
}

/* Runs `task` over every piece. */
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
    if (N < 0 || C < 0 || S < 0)
        return CNORM_EINVAL;
    if (N == 0 || S == 0) {
        for (c = 0; c < C; c++)
            mean[c] = m2[c] = 0.0;
        return CNORM_OK;
    }
    if (C == 0)
        return CNORM_OK;
    chan_geom_init(&G, N, C, S);
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

/* One planar run (n, c) of the affine pass: S contiguous values with scalar
 * coefficients, the cheapest form for the compiler and for small inputs. */
static void SFX(task_affine_run)(const void *job, int64_t run)
{
    const SFX(chan_job) *j = job;
    int64_t c = run % j->G->C, s, S = j->G->S;
    const T *p = j->x + run * S;
    T *q = j->y + run * S, m = j->pc[c], a = j->p1[c], b = j->p2[c];
    for (s = 0; s < S; s++)
        q[s] = (p[s] - m) * a + b;
}

/* The elementwise pass y = (x - centre[c])*scale[c] + shift[c]: run by run
 * when planar, else over the interleaved pieces. */
static void SFX(affine)(const chan_geom *G, const T *x, const T *centre, const T *scale,
                        const T *shift, T *y)
{
    SFX(chan_job) j = { 0 };
    j.G = G;
    j.x = x;
    j.y = y;
    j.op = CHAN_AFFINE;
    j.pc = centre;
    j.p1 = scale;
    j.p2 = shift;
    if (G->planar) {
        int64_t runs = G->N * G->C;
        chan_parallel(cnorm_threads_for(G->total, runs), runs, SFX(task_affine_run), &j);
        return;
    }
    SFX(run_pieces)(&j, SFX(task_apply));
}

static int SFX(cnorm_channel_affine)(const T *x, int64_t N, int64_t C, int64_t S,
                              const T *scale, const T *shift, T *y)
{
    chan_geom G;
    T *zeros;
    if (N < 0 || C < 0 || S < 0)
        return CNORM_EINVAL;
    if (N == 0 || C == 0 || S == 0)
        return CNORM_OK;
    if (!(zeros = calloc((size_t)C, sizeof(T))))   /* the centre: none */
        return CNORM_ENOMEM;
    chan_geom_init(&G, N, C, S);
    SFX(affine)(&G, x, zeros, scale, shift, y);
    free(zeros);
    return CNORM_OK;
}

static int SFX(cnorm_bn_forward_infer)(const T *x, int64_t N, int64_t C, int64_t S,
                                const T *running_mean, const T *running_var,
                                const T *weight, const T *bias, double eps, T *y)
{
    enum { STACK_C = 256 };   /* typical layers need no allocation */
    T stack[2 * STACK_C], *coef = stack;
    chan_geom G;
    int64_t c;
    if (N < 0 || C < 0 || S < 0)
        return CNORM_EINVAL;
    if (N == 0 || C == 0 || S == 0)
        return CNORM_OK;
    if (C > STACK_C && !(coef = malloc((size_t)(2 * C) * sizeof(T))))
        return CNORM_ENOMEM;
    for (c = 0; c < C; c++) {   /* y = (x - running_mean) * scale + bias */
        coef[c] = (T)((weight ? (double)weight[c] : 1.0) / sqrt((double)running_var[c] + eps));
        coef[C + c] = bias ? bias[c] : (T)0;
    }
    chan_geom_init(&G, N, C, S);
    SFX(affine)(&G, x, running_mean, coef, coef + C, y);
    if (coef != stack)
        free(coef);
    return CNORM_OK;
}

static int SFX(cnorm_bn_forward_train)(const T *x, int64_t N, int64_t C, int64_t S,
                                const T *weight, const T *bias, double eps,
                                const cnorm_renorm *renorm,
                                T *y, double *mean, double *var)
{
    chan_geom G;
    SFX(chan_job) j = { 0 };
    int64_t c;
    if (N < 0 || C < 0 || S < 0)
        return CNORM_EINVAL;
    if (N == 0 || S == 0) {   /* caller's error; leave defined values */
        for (c = 0; c < C; c++)
            mean[c] = var[c] = 0.0;
        return CNORM_OK;
    }
    if (C == 0)
        return CNORM_OK;
    chan_geom_init(&G, N, C, S);
    if (chan_scratch_alloc(&G, 3 * C, sizeof(T), &j.s) != CNORM_OK)
        return CNORM_ENOMEM;
    j.G = &G;
    j.x = x;
    j.y = y;
    j.op = CHAN_AFFINE;
    j.coef = j.s.coef;
    j.p1 = j.coef;
    j.p2 = j.coef + C;
    j.pc = j.coef + 2 * C;
    j.count = (double)(N * S);
    j.weight = weight;
    j.bias = bias;
    j.eps = eps;
    j.renorm = renorm;
    j.mean = mean;
    j.var = var;
    if (G.planar && N * S * (int64_t)sizeof(T) <= CHAN_FUSE_BYTES) {
        chan_parallel(cnorm_threads_for(G.total, C), C, SFX(task_train_fused), &j);
    } else {
        SFX(run_pieces)(&j, SFX(task_moments));
        SFX(merge_tiles)(&j, 1);
        for (c = 0; c < C; c++)
            SFX(train_channel)(&j, c);
        SFX(run_pieces)(&j, SFX(task_apply));
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
    if (N < 0 || C < 0 || S < 0)
        return CNORM_EINVAL;
    if (N == 0 || S == 0) {
        for (c = 0; c < C; c++)
            sum_dy[c] = sum_dy_xhat[c] = 0.0;
        return CNORM_OK;
    }
    if (C == 0)
        return CNORM_OK;
    chan_geom_init(&G, N, C, S);
    if (chan_scratch_alloc(&G, dx ? 3 * C : 0, sizeof(T), &j.s) != CNORM_OK)
        return CNORM_ENOMEM;
    j.G = &G;
    j.x = x;
    j.dy = dy;
    j.y = dx;
    j.op = CHAN_BWD;
    j.coef = j.s.coef;
    j.p1 = j.coef;
    j.p2 = j.coef + C;
    j.p3 = j.coef + 2 * C;
    j.pc = mean;
    j.ps = invstd;
    j.count = (double)(N * S);
    j.weight = weight;
    j.bmean = mean;
    j.invstd = invstd;
    j.sum_dy = sum_dy;
    j.sum_dy_xhat = sum_dy_xhat;
    if (dx && G.planar && 2 * N * S * (int64_t)sizeof(T) <= CHAN_FUSE_BYTES) {
        chan_parallel(cnorm_threads_for(G.total, C), C, SFX(task_bwd_fused), &j);
    } else {
        SFX(run_pieces)(&j, SFX(task_dot));
        SFX(merge_tiles)(&j, 0);
        for (c = 0; c < C; c++)
            SFX(bwd_channel)(&j, c);
        if (dx)
            SFX(run_pieces)(&j, SFX(task_apply));
    }
    chan_scratch_free(&j.s);
    return CNORM_OK;
}

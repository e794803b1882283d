/* Channel family, reduction tiles (see channel.c for the parts): the
 * vectorizable sum loops over strips and planar blocks, no OpenMP.  Part
 * of channel_impl.h, compiled once per element type T and SIMD path. */

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
    CNORM_FOLD_STEP(a, CL / 2);
    CNORM_FOLD_STEP(a, CL / 4);
    CNORM_FOLD_STEP(a, CL / 8);
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

/* Channel family, elementwise passes (see channel.c for the parts): the
 * loops that write y or dx, and the pass that runs them over all of x in
 * memory order (planar: run by run with scalar constants; interleaved:
 * super-row or whole row at a time with per-column constants).  Part of
 * channel_impl.h. */

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
                                T b, T lower)
{
    int64_t i;
    for (i = 0; i < len; i++)
        y[i] = SFX(at_least)((x[i] - m) * a + b, lower);
}

static void SFX(run_affine_ip)(T *y, int64_t len, T m, T a, T b, T lower)
{
    int64_t i;
    for (i = 0; i < len; i++)
        y[i] = SFX(at_least)((y[i] - m) * a + b, lower);
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
 * larger than the caches (CHAN_STREAM_BYTES): whole vectors stream
 * (stream_impl.h), the values before the first vector-aligned y and after
 * the last whole vector are plain stores. */
#if CNORM_CAN_STREAM
static void SFX(run_affine_stream)(const T *restrict x, T *restrict y, int64_t len, T m, T a,
                                   T b)
{
    const int64_t i = SFX(stream_head)(y, len), vl = SFX(vec_len)();
    int64_t v;
    SFX(run_affine_oop)(x, y, i, m, a, b, (T)-INFINITY);
    for (v = i; v + vl <= len; v += vl)
        SFX(vstream)(y + v, (SFX(vload)(x + v) - m) * a + b);
    SFX(run_affine_oop)(x + v, y + v, len - v, m, a, b, (T)-INFINITY);
}

static void SFX(run_bwd_stream)(const T *restrict dy, const T *restrict x, T *restrict dx,
                                int64_t len, T m, T a, T k1, T k3)
{
    const int64_t i = SFX(stream_head)(dx, len), vl = SFX(vec_len)();
    int64_t v;
    SFX(run_bwd_oop)(dy, x, dx, i, m, a, k1, k3);
    for (v = i; v + vl <= len; v += vl)
        SFX(vstream)(dx + v, (SFX(vload)(dy + v) + a * (SFX(vload)(x + v) - m)) * k1 + k3);
    SFX(run_bwd_oop)(dy + v, x + v, dx + v, len - v, m, a, k1, k3);
}
#else
static void SFX(run_affine_stream)(const T *restrict x, T *restrict y, int64_t len, T m, T a,
                                   T b)
{
    SFX(run_affine_oop)(x, y, len, m, a, b, (T)-INFINITY);
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
                                 const T *restrict b, T lower)
{
    int64_t i, j, l;
    for (i = 0; i < r.n1; i++)
        for (j = 0; j < r.n2; j++) {
            const T *p = x + i * r.s1 + j * r.s2;
            T *q = y + i * r.s1 + j * r.s2;
            for (l = 0; l < w; l++)
                q[l] = SFX(at_least)((p[l] - m[l]) * a[l] + b[l], lower);
        }
}

static void SFX(rows_affine_ip)(T *y, chan_rect r, int64_t w, const T *restrict m,
                                const T *restrict a, const T *restrict b, T lower)
{
    int64_t i, j, l;
    for (i = 0; i < r.n1; i++)
        for (j = 0; j < r.n2; j++) {
            T *q = y + i * r.s1 + j * r.s2;
            for (l = 0; l < w; l++)
                q[l] = SFX(at_least)((q[l] - m[l]) * a[l] + b[l], lower);
        }
}

/* y = x * a + b: inference and cnorm_channel_affine on interleaved rows
 * (one constant stream fewer than the centred form: measured faster). */
static void SFX(rows_scale_oop)(const T *restrict x, T *restrict y, chan_rect r, int64_t w,
                                const T *restrict a, const T *restrict b, T lower)
{
    int64_t i, j, l;
    for (i = 0; i < r.n1; i++)
        for (j = 0; j < r.n2; j++) {
            const T *p = x + i * r.s1 + j * r.s2;
            T *q = y + i * r.s1 + j * r.s2;
            for (l = 0; l < w; l++)
                q[l] = SFX(at_least)(p[l] * a[l] + b[l], lower);
        }
}

static void SFX(rows_scale_ip)(T *y, chan_rect r, int64_t w, const T *restrict a,
                               const T *restrict b, T lower)
{
    int64_t i, j, l;
    for (i = 0; i < r.n1; i++)
        for (j = 0; j < r.n2; j++) {
            T *q = y + i * r.s1 + j * r.s2;
            for (l = 0; l < w; l++)
                q[l] = SFX(at_least)(q[l] * a[l] + b[l], lower);
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

/* ---- the pass over all of x ------------------------------------------- */

/* One elementwise pass, with per-channel constants:
 *   forward (dy NULL)  out = act((x - center) * scale + shift)
 *   backward           out = (dy + a * (x - center)) * k1 + k3
 * center NULL means 0.  out may equal x (forward) or dy (backward). */
typedef struct {
    const chan_geom *G;
    const T *x, *dy;
    T *out;
    const T *center;
    const T *scale, *shift;        /* forward */
    const T *a, *k1, *k3;          /* backward */
    int act;                       /* forward: CNORM_ACT_*, run by run */
    int stream;                    /* planar out-of-place: non-temporal stores */
    T *wide;                       /* interleaved rows wider than a tile with
                                    * S > 1: room for their per-column constants */
} SFX(chan_pass);

/* The pass's per-channel constants after the centre, in formula order
 * (forward: scale, shift, unused; backward: a, k1, k3). */
static void SFX(pass_constants)(const SFX(chan_pass) *j, const T *k[3])
{
    k[0] = j->dy ? j->a : j->scale;
    k[1] = j->dy ? j->k1 : j->shift;
    k[2] = j->dy ? j->k3 : NULL;
}

/* Planar runs r0, r0 + step, ... (< r1); run r = n*C + c. */
static void SFX(apply_runs)(const SFX(chan_pass) *j, int64_t r0, int64_t r1, int64_t step)
{
    const chan_geom *G = j->G;
    int64_t r, c = r0 % G->C, S = G->S;
    for (r = r0; r < r1; r += step) {
        T m = j->center ? j->center[c] : (T)0;
        const T *x = j->x + r * S;
        T *y = j->out + r * S;
        if (j->dy) {
            const T *dy = j->dy + r * S;
            if (dy == y)
                SFX(run_bwd_ip)(y, x, S, m, j->a[c], j->k1[c], j->k3[c]);
            else if (j->stream)
                SFX(run_bwd_stream)(dy, x, y, S, m, j->a[c], j->k1[c], j->k3[c]);
            else
                SFX(run_bwd_oop)(dy, x, y, S, m, j->a[c], j->k1[c], j->k3[c]);
        } else {
            const T lower = SFX(act_lower)(j->act);
            if (x == y)
                SFX(run_affine_ip)(y, S, m, j->scale[c], j->shift[c], lower);
            else if (j->stream)
                SFX(run_affine_stream)(x, y, S, m, j->scale[c], j->shift[c]);
            else
                SFX(run_affine_oop)(x, y, S, m, j->scale[c], j->shift[c], lower);
            if (j->act == CNORM_ACT_SILU)   /* the run is in cache: no streaming with act */
                SFX(silu)(y, S);
        }
        c += step;
        while (c >= G->C)
            c -= G->C;
    }
    if (j->stream)   /* this thread's streamed stores, visible before its task ends */
        cnorm_sfence();
}

/* Interleaved x[o0, o1): whole super-rows of w positions with
 * per-position centre m (or NULL) and constants k (pass_constants order),
 * then a last partial one. */
static void SFX(apply_span)(const SFX(chan_pass) *j, int64_t o0, int64_t o1, int64_t w,
                            const T *m, const T *const k[3])
{
    int64_t nsr = (o1 - o0) / w, part;
    const T lower = SFX(act_lower)(j->act);
    for (part = 0; part < 2; part++) {
        int64_t o = o0 + (part ? nsr * w : 0), wd = part ? (o1 - o0) % w : w;
        chan_rect r = { 1, 0, part ? 1 : nsr, w };
        if (r.n2 == 0 || wd == 0)
            continue;
        if (j->dy && j->dy == j->out)
            SFX(rows_bwd_ip)(j->out + o, j->x + o, r, wd, m, k[0], k[1], k[2]);
        else if (j->dy)
            SFX(rows_bwd_oop)(j->dy + o, j->x + o, j->out + o, r, wd, m, k[0], k[1], k[2]);
        else if (m && j->x == j->out)
            SFX(rows_affine_ip)(j->out + o, r, wd, m, k[0], k[1], lower);
        else if (m)
            SFX(rows_affine_oop)(j->x + o, j->out + o, r, wd, m, k[0], k[1], lower);
        else if (j->x == j->out)
            SFX(rows_scale_ip)(j->out + o, r, wd, k[0], k[1], lower);
        else
            SFX(rows_scale_oop)(j->x + o, j->out + o, r, wd, k[0], k[1], lower);
        if (!j->dy && j->act == CNORM_ACT_SILU)   /* the span just written, still in L2 */
            SFX(silu)(j->out + o, r.n2 * wd);
    }
}

/* Width of the interleaved unit: a super-row (constants expanded per task,
 * on the stack) or, wider than a tile, a whole row. */
static int64_t SFX(unit_width)(const chan_geom *G)
{
    return G->ngrp == 1 ? G->P : G->K;
}

/* Task p: planar, runs [p*rpt, (p+1)*rpt) in memory order; interleaved,
 * units [p*upt, (p+1)*upt) in memory order. */
static void SFX(task_apply)(const void *job, int64_t p)
{
    const SFX(chan_pass) *j = job;
    const chan_geom *G = j->G;
    const T *k[3];
    int64_t w, upt, o0, o1;
    if (G->planar) {
        SFX(apply_runs)(j, p * G->rpt, cnorm_min64(G->N * G->C, (p + 1) * G->rpt), 1);
        return;
    }
    SFX(pass_constants)(j, k);
    w = SFX(unit_width)(G);
    upt = cnorm_max64(1, CHAN_CHUNK / w);
    o0 = p * upt * w;
    o1 = cnorm_min64(G->total, (p + 1) * upt * w);
    if (G->ngrp == 1) {
        T c0[CHAN_PMAX], c[3][CHAN_PMAX];
        const T *e[3] = { c[0], c[1], c[2] };
        SFX(expand)(G, 0, j->center, w, c0);
        for (int i = 0; i < 3; i++)
            if (k[i])
                SFX(expand)(G, 0, k[i], w, c[i]);
        SFX(apply_span)(j, o0, o1, w, j->center ? c0 : NULL, e);
    } else if (G->S == 1) {   /* per-column = per-channel */
        SFX(apply_span)(j, o0, o1, w, j->center, k);
    } else {                  /* expanded by run_apply */
        const T *e = j->wide;
        const int64_t K = G->K;
        const T *ek[3] = { e + K, e + 2 * K, e + 3 * K };
        SFX(apply_span)(j, o0, o1, w, j->center ? e : NULL, ek);
    }
}

/* Values of scratch run_apply needs for interleaved rows wider than a
 * tile with S > 1 (their per-column constants). */
static int64_t SFX(wide_size)(const chan_geom *G)
{
    return !G->planar && G->ngrp > 1 && G->S > 1 ? 4 * G->K : 0;
}

/* The pass over all of x (j->wide holds wide_size values). */
static void SFX(run_apply)(const SFX(chan_pass) *j)
{
    const chan_geom *G = j->G;
    int64_t n, k, K = G->K;
    if (G->planar) {
        n = cnorm_cdiv64(G->N * G->C, G->rpt);
    } else {
        int64_t w = SFX(unit_width)(G);
        const T *kc[3];
        SFX(pass_constants)(j, kc);
        n = cnorm_cdiv64(cnorm_cdiv64(G->total, w), cnorm_max64(1, CHAN_CHUNK / w));
        if (SFX(wide_size)(G))
            for (k = 0; k < K; k++) {
                int64_t c = k / G->S;
                j->wide[k] = j->center ? j->center[c] : (T)0;
                j->wide[K + k] = kc[0][c];
                j->wide[2 * K + k] = kc[1][c];
                j->wide[3 * K + k] = kc[2] ? kc[2][c] : (T)0;
            }
    }
    cnorm_parallel(cnorm_threads_for(G->total, n), n, SFX(task_apply), j);
}

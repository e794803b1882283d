/* Channel family, drivers (see channel.c for the parts): the public
 * kernels.  A reduction runs its pieces in parallel and merges them in a
 * fixed order; each channel is then finished (its statistics and the
 * constants of its elementwise pass), and the pass runs.  A planar channel
 * small enough to stay in cache is fused instead: one task reduces it,
 * finishes it and writes it.  Part of channel_impl.h. */

/* A reduction over all pieces of x: moments (CHAN_SUMS), or the backward's
 * sums of dy and dy * (x - center) (CHAN_DOTS). */
typedef struct {
    const chan_geom *G;
    chan_scratch s;
    const T *x, *dy, *center;
} SFX(chan_reduction);

/* Batch-norm training forward. */
typedef struct {
    SFX(chan_reduction) red;
    SFX(chan_pass) pass;           /* centre, scale, shift: in coef */
    T *coef;                       /* [3][C], then the pass's wide scratch */
    double count;                  /* values per channel, N*S */
    const T *weight, *bias;
    double eps;
    const cnorm_renorm *renorm;
    double *mean, *var;
} SFX(chan_train_job);

/* Batch-norm backward; pass.out NULL: the sums only. */
typedef struct {
    SFX(chan_reduction) red;
    SFX(chan_pass) pass;           /* centre: the mean; a, k1, k3: in coef */
    T *coef;
    double count;
    const T *weight, *invstd;
    double *sum_dy, *sum_dy_xhat;
} SFX(chan_backward_job);

/* Reduction tasks: p = q * ngrp + g runs piece (g, q), so that threads
 * walk memory in order (chunk by chunk); results go to fixed slots. */
static void SFX(task_moments)(const void *job, int64_t p)
{
    const SFX(chan_reduction) *j = job;
    const chan_geom *G = j->G;
    int64_t g = p % G->ngrp, q = p / G->ngrp, k0, kw, pg;
    chan_group(G, g, &k0, &kw, &pg);
    j->s.cnt[g * G->nchunk + q] = SFX(piece_moments)(G, j->x, g, q, j->s.a + q * G->ncol + k0,
                                     j->s.b + q * G->ncol + k0);
}

static void SFX(task_dot)(const void *job, int64_t p)
{
    const SFX(chan_reduction) *j = job;
    const chan_geom *G = j->G;
    int64_t g = p % G->ngrp, q = p / G->ngrp, k0, kw, pg;
    chan_group(G, g, &k0, &kw, &pg);
    SFX(piece_dot)(G, j->dy, j->x, j->center, g, q, j->s.a + q * G->ncol + k0,
                   j->s.b + q * G->ncol + k0);
}

/* Runs `task` over every piece. */
static void SFX(run_pieces)(const SFX(chan_reduction) *j, cnorm_task task)
{
    int64_t np = j->G->ngrp * j->G->nchunk;
    cnorm_parallel(cnorm_threads_for(j->G->total, np), np, task, j);
}

/* Interleaved partials: merge each column tile's chunks (planar channels
 * are merged per channel when they are finished). */
static void SFX(merge_tiles)(const SFX(chan_reduction) *j, int moments)
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

/* Channel c's moments from its merged pieces.  float64 data near the top
 * of its range can overflow the shifted sums and their merges (a mean that
 * is not finite, or m2 NaN, from finite values): such a channel is
 * recomputed scaled (cnorm_moments_scaled; float32 blocks have their double
 * path already). */
static void SFX(channel_result)(const chan_geom *G, const T *x, const chan_scratch *s,
                                int64_t c, double *mean, double *m2)
{
    double base[CHAN_TILE_MAX];   /* interleaved: S < one strip, below CHAN_TILE_MAX */
    const int64_t w = G->planar ? 1 : G->S, k0 = G->planar ? c : c * G->S;
    for (int64_t i = 0; i < w; i++)
        base[i] = SFX(column_base)(G, x, k0 + i);
    chan_channel_moments(G, c, s->a, s->b, base, mean, m2);
    if (sizeof(T) == sizeof(double) && (!isfinite(*mean) || isnan(*m2)))
        (void)cnorm_moments_scaled((const double *)(const void *)x + c * G->S, G->N, G->K,
                                   G->S, mean, m2);
}

/* Channel c of a training forward once its pieces are reduced: merge them,
 * write mean/var (and r/d), and its centre/scale/shift into coef. */
static void SFX(train_channel)(const SFX(chan_train_job) *j, int64_t c)
{
    const chan_scratch *s = &j->red.s;
    double m, m2, scale, shift;
    int64_t C = j->red.G->C;
    T mt;
    if (j->red.G->planar)   /* interleaved groups were merged before */
        chan_merge_group(j->red.G, c, s->cnt, s->a, s->b);
    SFX(channel_result)(j->red.G, j->red.x, s, c, &m, &m2);
    mt = (T)m;
    cnorm_bn_train_coefs(c, j->count, m, m2, (double)mt,
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
static void SFX(backward_channel)(const SFX(chan_backward_job) *j, int64_t c)
{
    const chan_scratch *s = &j->red.s;
    double sdy, sdx;
    int64_t C = j->red.G->C;
    if (j->red.G->planar)
        chan_sum_group(j->red.G, c, s->a, s->b);
    chan_channel_sums(j->red.G, c, s->a, s->b, &sdy, &sdx);
    double is = j->invstd[c], M = j->count;
    double k1 = (j->weight ? (double)j->weight[c] : 1.0) * is;
    j->sum_dy[c] = sdy;
    j->sum_dy_xhat[c] = is * sdx;
    if (j->pass.out) {
        j->coef[c] = (T)(-is * is * sdx / M);
        j->coef[C + c] = (T)k1;
        j->coef[2 * C + c] = (T)(-k1 * sdy / M);
    }
}

/* Fused per channel: reduce its pieces, finish it, and run its elementwise
 * pass while its data is still in L2. */
static void SFX(task_train_fused)(const void *job, int64_t c)
{
    const SFX(chan_train_job) *j = job;
    const chan_geom *G = j->red.G;
    int64_t q;
    for (q = 0; q < G->nchunk; q++)
        SFX(task_moments)(&j->red, q * G->ngrp + c);
    SFX(train_channel)(j, c);
    SFX(apply_runs)(&j->pass, c, G->N * G->C, G->C);
}

static void SFX(task_backward_fused)(const void *job, int64_t c)
{
    const SFX(chan_backward_job) *j = job;
    const chan_geom *G = j->red.G;
    int64_t q;
    for (q = 0; q < G->nchunk; q++)
        SFX(task_dot)(&j->red, q * G->ngrp + c);
    SFX(backward_channel)(j, c);
    SFX(apply_runs)(&j->pass, c, G->N * G->C, G->C);
}

static int SFX(cnorm_channel_moments)(const T *x, int64_t N, int64_t C, int64_t S,
                                      double *mean, double *m2)
{
    chan_geom G;
    SFX(chan_reduction) j = { 0 };
    int64_t c;
    int status = chan_prologue(N, C, S, mean, m2, x != NULL);
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
        SFX(channel_result)(&G, x, &j.s, c, &mean[c], &m2[c]);
    }
    chan_scratch_free(&j.s);
    return CNORM_OK;
}

/* The forward pass y = act((x - center[c]) * scale[c] + shift[c]) (center
 * NULL: 0); scratch for wide interleaved rows is allocated here (ENOMEM
 * before anything is written). */
static int SFX(affine)(const chan_geom *G, const T *x, const T *center, const T *scale,
                       const T *shift, int act, T *y)
{
    SFX(chan_pass) j = { 0 };
    int64_t nw = SFX(wide_size)(G);
    j.G = G;
    j.x = x;
    j.out = y;
    j.center = center;
    j.scale = scale;
    j.shift = shift;
    j.act = act;
    j.stream = !act && chan_stream(G, sizeof(T), x, y);
    if (nw && !(j.wide = malloc((size_t)nw * sizeof(T))))
        return CNORM_ENOMEM;
    SFX(run_apply)(&j);
    free(j.wide);
    return CNORM_OK;
}

/* The centred form keeps x - center exact for x near center, so data far
 * from 0 (mean 1e6, std 1) standardizes to full precision. */
static int SFX(cnorm_channel_standardize)(const T *x, int64_t N, int64_t C, int64_t S,
                                          const T *center, const T *scale, const T *shift,
                                          int activation, T *y)
{
    chan_geom G;
    if (N < 0 || C < 0 || S < 0 || !cnorm_activation_valid(activation) || !x || !scale ||
        !shift || !y)
        return CNORM_EINVAL;
    if (N == 0 || C == 0 || S == 0)
        return CNORM_OK;
    chan_geom_init(&G, N, C, S, sizeof(T));
    return SFX(affine)(&G, x, center, scale, shift, activation, y);
}

/* The standardize pass with no center and no activation. */
static int SFX(cnorm_channel_affine)(const T *x, int64_t N, int64_t C, int64_t S,
                                     const T *scale, const T *shift, T *y)
{
    return SFX(cnorm_channel_standardize)(x, N, C, S, NULL, scale, shift, CNORM_ACT_NONE, y);
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
    chan_geom G;
    int64_t c;
    int rc;
    if (N < 0 || C < 0 || S < 0 || !cnorm_activation_valid(activation) || !x ||
        !running_mean || !running_var || !y)
        return CNORM_EINVAL;
    if (N == 0 || C == 0 || S == 0)
        return CNORM_OK;
    if (C > STACK_C && !(coef = malloc((size_t)(2 * C) * sizeof(T))))
        return CNORM_ENOMEM;
    for (c = 0; c < C; c++) {
        double scale, shift;
        cnorm_bn_infer_coefs(running_mean[c], running_var[c], weight ? weight[c] : 1.0,
                             bias ? bias[c] : 0.0, eps, &scale, &shift);
        coef[c] = (T)scale;
        coef[C + c] = (T)shift;
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
    SFX(chan_train_job) j = { 0 };
    int64_t c;
    const int renorm_given = !renorm || (renorm->running_mean && renorm->running_var &&
                                         renorm->r && renorm->d);
    int status = cnorm_activation_valid(activation)
                     ? chan_prologue(N, C, S, mean, var, x && y && renorm_given)
                     : CNORM_EINVAL;
    if (status != CHAN_GO_ON)
        return status;
    chan_geom_init(&G, N, C, S, sizeof(T));
    if (chan_scratch_alloc(&G, 3 * C + SFX(wide_size)(&G), sizeof(T), &j.red.s) != CNORM_OK)
        return CNORM_ENOMEM;
    j.red.G = &G;
    j.red.x = x;
    j.coef = j.red.s.coef;
    j.pass.G = &G;
    j.pass.x = x;
    j.pass.out = y;
    j.pass.center = j.coef;
    j.pass.scale = j.coef + C;
    j.pass.shift = j.coef + 2 * C;
    j.pass.act = activation;
    j.pass.stream = !activation && chan_stream(&G, sizeof(T), x, y);
    j.pass.wide = j.coef + 3 * C;
    j.count = (double)(N * S);
    j.weight = weight;
    j.bias = bias;
    j.eps = eps;
    j.renorm = renorm;
    j.mean = mean;
    j.var = var;
    if (chan_fuse(&G, sizeof(T), 1)) {
        cnorm_parallel(cnorm_threads_for(G.total, C), C, SFX(task_train_fused), &j);
    } else {
        SFX(run_pieces)(&j.red, SFX(task_moments));
        SFX(merge_tiles)(&j.red, 1);
        for (c = 0; c < C; c++)
            SFX(train_channel)(&j, c);
        SFX(run_apply)(&j.pass);
    }
    chan_scratch_free(&j.red.s);
    return CNORM_OK;
}

/* The backward pass's fields shared by cnorm_bn_backward and
 * cnorm_bn_backward_dx; a, k1, k3 at coef[0, C, 2C), wide scratch after. */
static void SFX(backward_pass)(SFX(chan_pass) *p, const chan_geom *G, const T *dy,
                               const T *x, const T *mean, T *coef, T *dx)
{
    p->G = G;
    p->x = x;
    p->dy = dy;
    p->out = dx;
    p->center = mean;
    p->a = coef;
    p->k1 = coef + G->C;
    p->k3 = coef + 2 * G->C;
    p->stream = dx && chan_stream(G, sizeof(T), x, dx);
    p->wide = coef + 3 * G->C;
}

static int SFX(cnorm_bn_backward)(const T *dy, const T *x, int64_t N, int64_t C, int64_t S,
                                  const T *mean, const T *invstd, const T *weight, T *dx,
                                  double *sum_dy, double *sum_dy_xhat)
{
    chan_geom G;
    SFX(chan_backward_job) j = { 0 };
    int64_t c;
    int status = chan_prologue(N, C, S, sum_dy, sum_dy_xhat, dy && x && mean && invstd);
    if (status != CHAN_GO_ON)
        return status;
    chan_geom_init(&G, N, C, S, sizeof(T));
    if (chan_scratch_alloc(&G, dx ? 3 * C + SFX(wide_size)(&G) : 0, sizeof(T), &j.red.s)
        != CNORM_OK)
        return CNORM_ENOMEM;
    j.red.G = &G;
    j.red.x = x;
    j.red.dy = dy;
    j.red.center = mean;
    j.coef = j.red.s.coef;
    if (dx)
        SFX(backward_pass)(&j.pass, &G, dy, x, mean, j.coef, dx);
    j.count = (double)(N * S);
    j.weight = weight;
    j.invstd = invstd;
    j.sum_dy = sum_dy;
    j.sum_dy_xhat = sum_dy_xhat;
    if (dx && chan_fuse(&G, sizeof(T), 2)) {
        cnorm_parallel(cnorm_threads_for(G.total, C), C, SFX(task_backward_fused), &j);
    } else {
        SFX(run_pieces)(&j.red, SFX(task_dot));
        SFX(merge_tiles)(&j.red, 0);
        for (c = 0; c < C; c++)
            SFX(backward_channel)(&j, c);
        if (dx)
            SFX(run_apply)(&j.pass);
    }
    chan_scratch_free(&j.red.s);
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
    SFX(chan_pass) pass = { 0 };
    T *coef;
    int64_t c;
    if (N < 0 || C < 0 || S < 0 || !(count > 0.0) || !dy || !x || !mean || !invstd ||
        !sum_dy || !sum_dy_xhat || !dx)
        return CNORM_EINVAL;
    if (N == 0 || C == 0 || S == 0)
        return CNORM_OK;
    chan_geom_init(&G, N, C, S, sizeof(T));
    if (!(coef = malloc((size_t)(3 * C + SFX(wide_size)(&G)) * sizeof(T))))
        return CNORM_ENOMEM;
    for (c = 0; c < C; c++) {   /* backward_channel's constants, with the given sums */
        const double is = invstd[c], k1 = (weight ? (double)weight[c] : 1.0) * is;
        coef[c] = (T)(-is * sum_dy_xhat[c] / count);
        coef[C + c] = (T)k1;
        coef[2 * C + c] = (T)(-k1 * sum_dy[c] / count);
    }
    SFX(backward_pass)(&pass, &G, dy, x, mean, coef, dx);
    SFX(run_apply)(&pass);
    free(coef);
    return CNORM_OK;
}

/* Row family, 2-byte batch norm (see row.c for the parts): the (N, C, S)
 * view as rows, for lowp.c.  Training takes each plane's moments with the
 * statistics tile (planes are rows), the backward each plane's sums of dy
 * and dy * (x - mean), which lowp.c merges per channel in plane order;
 * inference and training then run y = act((x - m) * scale + shift) with
 * the normalizing tile, the backward its dx pass.  Part of
 * row_narrow_impl.h only: float32 and float64 batch norm are the channel
 * family's. */

typedef struct {
    const ST *x;
    int64_t K;
    double *mean, *m2;
} SFX(row_moments_job);

static void SFX(row_moments_task)(const void *job, int64_t m)
{
    const SFX(row_moments_job) *j = job;
    SFX(row_moments)(j->x + m * j->K, j->K, j->mean + m, j->m2 + m);
}

/* mean[m] and m2[m] (the sum of squared deviations) of each of M rows of
 * K values, rows in parallel (each row's are the same bits on any
 * thread). */
static int SFX(cnorm_row_moments)(const ST *x, int64_t M, int64_t K, double *mean, double *m2)
{
    if (M < 0 || K < 1 || !x || !mean || !m2)
        return CNORM_EINVAL;
    const SFX(row_moments_job) job = {x, K, mean, m2};
    cnorm_parallel(cnorm_threads_for(M * K, M), M, SFX(row_moments_task), &job);
    return CNORM_OK;
}

/* Backward sums of n values: sum dy and sum dy * (x - c), lanes per
 * block, blocks added in double; a block whose float32 lanes overflowed
 * (or holding NaN or Inf) is redone in double, where a NaN stays. */
static void SFX(row_dots)(const ST *dy, const ST *x, int64_t n, T c, double *sdy,
                          double *sdx)
{
    T ubuf[ROW_BUF], xbuf[ROW_BUF];
    *sdy = *sdx = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += ROW_BLOCK) {
        const int64_t nb = cnorm_min64(ROW_BLOCK, n - i0);
        const LT *ub = LOAD_BLOCK(dy + i0, ubuf, nb), *xb = LOAD_BLOCK(x + i0, xbuf, nb);
        double su, sw;
        CNORM_LANE_SUM2(su, sw, nb, k, LOAD(ub[k]), LOAD(ub[k]) * (LOAD(xb[k]) - c));
        if (!(isfinite(su) && isfinite(sw))) {
            su = sw = 0.0;
            for (int64_t k = 0; k < nb; k++) {
                su += (double)LOAD(ub[k]);
                sw += (double)LOAD(ub[k]) * ((double)LOAD(xb[k]) - (double)c);
            }
        }
        *sdy += su;
        *sdx += sw;
    }
}

typedef struct {
    const ST *dy, *x;
    const T *center;
    int64_t K, cycle;
    double *sdy, *sdx;
} SFX(row_dots_job);

static void SFX(row_dots_task)(const void *job, int64_t m)
{
    const SFX(row_dots_job) *j = job;
    SFX(row_dots)(j->dy + m * j->K, j->x + m * j->K, j->K, j->center[m % j->cycle],
                  j->sdy + m, j->sdx + m);
}

/* Batch-norm backward sums of each of M rows of K values (the planes of a
 * planar (N, C, S) view, cycle = C): sdy[m] = sum dy, sdx[m] = sum dy *
 * (x - center[m % cycle]); rows in parallel. */
static int SFX(cnorm_row_dots)(const ST *dy, const ST *x, int64_t M, int64_t K, int64_t cycle,
                               const T *center, double *sdy, double *sdx)
{
    if (M < 0 || K < 1 || cycle < 1 || !dy || !x || !center || !sdy || !sdx)
        return CNORM_EINVAL;
    const SFX(row_dots_job) job = {dy, x, center, K, cycle, sdy, sdx};
    cnorm_parallel(cnorm_threads_for(M * K, M), M, SFX(row_dots_task), &job);
    return CNORM_OK;
}

typedef struct {
    const ST *dy, *x;
    const T *center, *a, *k1, *k3;
    ST *dx;
    int64_t K, cycle;
} SFX(row_bn_dx_job);

/* dx = (dy + a * (x - center)) * k1 + k3 over row m with its plane's
 * constants, a block at a time; dx may equal dy (a block is loaded before
 * it is stored). */
static void SFX(row_bn_dx_task)(const void *job, int64_t m)
{
    const SFX(row_bn_dx_job) *j = job;
    const int64_t p = m % j->cycle;
    const T c = j->center[p], a = j->a[p], k1 = j->k1[p], k3 = j->k3[p];
    T ubuf[ROW_BUF], xbuf[ROW_BUF];
    for (int64_t k0 = 0; k0 < j->K; k0 += ROW_STORE_BLOCK) {
        const int64_t nb = cnorm_min64(ROW_STORE_BLOCK, j->K - k0), o = m * j->K + k0;
        const LT *ub = LOAD_BLOCK(j->dy + o, ubuf, nb), *xb = LOAD_BLOCK(j->x + o, xbuf, nb);
        T *out = OUT_BLOCK(j->dx + o, ubuf);
        for (int64_t k = 0; k < nb; k++)
            out[k] = (LOAD(ub[k]) + a * (LOAD(xb[k]) - c)) * k1 + k3;
        STORE_BLOCK(out, j->dx + o, nb);
    }
}

/* The batch-norm backward's dx over M rows of K values (planes, cycle = C)
 * from per-plane constants center, a, k1, k3 [m % cycle]; rows in
 * parallel. */
static int SFX(cnorm_row_bn_dx)(const ST *dy, const ST *x, int64_t M, int64_t K, int64_t cycle,
                                const T *center, const T *a, const T *k1, const T *k3, ST *dx)
{
    if (M < 0 || K < 1 || cycle < 1 || !dy || !x || !center || !a || !k1 || !k3 || !dx)
        return CNORM_EINVAL;
    const SFX(row_bn_dx_job) job = {dy, x, center, a, k1, k3, dx, K, cycle};
    cnorm_parallel(cnorm_threads_for(M * K, M), M, SFX(row_bn_dx_task), &job);
    return CNORM_OK;
}

typedef struct {
    const ST *x;
    const T *center, *scale, *shift;
    ST *y;
    int64_t K, cycle;
    int act;
} SFX(row_affine_job);

/* Affine task m: row m, centred and scaled by center, scale and shift
 * [m % cycle] (cycle > 0), or by center[k], scale[k] and shift[k] per
 * column (cycle == 0). */
static void SFX(row_affine_task)(const void *job, int64_t m)
{
    const SFX(row_affine_job) *j = job;
    const ST *x = j->x + m * j->K;
    ST *y = j->y + m * j->K;
    const T lower = SFX(act_lower)(j->act);
    const int silu = j->act == CNORM_ACT_SILU;
    if (j->cycle > 0)
        SFX(row_normalize)(x, j->K, j->center ? j->center[m % j->cycle] : 0, NULL, 0,
                           j->scale[m % j->cycle], NULL, NULL, j->shift[m % j->cycle], lower,
                           silu, y);
    else
        SFX(row_normalize)(x, j->K, 0, j->center, 0, 1, j->scale, j->shift, 0, lower, silu, y);
}

/* M rows of K values: y = act((x - center) * scale + shift), where row m
 * takes the scalars center, scale and shift [m % cycle] (cycle > 0: the
 * planes of a planar (N, C, S) view, cycle = C), or every row the
 * K-vectors center, scale and shift (cycle == 0: samples of a
 * channels-last view, or of small planes with the coefficients expanded);
 * center NULL means 0.  y may equal x.  Rows in parallel. */
static int SFX(cnorm_row_affine)(const ST *x, int64_t M, int64_t K, int64_t cycle,
                                 const T *center, const T *scale, const T *shift,
                                 int activation, ST *y)
{
    if (!cnorm_activation_valid(activation) || M < 0 || K < 1 || cycle < 0 || !scale ||
        !shift || !x || !y)
        return CNORM_EINVAL;
    const SFX(row_affine_job) job = {x, center, scale, shift, y, K, cycle, activation};
    cnorm_parallel(cnorm_threads_for(M * K, M), M, SFX(row_affine_task), &job);
    return CNORM_OK;
}

/* Row family, 2-byte batch norm (see row.c for the parts): the (N, C, S)
 * view as rows, for lowp.c.  Training takes each plane's moments with the
 * statistics tile (planes are rows), which lowp.c merges per channel in
 * plane order; inference and training then run y = act((x - m) * scale +
 * shift) with the normalizing tile.  Part of row_narrow_impl.h only:
 * float32 and float64 batch norm are the channel family's. */

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

typedef struct {
    const ST *x;
    const T *center, *scale, *shift;
    ST *y;
    int64_t K, cycle;
    int act;
} SFX(row_affine_job);

/* Affine task m: row m, centred and scaled by center, scale and shift
 * [m % cycle] (cycle > 0), or scaled by scale[k] per column (cycle == 0). */
static void SFX(row_affine_task)(const void *job, int64_t m)
{
    const SFX(row_affine_job) *j = job;
    const ST *x = j->x + m * j->K;
    ST *y = j->y + m * j->K;
    const T lower = SFX(act_lower)(j->act);
    const int silu = j->act == CNORM_ACT_SILU;
    if (j->cycle > 0)
        SFX(row_normalize)(x, j->K, j->center ? j->center[m % j->cycle] : 0, 0,
                           j->scale[m % j->cycle], NULL, NULL, j->shift[m % j->cycle], lower,
                           silu, y);
    else
        SFX(row_normalize)(x, j->K, 0, 0, 1, j->scale, j->shift, 0, lower, silu, y);
}

/* M rows of K values: y = act((x - center) * scale + shift), where row m
 * takes the scalars center, scale and shift [m % cycle] (cycle > 0: the
 * planes of a planar (N, C, S) view, cycle = C; center NULL means 0), or
 * every row the K-vectors scale and shift with no centre (cycle == 0,
 * center NULL: samples of a channels-last view, or of small planes with
 * the coefficients expanded).  y may equal x.  Rows in parallel. */
static int SFX(cnorm_row_affine)(const ST *x, int64_t M, int64_t K, int64_t cycle,
                                 const T *center, const T *scale, const T *shift,
                                 int activation, ST *y)
{
    if (!cnorm_activation_valid(activation) || M < 0 || K < 1 || cycle < 0 ||
        (cycle == 0 && center) || !scale || !shift || !x || !y)
        return CNORM_EINVAL;
    const SFX(row_affine_job) job = {x, center, scale, shift, y, K, cycle, activation};
    cnorm_parallel(cnorm_threads_for(M * K, M), M, SFX(row_affine_task), &job);
    return CNORM_OK;
}

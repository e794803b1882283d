/* Row family, 2-byte batch-norm inference (see row.c for the parts):
 * y = act(x * scale + shift) with the normalizing tile, on the (N, C, S)
 * view as rows.  Part of row_narrow_impl.h only: float32 and float64
 * inference are the channel family's. */

typedef struct {
    const ST *x;
    const T *scale, *shift;
    ST *y;
    int64_t K, cycle;
    int act;
} SFX(row_affine_job);

/* Affine task m: row m, scaled by scale[m % cycle] (cycle > 0) or by
 * scale[k] per column (cycle == 0). */
static void SFX(row_affine_task)(const void *job, int64_t m)
{
    const SFX(row_affine_job) *j = job;
    const ST *x = j->x + m * j->K;
    ST *y = j->y + m * j->K;
    const T lower = SFX(act_lower)(j->act);
    const int silu = j->act == CNORM_ACT_SILU;
    if (j->cycle > 0)
        SFX(row_normalize)(x, j->K, 0, 0, j->scale[m % j->cycle], NULL, NULL,
                           j->shift[m % j->cycle], lower, silu, y);
    else
        SFX(row_normalize)(x, j->K, 0, 0, 1, j->scale, j->shift, 0, lower, silu, y);
}

/* M rows of K values: y = act(x * scale + shift), where row m takes the
 * scalars scale[m % cycle], shift[m % cycle] (cycle > 0: the planes of a
 * planar (N, C, S) view, cycle = C), or every row the K-vectors scale and
 * shift (cycle == 0: samples of a channels-last view, or of small planes
 * with the coefficients expanded).  y may equal x.  Rows in parallel. */
static int SFX(cnorm_row_affine)(const ST *x, int64_t M, int64_t K, int64_t cycle,
                                 const T *scale, const T *shift, int activation, ST *y)
{
    if (!cnorm_activation_valid(activation) || M < 0 || K < 1 || cycle < 0 || !scale ||
        !shift || !x || !y)
        return CNORM_EINVAL;
    const SFX(row_affine_job) job = {x, scale, shift, y, K, cycle, activation};
    cnorm_parallel(cnorm_threads_for(M * K, M), M, SFX(row_affine_task), &job);
    return CNORM_OK;
}

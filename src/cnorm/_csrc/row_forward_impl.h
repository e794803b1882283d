/* Row family, forward (see row.c for the parts): one row's statistics and
 * normalization, and the public forward kernel, rows in parallel.  x and y
 * are of the storage type ST (row_stats_impl.h).  Part of row_impl.h and
 * row_narrow_impl.h. */

/* A row of K values: y = (x - mu) * rstd * w + b with mu = mean + delta
 * (row_normalize), w and b (or NULL) per column for S == 1, else per run of
 * S values; at least `lower` (act_lower), then silu where `silu`. */
static void SFX(row_normalize_runs)(const ST *x, int64_t K, int64_t S, T mean, T delta,
                                    T rstd, const T *w, const T *b, T lower, int silu,
                                    ST *y)
{
    if (S == 1) {
        SFX(row_normalize)(x, K, mean, NULL, delta, rstd, w, b, 0, lower, silu, y);
        return;
    }
    for (int64_t p = 0; p < K / S; p++) {
        const T a = w ? rstd * w[p] : rstd;   /* one scale per run: delta goes into c */
        SFX(row_normalize)(x + p * S, S, mean, NULL, 0, a, NULL, NULL,
                           (T)((b ? (double)b[p] : 0.0) - (double)delta * (double)a), lower,
                           silu, y + p * S);
    }
}

/* Forward of one row of K values: statistics, then normalize while the row
 * is still in cache.  w, b: this row's P = K / S parameters, or NULL. */
static void SFX(row_forward_one)(const ST *x, int64_t K, int64_t S, int center,
                                 double eps, int act, const T *w, const T *b, ST *y,
                                 T *mean_out, T *rstd_out)
{
    double mu = 0.0, var;
    if (center) {
        double m2;
        SFX(row_moments)(x, K, &mu, &m2);
        var = m2 / (double)K;
    } else {
        var = SFX(row_sum_squares)(x, K) / (double)K;
    }
    if (var < 0.0)   /* rounding only; NaN stays NaN */
        var = 0.0;
    /* The saved mean is rounded to T; delta keeps the rest for normalizing. */
    const T mean = (T)mu, delta = (T)(mu - (double)mean), rstd = (T)(1.0 / sqrt(var + eps));
    if (mean_out)
        *mean_out = mean;
    if (rstd_out)
        *rstd_out = rstd;
    SFX(row_normalize_runs)(x, K, S, mean, delta, rstd, w, b, SFX(act_lower)(act),
                            act == CNORM_ACT_SILU, y);
}

typedef struct {
    const ST *x;
    const T *weight, *bias;
    ST *y;
    T *mean, *rstd;
    int64_t M, K, G, S;
    int center, act;
    double eps;
} SFX(row_fwd_job);

/* Forward task m: row m (rows are independent: any split, same bits). */
static void SFX(row_forward_task)(const void *job, int64_t m)
{
    const SFX(row_fwd_job) *j = job;
    const int64_t K = j->K, off = (m % j->G) * (K / j->S);
    SFX(row_forward_one)(j->x + m * K, K, j->S, j->center, j->eps, j->act,
                         j->weight ? j->weight + off : NULL, j->bias ? j->bias + off : NULL,
                         j->y + m * K, j->mean ? j->mean + m : NULL,
                         j->rstd ? j->rstd + m : NULL);
}

static int SFX(cnorm_row_forward)(const ST *x, int64_t M, int64_t K, int64_t G, int64_t S,
                                  int center, double eps, int activation, const T *weight,
                                  const T *bias, ST *y, T *mean, T *rstd)
{
    if (!cnorm_activation_valid(activation))
        return CNORM_EINVAL;
    if (M == 0)   /* no rows: no pointer is read, the sizes still checked */
        return row_valid(1, K, G, S) ? CNORM_OK : CNORM_EINVAL;
    if (!row_valid(M, K, G, S) || !x || !y)
        return CNORM_EINVAL;
    const SFX(row_fwd_job) job = {x, weight, bias, y, mean, rstd, M, K, G, S, center,
                                  activation, eps};
    cnorm_parallel(cnorm_threads_for(M * K, M), M, SFX(row_forward_task), &job);
    return CNORM_OK;
}


/* Row family, one row (see row.c for the parts): a row's forward and
 * backward from the tiles.  Part of row_impl.h. */

/* A row of K values: y = (x - mu) * rstd * w + b with mu = mean + delta
 * (row_normalize), w and b (or NULL) per column for S == 1, else per run of
 * S values; at least `lower` (act_lower). */
static void SFX(row_normalize_runs)(const T *x, int64_t K, int64_t S, T mean, T delta,
                                    T rstd, const T *w, const T *b, T lower, T *y)
{
    if (S == 1) {
        SFX(row_normalize)(x, K, mean, delta, rstd, w, b, 0, lower, y);
        return;
    }
    for (int64_t p = 0; p < K / S; p++) {
        const T a = w ? rstd * w[p] : rstd;   /* one scale per run: delta goes into c */
        SFX(row_normalize)(x + p * S, S, mean, 0, a, NULL, NULL,
                           (T)((b ? (double)b[p] : 0.0) - (double)delta * (double)a), lower,
                           y + p * S);
    }
}

/* Forward of one row of K values: statistics, then normalize while the row
 * is still in cache.  w, b: this row's P = K / S parameters, or NULL. */
static void SFX(row_forward_one)(const T *x, int64_t K, int64_t S, int center,
                                 double eps, int act, const T *w, const T *b, T *y,
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
    SFX(row_normalize_runs)(x, K, S, mean, delta, rstd, w, b, SFX(act_lower)(act), y);
    if (act == CNORM_ACT_SILU)   /* the row is in cache */
        SFX(silu)(y, K);
}

/* q and c of dx = g * rstd + x_hat * q + c from a row's sum(g) and
 * sum(g * x_hat) (see row_grad_coefs). */
static void SFX(row_dx_coefs)(double sg, double sgx, int64_t K, int center, T rstd, T *q,
                              T *c)
{
    const double r = rstd;
    *q = (T)(-r * (sgx / (double)K));
    *c = (T)(center ? -r * (sg / (double)K) : 0.0);
}

/* Backward of one row, first half: sum(g) and sum(g * x_hat) give the
 * coefficients of dx = g * rstd + x_hat * q + c, which is
 * rstd * (g - mean(g) - x_hat * mean(g * x_hat)) expanded (q is
 * proportional to rstd, not rstd**2, which underflows float for
 * |x| ~ 1e20 and above).  For S > 1 a run's sums of dy and dy * x_hat
 * give both its parameter's gradients (added to dw[p], db[p] when not NULL)
 * and, times w[p], its share of the row sums; for S == 1 the second half
 * does the parameter gradients. */
static void SFX(row_grad_coefs)(const T *dy, const T *x, int64_t K, int64_t S,
                                int center, T mean, T delta, T rstd, const T *w,
                                double *dw, double *db, T *q, T *c)
{
    double sg = 0.0, sgx = 0.0;
    const double dr = (double)delta * (double)rstd;   /* x_hat's shift, see row_mean_residual */
    if (S == 1) {
        SFX(row_grad_sums)(dy, x, K, mean, rstd, w, &sg, &sgx);
        sgx -= dr * sg;
    } else {
        for (int64_t p = 0; p < K / S; p++) {
            double sd, sdx, wp = w ? (double)w[p] : 1.0;
            SFX(row_grad_sums)(dy + p * S, x + p * S, S, mean, rstd, NULL, &sd, &sdx);
            sdx -= dr * sd;
            sg += wp * sd;
            sgx += wp * sdx;
            if (dw)
                dw[p] += sdx;
            if (db)
                db[p] += sd;
        }
    }
    SFX(row_dx_coefs)(sg, sgx, K, center, rstd, q, c);
}

/* Backward of one row, second half: dx from the coefficients and, for
 * S == 1 with sw != NULL, the column gradients summed in sw and sb (see
 * row_dx_cols for `first`). */
static void SFX(row_apply_dx)(const T *dy, const T *x, int64_t K, int64_t S, T mean,
                              T delta, T rstd, const T *w, T q, T c, T *dx, T *sw, T *sb,
                              int first)
{
    /* x_hat * q with x_hat shifted by delta * rstd: a constant, folded into c */
    const T cd = (T)((double)c - (double)delta * (double)rstd * (double)q);
    if (S == 1 && sw) {
        SFX(row_dx_cols)(dy, x, K, mean, delta, rstd, w, q, c, dx, sw, sb, first);
    } else if (S == 1) {
        SFX(row_dx)(dy, x, K, mean, rstd, w, rstd, q, cd, dx);
    } else {
        for (int64_t p = 0; p < K / S; p++)
            SFX(row_dx)(dy + p * S, x + p * S, S, mean, rstd, NULL, w ? rstd * w[p] : rstd,
                        q, cd, dx + p * S);
    }
}

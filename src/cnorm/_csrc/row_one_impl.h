/* Row family, one row (see row.c for the parts): a row's forward and
 * backward from the tiles, with the prefetch of the next row.  Part of
 * row_impl.h. */

/* The part [k0, k1) of a row: y = (x - mu) * rstd * w + b with
 * mu = mean + delta (row_normalize), w and b (or NULL) per column for
 * S == 1, else per run of S values; at least `lower` (act_lower). */
static void SFX(row_normalize_part)(const T *x, int64_t k0, int64_t k1, int64_t S,
                                    T mean, T delta, T rstd, const T *w, const T *b, T lower,
                                    T *y)
{
    if (S == 1) {
        SFX(row_normalize)(x + k0, k1 - k0, mean, delta, rstd, w ? w + k0 : NULL,
                           b ? b + k0 : NULL, 0, lower, y + k0);
        return;
    }
    for (int64_t s0 = k0, s1; s0 < k1; s0 = s1) {
        const int64_t p = s0 / S;
        s1 = cnorm_min64(k1, (p + 1) * S);
        const T a = w ? rstd * w[p] : rstd;   /* one scale per run: delta goes into c */
        SFX(row_normalize)(x + s0, s1 - s0, mean, 0, a, NULL, NULL,
                           (T)((b ? (double)b[p] : 0.0) - (double)delta * (double)a), lower,
                           y + s0);
    }
}

/* Forward of one row of K values: statistics, then normalize while the row
 * is still in cache, prefetching next_x and next_y (the next row, or NULL)
 * piece by piece.  w, b: this row's P = K / S parameters, or NULL. */
static void SFX(row_forward_one)(const T *x, int64_t K, int64_t S, int center,
                                 double eps, int act, const T *w, const T *b, T *y,
                                 T *mean_out, T *rstd_out, const T *next_x, const T *next_y)
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
    const int64_t piece = next_x ? ROW_PIECE : K;   /* no next row: one piece */
    for (int64_t k0 = 0; k0 < K; k0 += piece) {
        const int64_t k1 = cnorm_min64(K, k0 + piece);
        const int64_t bytes = (k1 - k0) * (int64_t)sizeof(T);
        row_prefetch(next_x ? next_x + k0 : NULL, bytes, 0);
        row_prefetch(next_y ? next_y + k0 : NULL, bytes, 1);
        SFX(row_normalize_part)(x, k0, k1, S, mean, delta, rstd, w, b, SFX(act_lower)(act), y);
        if (act == CNORM_ACT_SILU)   /* the piece is in L1 */
            SFX(silu)(y + k0, k1 - k0);
    }
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
 * row_dx_cols for `first`); prefetching the next_dy, next_x, next_dx rows (or NULL)
 * piece by piece. */
static void SFX(row_apply_dx)(const T *dy, const T *x, int64_t K, int64_t S, T mean,
                              T delta, T rstd, const T *w, T q, T c, T *dx, T *sw, T *sb,
                              int first,
                              const T *next_dy, const T *next_x, T *next_dx)
{
    /* x_hat * q with x_hat shifted by delta * rstd: a constant, folded into c */
    const T cd = (T)((double)c - (double)delta * (double)rstd * (double)q);
    const int64_t piece = next_dy ? ROW_PIECE : K;   /* no next row: one piece */
    for (int64_t k0 = 0; k0 < K; k0 += piece) {
        const int64_t k1 = cnorm_min64(K, k0 + piece);
        const int64_t bytes = (k1 - k0) * (int64_t)sizeof(T);
        row_prefetch(next_dy ? next_dy + k0 : NULL, bytes, 0);
        row_prefetch(next_x ? next_x + k0 : NULL, bytes, 0);
        row_prefetch(next_dx ? next_dx + k0 : NULL, bytes, 1);
        if (S == 1 && sw) {
            SFX(row_dx_cols)(dy + k0, x + k0, k1 - k0, mean, delta, rstd, w ? w + k0 : NULL,
                             q, c, dx + k0, sw + k0, sb + k0, first);
            continue;
        }
        if (S == 1) {
            SFX(row_dx)(dy + k0, x + k0, k1 - k0, mean, rstd, w ? w + k0 : NULL, rstd, q, cd,
                        dx + k0);
            continue;
        }
        for (int64_t s0 = k0, s1; s0 < k1; s0 = s1) {
            const int64_t p = s0 / S;
            s1 = cnorm_min64(k1, (p + 1) * S);
            SFX(row_dx)(dy + s0, x + s0, s1 - s0, mean, rstd, NULL, w ? rstd * w[p] : rstd,
                        q, cd, dx + s0);
        }
    }
}

/* Row family, one row's backward (see row.c for the parts), from the
 * tiles.  Part of row_impl.h. */

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

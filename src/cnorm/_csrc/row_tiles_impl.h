/* Row family, backward tiles (see row.c for the parts): the backward's
 * sums, lane sums over blocks of ROW_BLOCK values merged in double, and its
 * elementwise dx passes; no OpenMP.  Part of row_impl.h. */

/* What rounding the saved mean of a row to T lost, mean(x) - mean, for
 * backward to use the forward's x_hat: computed (one more pass over the row,
 * in cache) only where it is visible, |mean| * rstd > 1 in float32; else 0.
 * 0 too where it exceeds an ulp of mean: that mean is not the row's own
 * rounded (a caller's), and backward takes it as given.  A row with a NaN
 * or Inf gives NaN, which backward propagates anyway. */
static T SFX(row_mean_residual)(const T *x, int64_t n, T mean, T rstd)
{
    if (sizeof(T) >= sizeof(double) || !(fabs((double)mean) * (double)rstd > 1.0))
        return 0;
    double total = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += ROW_BLOCK) {
        const T *xb = x + i0;
        double part;
        CNORM_LANE_SUM(part, cnorm_min64(ROW_BLOCK, n - i0), k, xb[k] - mean);
        total += part;
    }
    const double delta = total / (double)n, m = fabs((double)mean);
    return fabs(delta) > (double)nextafterf((float)m, INFINITY) - m ? (T)0 : (T)delta;
}

/* Sums over n values of g = dy * w[k] (w == NULL: dy) and of g * x_hat,
 * x_hat = (x - mean) * rstd, in one pass: lanes per block, blocks added in
 * double. */
ROW_TILE void SFX(row_grad_sums)(const T *dy, const T *x, int64_t n, T mean, T rstd,
                                 const T *w, double *sum_g, double *sum_gx)
{
    *sum_g = *sum_gx = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += ROW_BLOCK) {
        const T *dyb = dy + i0, *xb = x + i0, *wb = w ? w + i0 : NULL;
        const int64_t nb = cnorm_min64(ROW_BLOCK, n - i0);
        double sg, sgx;
        if (wb)   /* explicit: GCC does not always unswitch these loops */
            CNORM_LANE_SUM2(sg, sgx, nb, k, dyb[k] * wb[k],
                          dyb[k] * wb[k] * ((xb[k] - mean) * rstd));
        else
            CNORM_LANE_SUM2(sg, sgx, nb, k, dyb[k], dyb[k] * ((xb[k] - mean) * rstd));
        *sum_g += sg;
        *sum_gx += sgx;
    }
}

/* dx = g * a + x_hat * q + c, g = dy * w[k] (w == NULL: dy), x_hat =
 * (x - mean) * rstd; a loop per NULL case, as in row_normalize.  dx may
 * equal dy. */
ROW_TILE void SFX(row_dx)(const T *dy, const T *x, int64_t n, T mean, T rstd,
                          const T *w, T a, T q, T c, T *dx)
{
    int64_t k;
    if (w)
        for (k = 0; k < n; k++)
            dx[k] = dy[k] * w[k] * a + ((x[k] - mean) * rstd) * q + c;
    else
        for (k = 0; k < n; k++)
            dx[k] = dy[k] * a + ((x[k] - mean) * rstd) * q + c;
}

/* row_dx with a = rstd that also sums each value's column gradients:
 * sw[k] += dy * x_hat, sb[k] += dy, or with `first` sw[k] = dy * x_hat,
 * sb[k] = dy (no zeroing pass).  dx may equal dy (each dy[k] is read before
 * dx[k] is written); x and w are inputs no output overlaps and sw, sb the
 * caller's scratch, hence restrict: without it GCC gives up on the run-time
 * alias checks of so many pointers and leaves the loop scalar. */
ROW_TILE void SFX(row_dx_cols)(const T *dy, const T *restrict x, int64_t n, T mean,
                               T delta, T rstd, const T *restrict w, T q, T c, T *dx,
                               T *restrict sw, T *restrict sb, int first)
{
    int64_t k;
    if (w)   /* a loop per NULL case, as in row_normalize */
        for (k = 0; k < n; k++) {
            const T d = dy[k], xh = ((x[k] - mean) - delta) * rstd;
            dx[k] = d * w[k] * rstd + xh * q + c;
            sw[k] = first ? d * xh : sw[k] + d * xh;
            sb[k] = first ? d : sb[k] + d;
        }
    else
        for (k = 0; k < n; k++) {
            const T d = dy[k], xh = ((x[k] - mean) - delta) * rstd;
            dx[k] = d * rstd + xh * q + c;
            sw[k] = first ? d * xh : sw[k] + d * xh;
            sb[k] = first ? d : sb[k] + d;
        }
}

/* dw[k] += sw[k], db[k] += sb[k] (dw or db may be NULL), or with `first`
 * dw[k] = sw[k], db[k] = sb[k]. */
ROW_TILE void SFX(row_flush_cols)(const T *restrict sw, const T *restrict sb, int64_t n,
                                  double *restrict dw, double *restrict db, int first)
{
    for (int64_t k = 0; dw && k < n; k++)
        dw[k] = first ? sw[k] : dw[k] + sw[k];
    for (int64_t k = 0; db && k < n; k++)
        db[k] = first ? sb[k] : db[k] + sb[k];
}

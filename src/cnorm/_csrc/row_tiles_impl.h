/* Row family, tiles (see row.c for the parts): a block's statistics and
 * the backward's sums, lane sums over blocks of ROW_BLOCK values merged in
 * double; no OpenMP.  Part of row_impl.h. */

/* Mean and m2 of one block in double, element by element: the slow path
 * for float blocks whose sums overflow T (|x| above ~1e19; an overflowed
 * sum can be NaN: +Inf in one lane or half, -Inf in another).  Blocks with
 * a NaN or Inf take it too and stay non-finite. */
static void SFX(row_block_moments_wide)(const T *x, int64_t n, double *mean, double *m2)
{
    double s = 0.0, q = 0.0;
    for (int64_t k = 0; k < n; k++)   /* no shift: an Inf at x[0] stays Inf */
        s += (double)x[k];
    *mean = s / (double)n;
    for (int64_t k = 0; k < n; k++)
        q += ((double)x[k] - *mean) * ((double)x[k] - *mean);
    *m2 = q;
}

/* Mean and m2 = sum((x - mean)**2) of x[0:n].  Per L1 block, one pass:
 * sums of d = x - c and d**2 around c, the mean of the block's first 32
 * values rounded to T (a shift that keeps float32 sums small), and
 * m2 = sum d**2 - (sum d)**2 / nb, which loses at most 1 bit where
 * sum d**2 <= 2 m2 (c within 1 std of the block mean: random data almost
 * always; a ramp or outliers at the head not).  Where it is not (or values
 * are not finite), an exact second pass while the block is in L1: around
 * the block mean rounded to T, less nb * (mean - c)**2.  Blocks merge in
 * double (Chan). */
ROW_TILE void SFX(row_moments)(const T *x, int64_t n, double *mean, double *m2)
{
    double count = 0.0;
    *mean = *m2 = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += ROW_BLOCK) {
        const T *xb = x + i0;
        const int64_t nb = cnorm_min64(ROW_BLOCK, n - i0), nh = cnorm_min64(nb, CNORM_LANES);
        double head, shifted, squares, bmean, bm2;
        CNORM_LANE_SUM(head, nh, k, xb[k]);
        const T x0 = isfinite(head) ? (T)(head / (double)nh) : xb[0];   /* Inf stays Inf */
        CNORM_LANE_SUM2(shifted, squares, nb, k, xb[k] - x0, (xb[k] - x0) * (xb[k] - x0));
        bmean = x0 + shifted / (double)nb;
        bm2 = squares - shifted * (shifted / (double)nb);
        if (!(bm2 >= squares * 0.5)) {   /* rare: the exact second pass */
            const T c = (T)bmean;
            CNORM_LANE_SUM(squares, nb, k, (xb[k] - c) * (xb[k] - c));
            bm2 = squares - (double)nb * (bmean - c) * (bmean - c);
        }
        if (sizeof(T) < sizeof(double) && !isfinite(squares))
            SFX(row_block_moments_wide)(xb, nb, &bmean, &bm2);
        cnorm_merge(&count, mean, m2, (double)nb, bmean, bm2);
    }
    /* float64 rows near the top of its range overflow the sums above */
    if (sizeof(T) == sizeof(double) && (!isfinite(*mean) || isnan(*m2)))
        (void)cnorm_moments_scaled((const double *)(const void *)x, 1, n, n, mean, m2);
}

/* sum(x**2) of x[0:n] (RMS norm): lanes per block, blocks added in double;
 * a block whose squares overflow T is redone in double. */
ROW_TILE double SFX(row_sum_squares)(const T *x, int64_t n)
{
    double total = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += ROW_BLOCK) {
        const T *xb = x + i0;
        const int64_t nb = cnorm_min64(ROW_BLOCK, n - i0);
        double squares;
        CNORM_LANE_SUM(squares, nb, k, xb[k] * xb[k]);
        if (sizeof(T) < sizeof(double) && isinf(squares)) {
            squares = 0.0;
            for (int64_t k = 0; k < nb; k++)
                squares += (double)xb[k] * (double)xb[k];
        }
        total += squares;
    }
    return total;
}

/* What rounding the saved mean of a row to T lost, mean(x) - mean, for
 * backward to use the forward's x_hat: computed (one more pass over the row,
 * in cache) only where it is visible, |mean| * rstd > 1 in float32; else 0.
 * A row with a NaN or Inf gives NaN, which backward propagates anyway. */
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
    return (T)(total / (double)n);
}

/* y = ((x - mean) - delta) * a * w[k] + b[k], at least `lower` (relu's
 * 0, else -inf: see act_lower), over n values; w == NULL means 1 and
 * b == NULL means the scalar c.  y may equal x.  mean is the
 * row mean rounded to T and delta what that rounding lost: x - mean is exact
 * for x near the mean, so |mean| >> std costs no precision.
 *
 * Here and in row_dx, row_dx_cols each NULL case has its own loop: GCC 13
 * if-converts a loop-invariant `b ? b[k] : c` into a masked vector load
 * from b, which on Intel costs a microcode assist per vector when b is
 * NULL (measured on a Xeon, layer norm without bias and RMS norm with
 * weight: 4x slower on the AVX-512 path, 38x on AVX2). */
ROW_TILE void SFX(row_normalize)(const T *x, int64_t n, T mean, T delta, T a,
                                 const T *w, const T *b, T c, T lower, T *y)
{
    int64_t k;
    if (w && b)
        for (k = 0; k < n; k++)
            y[k] = SFX(at_least)(((x[k] - mean) - delta) * a * w[k] + b[k], lower);
    else if (w)
        for (k = 0; k < n; k++)
            y[k] = SFX(at_least)(((x[k] - mean) - delta) * a * w[k] + c, lower);
    else if (b)
        for (k = 0; k < n; k++)
            y[k] = SFX(at_least)(((x[k] - mean) - delta) * a + b[k], lower);
    else
        for (k = 0; k < n; k++)
            y[k] = SFX(at_least)(((x[k] - mean) - delta) * a + c, lower);
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

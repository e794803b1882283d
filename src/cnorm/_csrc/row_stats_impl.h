/* Row family, forward tiles (see row.c for the parts): a block's
 * statistics, lane sums over blocks of ROW_BLOCK values merged in double,
 * and the normalizing pass; no OpenMP.  x and y are of the storage type
 * ST, a block at a time: read through LOAD_BLOCK and LOAD, written
 * through OUT_BLOCK and STORE_BLOCK (common.h), which convert 2-byte
 * values in registers or blocks in L1 (instantiate_narrow.h) and use T
 * blocks in place.  Part of row_impl.h
 * and row_narrow_impl.h. */

/* Mean and m2 of one block in double, element by element: the slow path
 * for float blocks whose sums overflow T (|x| above ~1e19; an overflowed
 * sum can be NaN: +Inf in one lane or half, -Inf in another).  Blocks with
 * a NaN or Inf take it too and stay non-finite. */
static void SFX(row_block_moments_wide)(const LT *x, int64_t n, double *mean, double *m2)
{
    double s = 0.0, q = 0.0;
    for (int64_t k = 0; k < n; k++)   /* no shift: an Inf at x[0] stays Inf */
        s += (double)LOAD(x[k]);
    *mean = s / (double)n;
    for (int64_t k = 0; k < n; k++)
        q += ((double)LOAD(x[k]) - *mean) * ((double)LOAD(x[k]) - *mean);
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
ROW_TILE void SFX(row_moments)(const ST *x, int64_t n, double *mean, double *m2)
{
    T buf[ROW_BUF];
    double count = 0.0;
    *mean = *m2 = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += ROW_BLOCK) {
        const int64_t nb = cnorm_min64(ROW_BLOCK, n - i0), nh = cnorm_min64(nb, CNORM_LANES);
        const LT *xb = LOAD_BLOCK(x + i0, buf, nb);
        double head, shifted, squares, bmean, bm2;
        CNORM_LANE_SUM(head, nh, k, LOAD(xb[k]));
        const T x0 = isfinite(head) ? (T)(head / (double)nh) : LOAD(xb[0]);   /* Inf stays Inf */
        CNORM_LANE_SUM2(shifted, squares, nb, k, LOAD(xb[k]) - x0,
                        (LOAD(xb[k]) - x0) * (LOAD(xb[k]) - x0));
        bmean = x0 + shifted / (double)nb;
        bm2 = squares - shifted * (shifted / (double)nb);
        if (!(bm2 >= squares * 0.5)) {   /* rare: the exact second pass */
            const T c = (T)bmean;
            CNORM_LANE_SUM(squares, nb, k, (LOAD(xb[k]) - c) * (LOAD(xb[k]) - c));
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
ROW_TILE double SFX(row_sum_squares)(const ST *x, int64_t n)
{
    T buf[ROW_BUF];
    double total = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += ROW_BLOCK) {
        const int64_t nb = cnorm_min64(ROW_BLOCK, n - i0);
        const LT *xb = LOAD_BLOCK(x + i0, buf, nb);
        double squares;
        CNORM_LANE_SUM(squares, nb, k, LOAD(xb[k]) * LOAD(xb[k]));
        if (sizeof(T) < sizeof(double) && isinf(squares)) {
            squares = 0.0;
            for (int64_t k = 0; k < nb; k++)
                squares += (double)LOAD(xb[k]) * (double)LOAD(xb[k]);
        }
        total += squares;
    }
    return total;
}

/* y = ((x - mean) - delta) * a * w[k] + b[k], at least `lower` (relu's
 * 0, else -inf: see act_lower), then silu where `silu`, over n values, a
 * block of ROW_BLOCK at a time; w == NULL means 1 and b == NULL means the
 * scalar c.  y may equal x.  mean is the row mean rounded to T and delta
 * what that rounding lost: x - mean is exact for x near the mean, so
 * |mean| >> std costs no precision.  Given mc (per-column means, for
 * batch-norm inference on samples), mc[k] replaces mean, and w and b are
 * not NULL.
 *
 * Here and in row_dx, row_dx_cols each NULL case has its own loop: GCC 13
 * if-converts a loop-invariant `b ? b[k] : c` into a masked vector load
 * from b, which on Intel costs a microcode assist per vector when b is
 * NULL (measured on a Xeon, layer norm without bias and RMS norm with
 * weight: 4x slower on the AVX-512 path, 38x on AVX2). */
ROW_TILE void SFX(row_normalize)(const ST *x, int64_t n, T mean, const T *restrict mc, T delta,
                                 T a, const T *w, const T *b, T c, T lower, int silu, ST *y)
{
    T buf[ROW_BUF];
    for (int64_t k0 = 0; k0 < n; k0 += ROW_STORE_BLOCK) {
        const int64_t nb = cnorm_min64(ROW_STORE_BLOCK, n - k0);
        const LT *xb = LOAD_BLOCK(x + k0, buf, nb);
        const T *wb = w ? w + k0 : NULL, *bb = b ? b + k0 : NULL, *mb = mc ? mc + k0 : NULL;
        T *yb = OUT_BLOCK(y + k0, buf);
        int64_t k;
        if (mb)
            for (k = 0; k < nb; k++)
                yb[k] = SFX(at_least)(((LOAD(xb[k]) - mb[k]) - delta) * a * wb[k] + bb[k], lower);
        else if (wb && bb)
            for (k = 0; k < nb; k++)
                yb[k] = SFX(at_least)(((LOAD(xb[k]) - mean) - delta) * a * wb[k] + bb[k], lower);
        else if (wb)
            for (k = 0; k < nb; k++)
                yb[k] = SFX(at_least)(((LOAD(xb[k]) - mean) - delta) * a * wb[k] + c, lower);
        else if (bb)
            for (k = 0; k < nb; k++)
                yb[k] = SFX(at_least)(((LOAD(xb[k]) - mean) - delta) * a + bb[k], lower);
        else
            for (k = 0; k < nb; k++)
                yb[k] = SFX(at_least)(((LOAD(xb[k]) - mean) - delta) * a + c, lower);
        if (silu)   /* the block is in L1 */
            SFX(silu)(yb, nb);
        STORE_BLOCK(yb, y + k0, nb);
    }
}


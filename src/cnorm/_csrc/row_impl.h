/* Row family body: included by row.c once per dtype with T (element type)
 * and SFX(name) (dtype suffix); see common.h for the convention.
 *
 * Tiles (ROW_TILE, no OpenMP, so a later SIMD dispatch can compile them per
 * ISA) work on one row or one run of S values; the public drivers at the end
 * own the threads.  Reductions are ROW_LANE_SUM over blocks of CNORM_BLOCK
 * values, merged across blocks in double. */

/* Mean and m2 of one block in double, element by element: the slow path
 * for float blocks whose sums overflow T (|x| above ~1e19).  Blocks with
 * an Inf take it too and stay non-finite. */
static void SFX(row_block_moments_wide)(const T *x, int64_t n, double *mean, double *m2)
{
    double s = 0.0, q = 0.0;
    for (int64_t k = 0; k < n; k++)
        s += (double)x[k] - (double)x[0];
    *mean = x[0] + s / (double)n;
    for (int64_t k = 0; k < n; k++)
        q += ((double)x[k] - *mean) * ((double)x[k] - *mean);
    *m2 = q;
}

/* Mean and m2 = sum((x - mean)**2) of x[0:n].  Per L1 block, two passes:
 * the sum of x - x[0] (the shift keeps float32 sums small) gives the block
 * mean; the sum of (x - c)**2 around c, that mean rounded to T, less
 * nb * (mean - c)**2 gives m2.  Blocks merge in double (Chan). */
ROW_TILE void SFX(row_moments)(const T *x, int64_t n, double *mean, double *m2)
{
    double count = 0.0;
    *mean = *m2 = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += CNORM_BLOCK) {
        const T *xb = x + i0, x0 = xb[0];
        const int64_t nb = cnorm_min64(CNORM_BLOCK, n - i0);
        double shifted, squares, bmean, bm2;
        ROW_LANE_SUM(shifted, nb, k, xb[k] - x0);
        bmean = x0 + shifted / (double)nb;
        const T c = (T)bmean;
        ROW_LANE_SUM(squares, nb, k, (xb[k] - c) * (xb[k] - c));
        bm2 = squares - (double)nb * (bmean - c) * (bmean - c);
        if (sizeof(T) < sizeof(double) && isinf(squares))
            SFX(row_block_moments_wide)(xb, nb, &bmean, &bm2);
        cnorm_merge(&count, mean, m2, (double)nb, bmean, bm2);
    }
}

/* sum(x**2) of x[0:n] (RMS norm): lanes per block, blocks added in double;
 * a block whose squares overflow T is redone in double. */
ROW_TILE double SFX(row_sum_squares)(const T *x, int64_t n)
{
    double total = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += CNORM_BLOCK) {
        const T *xb = x + i0;
        const int64_t nb = cnorm_min64(CNORM_BLOCK, n - i0);
        double squares;
        ROW_LANE_SUM(squares, nb, k, xb[k] * xb[k]);
        if (sizeof(T) < sizeof(double) && isinf(squares)) {
            squares = 0.0;
            for (int64_t k = 0; k < nb; k++)
                squares += (double)xb[k] * (double)xb[k];
        }
        total += squares;
    }
    return total;
}

/* y = (x - mean) * a * w[k] + b[k] over n values; w == NULL means 1 and
 * b == NULL means the scalar c.  The NULL tests are loop-invariant, so GCC
 * unswitches them into one vectorized loop per case.  y may equal x. */
ROW_TILE void SFX(row_normalize)(const T *x, int64_t n, T mean, T a,
                                 const T *w, const T *b, T c, T *y)
{
    for (int64_t k = 0; k < n; k++) {
        const T xa = (x[k] - mean) * a;
        y[k] = (w ? xa * w[k] : xa) + (b ? b[k] : c);
    }
}

/* Sums over n values of g = dy * w[k] (w == NULL: dy) and of g * x_hat,
 * x_hat = (x - mean) * rstd: one lane sum each (GCC vectorizes a lane loop
 * with one accumulator array well, with two it transposes). */
ROW_TILE void SFX(row_grad_sums)(const T *dy, const T *x, int64_t n, T mean, T rstd,
                                 const T *w, double *sum_g, double *sum_gx)
{
    *sum_g = *sum_gx = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += CNORM_BLOCK) {
        const T *dyb = dy + i0, *xb = x + i0, *wb = w ? w + i0 : NULL;
        const int64_t nb = cnorm_min64(CNORM_BLOCK, n - i0);
        double sg, sgx;
        if (wb) {   /* explicit: GCC does not always unswitch these loops */
            ROW_LANE_SUM(sg, nb, k, dyb[k] * wb[k]);
            ROW_LANE_SUM(sgx, nb, k, dyb[k] * wb[k] * ((xb[k] - mean) * rstd));
        } else {
            ROW_LANE_SUM(sg, nb, k, dyb[k]);
            ROW_LANE_SUM(sgx, nb, k, dyb[k] * ((xb[k] - mean) * rstd));
        }
        *sum_g += sg;
        *sum_gx += sgx;
    }
}

/* dx = g * a + x_hat * q + c, g = dy * w[k] (w == NULL: dy), x_hat =
 * (x - mean) * rstd; the NULL test is unswitched like row_normalize's.
 * dx may equal dy. */
ROW_TILE void SFX(row_dx)(const T *dy, const T *x, int64_t n, T mean, T rstd,
                          const T *w, T a, T q, T c, T *dx)
{
    for (int64_t k = 0; k < n; k++)
        dx[k] = (w ? dy[k] * w[k] : dy[k]) * a + ((x[k] - mean) * rstd) * q + c;
}

/* Per-column parameter gradients (S == 1) of R <= ROW_GROUP_ROWS rows of
 * K: dw[k] += sum_r dy * x_hat, db[k] += sum_r dy (either may be NULL);
 * mean == NULL means 0.  Per block of columns the R rows are summed in T on
 * the stack, then added in double: a conversion per R values, not per
 * value. */
ROW_TILE void SFX(row_col_grads)(const T *dy, const T *x, int64_t R, int64_t K,
                                 const T *mean, const T *rstd, double *dw, double *db)
{
    /* No NULL test left in the loops: GCC's unroll-and-jam of the row loop
     * would pull it into the column loop and leave that scalar. */
    T mu[ROW_GROUP_ROWS], sw[ROW_COLS] = {0}, sb[ROW_COLS] = {0};
    for (int64_t r = 0; r < R; r++)
        mu[r] = mean ? mean[r] : 0;
    for (int64_t k0 = 0; k0 < K; k0 += ROW_COLS) {
        const int64_t nk = cnorm_min64(ROW_COLS, K - k0);
        for (int64_t r = 0; r < R; r++) {
            const T *dyr = dy + r * K + k0, *xr = x + r * K + k0;
            for (int64_t k = 0; k < nk; k++) {
                sw[k] += dyr[k] * ((xr[k] - mu[r]) * rstd[r]);
                sb[k] += dyr[k];
            }
        }
        for (int64_t k = 0; k < nk; k++) {   /* flush, and reset for the next block */
            if (dw)
                dw[k0 + k] += sw[k];
            if (db)
                db[k0 + k] += sb[k];
            sw[k] = sb[k] = 0;
        }
    }
}

/* ---- one row --------------------------------------------------------- */

/* The part [k0, k1) of a row: y = (x - mean) * rstd * w + b, w and b (or
 * NULL) per column for S == 1, else per run of S values. */
static void SFX(row_normalize_part)(const T *x, int64_t k0, int64_t k1, int64_t S,
                                    T mean, T rstd, const T *w, const T *b, T *y)
{
    if (S == 1) {
        SFX(row_normalize)(x + k0, k1 - k0, mean, rstd, w ? w + k0 : NULL,
                           b ? b + k0 : NULL, 0, y + k0);
        return;
    }
    for (int64_t s0 = k0, s1; s0 < k1; s0 = s1) {
        const int64_t p = s0 / S;
        s1 = cnorm_min64(k1, (p + 1) * S);
        SFX(row_normalize)(x + s0, s1 - s0, mean, w ? rstd * w[p] : rstd, NULL, NULL,
                           b ? b[p] : 0, y + s0);
    }
}

/* Forward of one row of K values: statistics, then normalize while the row
 * is still in cache, prefetching next_x and next_y (the next row, or NULL)
 * piece by piece.  w, b: this row's P = K / S parameters, or NULL. */
static void SFX(row_forward_one)(const T *x, int64_t K, int64_t S, int center,
                                 double eps, const T *w, const T *b, T *y,
                                 T *mean_out, T *rstd_out, const T *next_x, T *next_y)
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
    /* The T-rounded mean is what backward will see: normalize with it. */
    const T mean = (T)mu, rstd = (T)(1.0 / sqrt(var + eps));
    if (mean_out)
        *mean_out = mean;
    if (rstd_out)
        *rstd_out = rstd;
    for (int64_t k0 = 0; k0 < K; k0 += ROW_PIECE) {
        const int64_t k1 = cnorm_min64(K, k0 + ROW_PIECE);
        const int64_t bytes = (k1 - k0) * (int64_t)sizeof(T);
        row_prefetch(next_x ? next_x + k0 : NULL, bytes, 0);
        row_prefetch(next_y ? next_y + k0 : NULL, bytes, 1);
        SFX(row_normalize_part)(x, k0, k1, S, mean, rstd, w, b, y);
    }
}

/* Backward of one row, first half: sum(g) and sum(g * x_hat) give the
 * coefficients of dx = g * rstd + x_hat * q + c, which is
 * rstd * (g - mean(g) - x_hat * mean(g * x_hat)) expanded (q is
 * proportional to rstd, not rstd**2, which underflows float for
 * |x| ~ 1e20 and above).  For S > 1 a
 * run's sums of dy and dy * x_hat give both its parameter's gradients
 * (added to dw[p], db[p] when not NULL) and, times w[p], its share of the
 * row sums; for S == 1 row_col_grads does the parameter gradients. */
static void SFX(row_grad_coefs)(const T *dy, const T *x, int64_t K, int64_t S,
                                int center, T mean, T rstd, const T *w,
                                double *dw, double *db, T *q, T *c)
{
    double sg = 0.0, sgx = 0.0;
    if (S == 1) {
        SFX(row_grad_sums)(dy, x, K, mean, rstd, w, &sg, &sgx);
    } else {
        for (int64_t p = 0; p < K / S; p++) {
            double sd, sdx, wp = w ? (double)w[p] : 1.0;
            SFX(row_grad_sums)(dy + p * S, x + p * S, S, mean, rstd, NULL, &sd, &sdx);
            sg += wp * sd;
            sgx += wp * sdx;
            if (dw)
                dw[p] += sdx;
            if (db)
                db[p] += sd;
        }
    }
    const double r = rstd;
    *q = (T)(-r * (sgx / (double)K));
    *c = (T)(center ? -r * (sg / (double)K) : 0.0);
}

/* Backward of one row, second half: dx from the coefficients, prefetching
 * the next_dy, next_x, next_dx rows (or NULL) piece by piece. */
static void SFX(row_apply_dx)(const T *dy, const T *x, int64_t K, int64_t S, T mean,
                              T rstd, const T *w, T q, T c, T *dx, const T *next_dy,
                              const T *next_x, T *next_dx)
{
    for (int64_t k0 = 0; k0 < K; k0 += ROW_PIECE) {
        const int64_t k1 = cnorm_min64(K, k0 + ROW_PIECE);
        const int64_t bytes = (k1 - k0) * (int64_t)sizeof(T);
        row_prefetch(next_dy ? next_dy + k0 : NULL, bytes, 0);
        row_prefetch(next_x ? next_x + k0 : NULL, bytes, 0);
        row_prefetch(next_dx ? next_dx + k0 : NULL, bytes, 1);
        if (S == 1) {
            SFX(row_dx)(dy + k0, x + k0, k1 - k0, mean, rstd, w ? w + k0 : NULL, rstd, q, c,
                        dx + k0);
            continue;
        }
        for (int64_t s0 = k0, s1; s0 < k1; s0 = s1) {
            const int64_t p = s0 / S;
            s1 = cnorm_min64(k1, (p + 1) * S);
            SFX(row_dx)(dy + s0, x + s0, s1 - s0, mean, rstd, NULL, w ? rstd * w[p] : rstd,
                        q, c, dx + s0);
        }
    }
}

/* ---- drivers ---------------------------------------------------------- */

typedef struct {
    const T *x, *weight, *bias;
    T *y, *mean, *rstd;
    int64_t M, K, G, S;
    int center;
    double eps;
} SFX(row_fwd_job);

/* Forward task m: row m (rows are independent: any split, same bits). */
static void SFX(row_forward_task)(const void *job, int64_t m)
{
    const SFX(row_fwd_job) *j = job;
    const int64_t K = j->K, off = (m % j->G) * (K / j->S);
    const int next = m + 1 < j->M && K * (int64_t)sizeof(T) <= ROW_PREFETCH_MAX;
    SFX(row_forward_one)(j->x + m * K, K, j->S, j->center, j->eps,
                         j->weight ? j->weight + off : NULL, j->bias ? j->bias + off : NULL,
                         j->y + m * K, j->mean ? j->mean + m : NULL,
                         j->rstd ? j->rstd + m : NULL, next ? j->x + (m + 1) * K : NULL,
                         next && j->y != j->x ? j->y + (m + 1) * K : NULL);
}

static int SFX(cnorm_row_forward)(const T *x, int64_t M, int64_t K, int64_t G, int64_t S,
                           int center, double eps, const T *weight, const T *bias,
                           T *y, T *mean, T *rstd)
{
    if (M == 0)
        return CNORM_OK;
    if (!row_valid(M, K, G, S) || !x || !y)
        return CNORM_EINVAL;
    const SFX(row_fwd_job) job = {x, weight, bias, y, mean, rstd, M, K, G, S, center, eps};
    row_run(cnorm_threads_for(M * K, M), M, SFX(row_forward_task), &job);
    return CNORM_OK;
}

typedef struct {
    const T *dy, *x, *mean, *rstd, *weight;
    T *dx;
    double *dweight, *dbias;
    const row_chunks *ch;
    int64_t M, K, G, S;
    int center;
} SFX(row_bwd_job);

/* Backward task c: the rows of chunk c, parameter gradients into its own
 * partial arrays.  With S == 1 and G == 1 the rows go in groups of up to
 * ROW_GROUP_ROWS that stay in L2 (ROW_GROUP_BYTES of dy and x): each row's
 * sums stream it from memory in order, row_col_grads then reads the group
 * from cache column block by column block (as the first touch, that
 * pattern defeats the hardware prefetchers), and dx last, as it may
 * overwrite dy. */
static void SFX(row_backward_task)(const void *job, int64_t c)
{
    const SFX(row_bwd_job) *j = job;
    const int64_t K = j->K, P = K / j->S;
    double *dw = row_chunk_part(j->ch, j->dweight, 0, c);
    double *db = row_chunk_part(j->ch, j->dbias, 1, c);
    if (dw)
        memset(dw, 0, (size_t)(j->G * P) * sizeof(double));
    if (db)
        memset(db, 0, (size_t)(j->G * P) * sizeof(double));
    const int col_grads = j->S == 1 && (dw || db);
    const int64_t group = col_grads && j->G == 1
        ? cnorm_max64(1, cnorm_min64(ROW_GROUP_ROWS,
                                     ROW_GROUP_BYTES / (2 * K * (int64_t)sizeof(T))))
        : 1;
    const int64_t end = cnorm_min64(j->M, (c + 1) * j->ch->rows);
    for (int64_t m0 = c * j->ch->rows; m0 < end; m0 += group) {
        const int64_t m1 = cnorm_min64(end, m0 + group);
        T q[ROW_GROUP_ROWS], cc[ROW_GROUP_ROWS];
        for (int64_t m = m0; m < m1; m++) {
            const int64_t off = (m % j->G) * P;
            SFX(row_grad_coefs)(j->dy + m * K, j->x + m * K, K, j->S, j->center,
                                j->center ? j->mean[m] : (T)0, j->rstd[m],
                                j->weight ? j->weight + off : NULL,
                                dw && !col_grads ? dw + off : NULL,
                                db && !col_grads ? db + off : NULL, &q[m - m0], &cc[m - m0]);
        }
        if (col_grads) {
            const int64_t off = (m0 % j->G) * P;
            SFX(row_col_grads)(j->dy + m0 * K, j->x + m0 * K, m1 - m0, K,
                               j->center ? j->mean + m0 : NULL, j->rstd + m0,
                               dw ? dw + off : NULL, db ? db + off : NULL);
        }
        for (int64_t m = m0; m < m1; m++) {
            /* while dx of row m is computed, row m + group comes in */
            const int64_t off = (m % j->G) * P, n = m + group;
            const int next = n < j->M && group * K * (int64_t)sizeof(T) <= ROW_PREFETCH_MAX;
            SFX(row_apply_dx)(j->dy + m * K, j->x + m * K, K, j->S,
                              j->center ? j->mean[m] : (T)0, j->rstd[m],
                              j->weight ? j->weight + off : NULL, q[m - m0], cc[m - m0],
                              j->dx + m * K, next ? j->dy + n * K : NULL,
                              next ? j->x + n * K : NULL,
                              next && j->dx != j->dy ? j->dx + n * K : NULL);
        }
    }
}

static int SFX(cnorm_row_backward)(const T *dy, const T *x, int64_t M, int64_t K, int64_t G,
                            int64_t S, int center, const T *mean, const T *rstd,
                            const T *weight, T *dx, double *dweight, double *dbias)
{
    if (M == 0) {
        row_zero_grads(K, G, S, dweight, dbias);
        return CNORM_OK;
    }
    if (!row_valid(M, K, G, S) || !dy || !x || !rstd || !dx || (center && !mean))
        return CNORM_EINVAL;
    row_chunks ch;
    if (row_chunks_init(&ch, M, K, G * (K / S), dweight != NULL, dbias != NULL))
        return CNORM_ENOMEM;
    const SFX(row_bwd_job) job = {dy, x, mean, rstd, weight, dx, dweight, dbias, &ch,
                                  M, K, G, S, center};
    row_run(cnorm_threads_for(M * K, ch.count), ch.count, SFX(row_backward_task), &job);
    row_chunks_merge(&ch, G * (K / S), dweight, dbias);   /* frees the partials */
    return CNORM_OK;
}

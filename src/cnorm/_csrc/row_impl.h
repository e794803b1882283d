/* Row family body: instantiated per element type and SIMD path through
 * instantiate.h, with T and SFX(name) as common.h describes.
 *
 * Tiles (ROW_TILE, no OpenMP) work on a row or a piece of one; the public
 * drivers at the end own the threads.  Reductions are ROW_LANE_SUM (or
 * ROW_LANE_SUM2) over blocks of CNORM_BLOCK values, merged across blocks in
 * double. */

#include "activation_impl.h"

/* Mean and m2 of one block in double, element by element: the slow path
 * for float blocks whose sums overflow T (|x| above ~1e19; an overflowed
 * sum can be NaN: +Inf in one lane or half, -Inf in another).  Blocks with
 * a NaN or Inf take it too and stay non-finite. */
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
        if (sizeof(T) < sizeof(double) && !isfinite(squares))
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

/* What rounding the saved mean of a row to T lost, mean(x) - mean, for
 * backward to use the forward's x_hat: computed (one more pass over the row,
 * in cache) only where it is visible, |mean| * rstd > 1 in float32; else 0.
 * A row with a NaN or Inf gives NaN, which backward propagates anyway. */
static T SFX(row_mean_residual)(const T *x, int64_t n, T mean, T rstd)
{
    if (sizeof(T) >= sizeof(double) || !(fabs((double)mean) * (double)rstd > 1.0))
        return 0;
    double total = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += CNORM_BLOCK) {
        const T *xb = x + i0;
        double part;
        ROW_LANE_SUM(part, cnorm_min64(CNORM_BLOCK, n - i0), k, xb[k] - mean);
        total += part;
    }
    return (T)(total / (double)n);
}

/* y = ((x - mean) - delta) * a * w[k] + b[k] over n values; w == NULL
 * means 1 and b == NULL means the scalar c.  y may equal x.  mean is the
 * row mean rounded to T and delta what that rounding lost: x - mean is exact
 * for x near the mean, so |mean| >> std costs no precision.
 *
 * Here and in row_dx, row_dx_cols each NULL case has its own loop: GCC 13
 * if-converts a loop-invariant `b ? b[k] : c` into a masked vector load
 * from b, which on Intel costs a microcode assist per vector when b is
 * NULL (measured on a Xeon, layer norm without bias and RMS norm with
 * weight: 4x slower on the AVX-512 path, 38x on AVX2). */
ROW_TILE void SFX(row_normalize)(const T *x, int64_t n, T mean, T delta, T a,
                                 const T *w, const T *b, T c, T *y)
{
    int64_t k;
    if (w && b)
        for (k = 0; k < n; k++)
            y[k] = ((x[k] - mean) - delta) * a * w[k] + b[k];
    else if (w)
        for (k = 0; k < n; k++)
            y[k] = ((x[k] - mean) - delta) * a * w[k] + c;
    else if (b)
        for (k = 0; k < n; k++)
            y[k] = ((x[k] - mean) - delta) * a + b[k];
    else
        for (k = 0; k < n; k++)
            y[k] = ((x[k] - mean) - delta) * a + c;
}

/* Sums over n values of g = dy * w[k] (w == NULL: dy) and of g * x_hat,
 * x_hat = (x - mean) * rstd, in one pass: lanes per block, blocks added in
 * double. */
ROW_TILE void SFX(row_grad_sums)(const T *dy, const T *x, int64_t n, T mean, T rstd,
                                 const T *w, double *sum_g, double *sum_gx)
{
    *sum_g = *sum_gx = 0.0;
    for (int64_t i0 = 0; i0 < n; i0 += CNORM_BLOCK) {
        const T *dyb = dy + i0, *xb = x + i0, *wb = w ? w + i0 : NULL;
        const int64_t nb = cnorm_min64(CNORM_BLOCK, n - i0);
        double sg, sgx;
        if (wb)   /* explicit: GCC does not always unswitch these loops */
            ROW_LANE_SUM2(sg, sgx, nb, k, dyb[k] * wb[k],
                          dyb[k] * wb[k] * ((xb[k] - mean) * rstd));
        else
            ROW_LANE_SUM2(sg, sgx, nb, k, dyb[k], dyb[k] * ((xb[k] - mean) * rstd));
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

/* ---- one row --------------------------------------------------------- */

/* The part [k0, k1) of a row: y = (x - mu) * rstd * w + b with
 * mu = mean + delta (row_normalize), w and b (or NULL) per column for
 * S == 1, else per run of S values. */
static void SFX(row_normalize_part)(const T *x, int64_t k0, int64_t k1, int64_t S,
                                    T mean, T delta, T rstd, const T *w, const T *b, T *y)
{
    if (S == 1) {
        SFX(row_normalize)(x + k0, k1 - k0, mean, delta, rstd, w ? w + k0 : NULL,
                           b ? b + k0 : NULL, 0, y + k0);
        return;
    }
    for (int64_t s0 = k0, s1; s0 < k1; s0 = s1) {
        const int64_t p = s0 / S;
        s1 = cnorm_min64(k1, (p + 1) * S);
        const T a = w ? rstd * w[p] : rstd;   /* one scale per run: delta goes into c */
        SFX(row_normalize)(x + s0, s1 - s0, mean, 0, a, NULL, NULL,
                           (T)((b ? (double)b[p] : 0.0) - (double)delta * (double)a), y + s0);
    }
}

/* Forward of one row of K values: statistics, then normalize while the row
 * is still in cache, prefetching next_x and next_y (the next row, or NULL)
 * piece by piece.  w, b: this row's P = K / S parameters, or NULL. */
static void SFX(row_forward_one)(const T *x, int64_t K, int64_t S, int center,
                                 double eps, int act, const T *w, const T *b, T *y,
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
        SFX(row_normalize_part)(x, k0, k1, S, mean, delta, rstd, w, b, y);
        if (act)   /* the piece is in L1 */
            SFX(activate)(y + k0, k1 - k0, act);
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

/* ---- drivers ---------------------------------------------------------- */

typedef struct {
    const T *x, *weight, *bias;
    T *y, *mean, *rstd;
    int64_t M, K, G, S;
    int center, act;
    double eps;
} SFX(row_fwd_job);

/* Forward task m: row m (rows are independent: any split, same bits). */
static void SFX(row_forward_task)(const void *job, int64_t m)
{
    const SFX(row_fwd_job) *j = job;
    const int64_t K = j->K, off = (m % j->G) * (K / j->S);
    const int next = m + 1 < j->M && K * (int64_t)sizeof(T) <= ROW_PREFETCH_MAX;
    SFX(row_forward_one)(j->x + m * K, K, j->S, j->center, j->eps, j->act,
                         j->weight ? j->weight + off : NULL, j->bias ? j->bias + off : NULL,
                         j->y + m * K, j->mean ? j->mean + m : NULL,
                         j->rstd ? j->rstd + m : NULL, next ? j->x + (m + 1) * K : NULL,
                         next && j->y != j->x ? j->y + (m + 1) * K : NULL);
}

static int SFX(cnorm_row_forward)(const T *x, int64_t M, int64_t K, int64_t G, int64_t S,
                           int center, double eps, int activation, const T *weight,
                           const T *bias, T *y, T *mean, T *rstd)
{
    if (!cnorm_activation_valid(activation))
        return CNORM_EINVAL;
    if (M == 0)
        return CNORM_OK;
    if (!row_valid(M, K, G, S) || !x || !y)
        return CNORM_EINVAL;
    const SFX(row_fwd_job) job = {x, weight, bias, y, mean, rstd, M, K, G, S, center,
                                  activation, eps};
    row_run(cnorm_threads_for(M * K, M), M, SFX(row_forward_task), &job);
    return CNORM_OK;
}

typedef struct {
    const T *x, *residual, *weight, *bias;
    T *y, *sum, *mean, *rstd;
    int64_t M, K;
    int center;
    double eps;
} SFX(row_add_job);

/* Residual-add task m: sum = x + residual for row m, then row m's forward
 * from sum while it is in cache. */
static void SFX(row_add_task)(const void *job, int64_t m)
{
    const SFX(row_add_job) *j = job;
    const int64_t K = j->K;
    const T *x = j->x + m * K, *r = j->residual + m * K;
    T *s = j->sum + m * K;
    for (int64_t k = 0; k < K; k++)
        s[k] = x[k] + r[k];
    const int next = m + 1 < j->M && K * (int64_t)sizeof(T) <= ROW_PREFETCH_MAX;
    /* the next rows of x and residual go to cache (residual as the "next y") */
    SFX(row_forward_one)(s, K, 1, j->center, j->eps, CNORM_ACT_NONE, j->weight, j->bias,
                         j->y + m * K, j->mean ? j->mean + m : NULL, j->rstd + m,
                         next ? j->x + (m + 1) * K : NULL,
                         next ? j->residual + (m + 1) * K : NULL);
}

static int SFX(cnorm_row_add_forward)(const T *x, const T *residual, int64_t M, int64_t K,
                                      int center, double eps, const T *weight,
                                      const T *bias, T *y, T *sum, T *mean, T *rstd)
{
    if (M == 0)
        return CNORM_OK;
    if (!row_valid(M, K, 1, 1) || !x || !residual || !y || !sum || !rstd || y == sum)
        return CNORM_EINVAL;
    const SFX(row_add_job) job = {x, residual, weight, bias, y, sum, mean, rstd, M, K, center,
                                  eps};
    row_run(cnorm_threads_for(M * K, M), M, SFX(row_add_task), &job);
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
 * partial arrays.  Each row's sums stream its dy and x from memory; its dx
 * pass then reads them from L1 while the next row comes in.  With S == 1
 * that pass also sums the column gradients in T, in the chunk's column
 * scratch, which goes to the partials every ROW_FLUSH_ROWS rows (every row
 * when G > 1: then consecutive rows have different parameters).  With
 * G == 1 the first flush assigns the partials, so they need no zeroing. */
static void SFX(row_backward_task)(const void *job, int64_t c)
{
    const SFX(row_bwd_job) *j = job;
    const int64_t K = j->K, P = K / j->S;
    double *dw = row_chunk_part(j->ch, j->dweight, 0, c);
    double *db = row_chunk_part(j->ch, j->dbias, 1, c);
    T *sw = j->ch->cols ? (T *)(j->ch->cols + c * j->ch->col_bytes) : NULL;
    T *sb = sw ? sw + K : NULL;
    const int64_t flush_rows = j->G == 1 ? ROW_FLUSH_ROWS : 1;
    if (dw && !(sw && j->G == 1))
        memset(dw, 0, (size_t)(j->G * P) * sizeof(double));
    if (db && !(sw && j->G == 1))
        memset(db, 0, (size_t)(j->G * P) * sizeof(double));
    const int64_t start = c * j->ch->rows, end = cnorm_min64(j->M, start + j->ch->rows);
    for (int64_t m = start; m < end; m++) {
        const int64_t off = (m % j->G) * P;
        const T mean = j->center ? j->mean[m] : (T)0, rstd = j->rstd[m];
        const T delta = SFX(row_mean_residual)(j->x + m * K, K, mean, rstd);
        const T *w = j->weight ? j->weight + off : NULL;
        T q, cc;
        SFX(row_grad_coefs)(j->dy + m * K, j->x + m * K, K, j->S, j->center, mean, delta,
                            rstd, w, dw && !sw ? dw + off : NULL, db && !sw ? db + off : NULL,
                            &q, &cc);
        const int next = m + 1 < j->M && K * (int64_t)sizeof(T) <= ROW_PREFETCH_MAX;
        SFX(row_apply_dx)(j->dy + m * K, j->x + m * K, K, j->S, mean, delta, rstd, w, q, cc,
                          j->dx + m * K, sw, sb, (m - start) % flush_rows == 0,
                          next ? j->dy + (m + 1) * K : NULL, next ? j->x + (m + 1) * K : NULL,
                          next && j->dx != j->dy ? j->dx + (m + 1) * K : NULL);
        if (sw && ((m - start + 1) % flush_rows == 0 || m + 1 == end))
            SFX(row_flush_cols)(sw, sb, K, dw ? dw + off : NULL, db ? db + off : NULL,
                                j->G == 1 && m - start < flush_rows);
    }
}

/* ---- few long rows: backward split by columns --------------------------- */

/* With few long rows (S == 1) the rows cannot be spread over threads, and
 * row chunks would each need partial gradients as long as a row.  Instead
 * each row is cut into segments of ROW_SEG columns: phase 1 sums each
 * (row, segment), the row sums are the segments' in segment order, and
 * phase 2 computes dx and the column gradients segment by segment; the
 * segments' columns are disjoint, so their gradients go straight to the
 * outputs.  Segments depend on K only: same bits for any thread count. */
typedef struct {
    const T *dy, *x, *mean, *rstd, *weight;
    T *dx;
    double *dweight, *dbias;
    double *sums;   /* [M][segs][2]: sum of g and of g * x_hat per segment */
    T *coef;        /* [M][2]: q and c per row */
    T *cols;        /* [segs][2 * ROW_SEG]: column sums per segment, or NULL */
    int64_t M, K, G, segs;
    int center;
} SFX(row_split_job);

/* Phase 1, task s: every row's sums over segment s.  (Split rows use the
 * saved mean as it is, without row_mean_residual, which needs the whole
 * row: for |mean| >> std their x_hat is off by mean's rounding.) */
static void SFX(row_split_sums_task)(const void *job, int64_t s)
{
    const SFX(row_split_job) *j = job;
    const int64_t K = j->K, k0 = s * ROW_SEG, n = cnorm_min64(ROW_SEG, K - k0);
    for (int64_t m = 0; m < j->M; m++) {
        const int64_t o = m * K + k0;
        double *out = j->sums + (m * j->segs + s) * 2;
        SFX(row_grad_sums)(j->dy + o, j->x + o, n, j->center ? j->mean[m] : (T)0, j->rstd[m],
                           j->weight ? j->weight + (m % j->G) * K + k0 : NULL, &out[0],
                           &out[1]);
    }
}

/* Phase 2, task s: dx of segment s in every row and, when wanted, the
 * segment's column gradients, summed in T over ROW_FLUSH_ROWS rows (one row
 * when G > 1), the first sums assigning the outputs when G == 1. */
static void SFX(row_split_dx_task)(const void *job, int64_t s)
{
    const SFX(row_split_job) *j = job;
    const int64_t K = j->K, k0 = s * ROW_SEG, n = cnorm_min64(ROW_SEG, K - k0);
    const int64_t flush_rows = j->G == 1 ? ROW_FLUSH_ROWS : 1;
    T *sw = j->cols ? j->cols + s * 2 * ROW_SEG : NULL, *sb = sw ? sw + ROW_SEG : NULL;
    for (int64_t g = 0; sw && j->G > 1 && g < j->G; g++) {   /* g may have no rows */
        if (j->dweight)
            memset(j->dweight + g * K + k0, 0, (size_t)n * sizeof(double));
        if (j->dbias)
            memset(j->dbias + g * K + k0, 0, (size_t)n * sizeof(double));
    }
    for (int64_t m = 0; m < j->M; m++) {
        const int64_t o = m * K + k0, off = (m % j->G) * K + k0;
        const T mean = j->center ? j->mean[m] : (T)0, rstd = j->rstd[m];
        const T *w = j->weight ? j->weight + off : NULL;
        const T q = j->coef[2 * m], c = j->coef[2 * m + 1];
        if (!sw) {
            SFX(row_dx)(j->dy + o, j->x + o, n, mean, rstd, w, rstd, q, c, j->dx + o);
            continue;
        }
        SFX(row_dx_cols)(j->dy + o, j->x + o, n, mean, 0, rstd, w, q, c, j->dx + o, sw, sb,
                         m % flush_rows == 0);
        if ((m + 1) % flush_rows == 0 || m + 1 == j->M)
            SFX(row_flush_cols)(sw, sb, n, j->dweight ? j->dweight + off : NULL,
                                j->dbias ? j->dbias + off : NULL, j->G == 1 && m < flush_rows);
    }
}

/* The backward of few long rows (see row_split_job). */
static int SFX(row_backward_split)(const T *dy, const T *x, int64_t M, int64_t K, int64_t G,
                                   int center, const T *mean, const T *rstd, const T *weight,
                                   T *dx, double *dweight, double *dbias)
{
    const int64_t segs = cnorm_cdiv64(K, ROW_SEG);
    const int grads = dweight || dbias;
    const size_t sums = (size_t)(M * segs * 2) * sizeof(double);
    const size_t coef = (size_t)(2 * M) * sizeof(T);
    char *scratch = malloc(sums + coef + (grads ? (size_t)(segs * 2 * ROW_SEG) * sizeof(T) : 0));
    if (!scratch)
        return CNORM_ENOMEM;
    SFX(row_split_job) job = {dy, x, mean, rstd, weight, dx, dweight, dbias, (double *)scratch,
                              (T *)(scratch + sums), grads ? (T *)(scratch + sums + coef) : NULL,
                              M, K, G, segs, center};
    const int nt = cnorm_threads_for(M * K, segs);
    row_run(nt, segs, SFX(row_split_sums_task), &job);
    for (int64_t m = 0; m < M; m++) {   /* row sums in segment order */
        double sg = 0.0, sgx = 0.0;
        for (int64_t s = 0; s < segs; s++) {
            sg += job.sums[(m * segs + s) * 2];
            sgx += job.sums[(m * segs + s) * 2 + 1];
        }
        SFX(row_dx_coefs)(sg, sgx, K, center, rstd[m], &job.coef[2 * m], &job.coef[2 * m + 1]);
    }
    row_run(nt, segs, SFX(row_split_dx_task), &job);
    free(scratch);
    return CNORM_OK;
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
    /* Long rows, too few for two chunks of ROW_FLUSH_ROWS rows: by columns. */
    if (S == 1 && K * (int64_t)sizeof(T) > ROW_PREFETCH_MAX && M < 2 * ROW_FLUSH_ROWS)
        return SFX(row_backward_split)(dy, x, M, K, G, center, mean, rstd, weight, dx, dweight,
                                       dbias);
    row_chunks ch;
    const int col_grads = S == 1 && (dweight || dbias);
    if (row_chunks_init(&ch, M, K, G * (K / S), dweight != NULL, dbias != NULL,
                        col_grads ? 2 * K * (int64_t)sizeof(T) : 0))
        return CNORM_ENOMEM;
    const SFX(row_bwd_job) job = {dy, x, mean, rstd, weight, dx, dweight, dbias, &ch,
                                  M, K, G, S, center};
    row_run(cnorm_threads_for(M * K, ch.count), ch.count, SFX(row_backward_task), &job);
    row_chunks_merge(&ch, G * (K / S), dweight, dbias);   /* frees the scratch */
    return CNORM_OK;
}

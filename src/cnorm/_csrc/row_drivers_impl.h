/* Row family, drivers (see row.c for the parts): residual add + norm, and
 * the backward of few long rows split by columns; rows or column segments
 * run in parallel (runtime.h).  Part of row_impl.h. */

typedef struct {
    const T *x, *residual, *weight, *bias;
    T *y, *sum, *mean, *rstd;
    int64_t M, K, rows;   /* rows: per task */
    int center, stream_sum;   /* stream_sum: row_add_streams */
    double eps;
} SFX(row_add_job);

/* Rows m0 to m1 of a residual add whose sum streams (row_add_streams):
 * each row's sum goes into an L1 buffer, from there to s, and the row's
 * forward reads the buffer, as s is not in cache. */
static void SFX(row_add_streamed)(const SFX(row_add_job) *j, int64_t m0, int64_t m1)
{
    T buf[ROW_ADD_ROW_BYTES / sizeof(T)];
    const int64_t K = j->K;
    for (int64_t m = m0; m < m1; m++) {
        const T *x = j->x + m * K, *r = j->residual + m * K;
        for (int64_t k = 0; k < K; k++)
            buf[k] = x[k] + r[k];
        SFX(stream_copy)(buf, j->sum + m * K, K);
        SFX(row_forward_one)(buf, K, 1, j->center, j->eps, CNORM_ACT_NONE, j->weight,
                             j->bias, j->y + m * K, j->mean ? j->mean + m : NULL,
                             j->rstd ? j->rstd + m : NULL);
    }
    cnorm_sfence();   /* this thread's streamed stores, visible before its task ends */
}

/* Residual-add task t: sum = x + residual for its block of rows in one
 * loop, then each row's forward from sum while the block is in L2.  One
 * long add keeps three memory streams going at once, where an add per row
 * between normalizations stalled (benchmarks/RESULTS.md, "Residual add by
 * blocks"). */
static void SFX(row_add_task)(const void *job, int64_t t)
{
    const SFX(row_add_job) *j = job;
    const int64_t K = j->K, m0 = t * j->rows, m1 = cnorm_min64(j->M, m0 + j->rows);
    if (j->stream_sum) {
        SFX(row_add_streamed)(j, m0, m1);
        return;
    }
    const T *x = j->x + m0 * K, *r = j->residual + m0 * K;
    T *s = j->sum + m0 * K;
    for (int64_t k = 0; k < (m1 - m0) * K; k++)
        s[k] = x[k] + r[k];
    for (int64_t m = m0; m < m1; m++)
        SFX(row_forward_one)(j->sum + m * K, K, 1, j->center, j->eps, CNORM_ACT_NONE,
                             j->weight, j->bias, j->y + m * K, j->mean ? j->mean + m : NULL,
                             j->rstd ? j->rstd + m : NULL);
}

static int SFX(cnorm_row_add_forward)(const T *x, const T *residual, int64_t M, int64_t K,
                                      int center, double eps, const T *weight,
                                      const T *bias, T *y, T *sum, T *mean, T *rstd)
{
    if (M == 0)   /* no rows: no pointer is read, the sizes still checked */
        return row_valid(1, K, 1, 1) ? CNORM_OK : CNORM_EINVAL;
    if (!row_valid(M, K, 1, 1) || !x || !residual || !y || !sum || y == sum)
        return CNORM_EINVAL;
    const int nt = cnorm_threads_for(M * K, M);
    const int64_t by_bytes = ROW_ADD_BLOCK_BYTES / (K * (int64_t)sizeof(T));
    const int64_t rows = cnorm_max64(1, cnorm_min64(by_bytes, cnorm_cdiv64(M, nt)));
    const SFX(row_add_job) job = {x, residual, weight, bias, y, sum, mean, rstd, M, K, rows,
                                  center, row_add_streams(M, K, sizeof(T)), eps};
    cnorm_parallel(nt, cnorm_cdiv64(M, rows), SFX(row_add_task), &job);
    return CNORM_OK;
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
    cnorm_parallel(nt, segs, SFX(row_split_sums_task), &job);
    for (int64_t m = 0; m < M; m++) {   /* row sums in segment order */
        double sg = 0.0, sgx = 0.0;
        for (int64_t s = 0; s < segs; s++) {
            sg += job.sums[(m * segs + s) * 2];
            sgx += job.sums[(m * segs + s) * 2 + 1];
        }
        SFX(row_dx_coefs)(sg, sgx, K, center, rstd[m], &job.coef[2 * m], &job.coef[2 * m + 1]);
    }
    cnorm_parallel(nt, segs, SFX(row_split_dx_task), &job);
    free(scratch);
    return CNORM_OK;
}

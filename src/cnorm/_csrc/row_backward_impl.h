/* Row family, backward driver (see row.c for the parts): the public
 * backward kernel, chunks of rows in parallel, each row's sums then its dx
 * from the tiles.  x, dy and dx are of the storage type ST, a row at a
 * time: read through LOAD_ROW and written through OUT_BLOCK and
 * STORE_BLOCK (common.h).  Part of row_impl.h and row_narrow_impl.h. */

typedef struct {
    const ST *dy, *x;
    const T *mean, *rstd, *weight;
    ST *dx;
    double *dweight, *dbias;
    const row_chunks *ch;
    int64_t M, K, G, S;
    int center, col_grads;   /* col_grads: S == 1 and a gradient wanted */
} SFX(row_bwd_job);

/* Backward task c: the rows of chunk c, parameter gradients into its own
 * partial arrays.  Each row's sums stream its dy and x from memory; its dx
 * pass then reads them from cache (2-byte storage: each row of dy and x
 * converted once into the chunk's two row buffers, dx written over dy's
 * and stored from there).  With S == 1
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
    T *cols = j->ch->cols ? (T *)(j->ch->cols + c * j->ch->col_bytes) : NULL;
    T *sw = j->col_grads ? cols : NULL, *sb = sw ? sw + K : NULL;
    T *rows = cols ? cols + (j->col_grads ? 2 * K : 0) : NULL;   /* ROW_ROW_BUFS * K */
    const int64_t flush_rows = j->G == 1 ? ROW_FLUSH_ROWS : 1;
    if (dw && !(sw && j->G == 1))
        memset(dw, 0, (size_t)(j->G * P) * sizeof(double));
    if (db && !(sw && j->G == 1))
        memset(db, 0, (size_t)(j->G * P) * sizeof(double));
    const int64_t start = c * j->ch->rows, end = cnorm_min64(j->M, start + j->ch->rows);
    for (int64_t m = start; m < end; m++) {
        const int64_t off = (m % j->G) * P;
        const T mean = j->center ? j->mean[m] : (T)0, rstd = j->rstd[m];
        const T *dy = LOAD_ROW(j->dy + m * K, rows, K), *x = LOAD_ROW(j->x + m * K, rows + K, K);
        T *dx = OUT_BLOCK(j->dx + m * K, rows);
        const T delta = SFX(row_mean_residual)(x, K, mean, rstd);
        const T *w = j->weight ? j->weight + off : NULL;
        T q, cc;
        SFX(row_grad_coefs)(dy, x, K, j->S, j->center, mean, delta, rstd, w,
                            dw && !sw ? dw + off : NULL, db && !sw ? db + off : NULL, &q, &cc);
        SFX(row_apply_dx)(dy, x, K, j->S, mean, delta, rstd, w, q, cc, dx, sw, sb,
                          (m - start) % flush_rows == 0);
        STORE_BLOCK(dx, j->dx + m * K, K);
        if (sw && ((m - start + 1) % flush_rows == 0 || m + 1 == end))
            SFX(row_flush_cols)(sw, sb, K, dw ? dw + off : NULL, db ? db + off : NULL,
                                j->G == 1 && m - start < flush_rows);
    }
}

/* The row backward on chunks of rows, or split by columns for few long
 * rows (row_splits).  2-byte storage takes rows that fit its buffers only
 * (cnorm_row_backward_rows_fit; lowp.c's chunks take the others). */
static int SFX(cnorm_row_backward)(const ST *dy, const ST *x, int64_t M, int64_t K, int64_t G,
                                   int64_t S, int center, const T *mean, const T *rstd,
                                   const T *weight, ST *dx, double *dweight, double *dbias)
{
    if (M == 0) {   /* no rows: sums of nothing, the sizes still checked */
        if (!row_valid(1, K, G, S))
            return CNORM_EINVAL;
        row_zero_grads(K, G, S, dweight, dbias);
        return CNORM_OK;
    }
    if (!row_valid(M, K, G, S) || !dy || !x || !rstd || !dx || (center && !mean))
        return CNORM_EINVAL;
#if CNORM_NARROW_STORAGE
    if (!cnorm_row_backward_rows_fit(K))
        return CNORM_EINVAL;
#else
    if (row_splits(M, K, S, sizeof(T)))
        return SFX(row_backward_split)(dy, x, M, K, G, center, mean, rstd, weight, dx, dweight,
                                       dbias);
#endif
    row_chunks ch;
    const int col_grads = S == 1 && (dweight || dbias);
    if (row_chunks_init(&ch, M, K, G * (K / S), dweight != NULL, dbias != NULL,
                        ((col_grads ? 2 : 0) + ROW_ROW_BUFS) * K * (int64_t)sizeof(T)))
        return CNORM_ENOMEM;
    const SFX(row_bwd_job) job = {dy, x, mean, rstd, weight, dx, dweight, dbias, &ch,
                                  M, K, G, S, center, col_grads};
    cnorm_parallel(cnorm_threads_for(M * K, ch.count), ch.count, SFX(row_backward_task), &job);
    row_chunks_merge(&ch, G * (K / S), dweight, dbias);   /* frees the scratch */
    return CNORM_OK;
}

/* The row family's 2-byte kernels (row.c, instantiate_narrow.h): float16
 * / bfloat16 x and y as their uint16_t bits, float32 parameters and
 * statistics.  row_forward is cnorm.h's cnorm_row_forward_f16/_bf16,
 * row_backward_rows lowp.c's row backward for the rows that fit;
 * row_moments, row_dots, row_bn_dx and row_affine (row_batch_impl.h) are
 * lowp.c's batch norm. */
#ifndef CNORM_ROW_NARROW_H
#define CNORM_ROW_NARROW_H

#include "common.h"

#define CNORM_ROW_NARROW_KERNELS(X, ST, SFX)                                            \
    X(SFX, row_forward,                                                                \
      (const ST *x, int64_t M, int64_t K, int64_t G, int64_t S, int center, double eps, \
       int activation, const float *weight, const float *bias, ST *y, float *mean,     \
       float *rstd),                                                                   \
      (x, M, K, G, S, center, eps, activation, weight, bias, y, mean, rstd))           \
    X(SFX, row_backward_rows,                                                          \
      (const ST *dy, const ST *x, int64_t M, int64_t K, int64_t G, int64_t S, int center, \
       const float *mean, const float *rstd, const float *weight, ST *dx,              \
       double *dweight, double *dbias),                                                \
      (dy, x, M, K, G, S, center, mean, rstd, weight, dx, dweight, dbias))             \
    X(SFX, row_moments, (const ST *x, int64_t M, int64_t K, double *mean, double *m2), \
      (x, M, K, mean, m2))                                                             \
    X(SFX, row_dots,                                                                   \
      (const ST *dy, const ST *x, int64_t M, int64_t K, int64_t cycle,                 \
       const float *center, double *sdy, double *sdx),                                 \
      (dy, x, M, K, cycle, center, sdy, sdx))                                          \
    X(SFX, row_bn_dx,                                                                  \
      (const ST *dy, const ST *x, int64_t M, int64_t K, int64_t cycle,                 \
       const float *center, const float *a, const float *k1, const float *k3, ST *dx), \
      (dy, x, M, K, cycle, center, a, k1, k3, dx))                                     \
    X(SFX, row_affine,                                                                 \
      (const ST *x, int64_t M, int64_t K, int64_t cycle, const float *center,           \
       const float *scale, const float *shift, int activation, ST *y),                 \
      (x, M, K, cycle, center, scale, shift, activation, y))
#define CNORM_ROW_NARROW_TYPES(X) X(uint16_t, bf16) X(uint16_t, f16)

/* Whether row_backward_rows takes rows of K values (row.c). */
int cnorm_row_backward_rows_fit(int64_t K);

#define CNORM_ROW_NARROW_DECLARE(SFX, name, params, args) int cnorm_##name##_##SFX params;
#define CNORM_ROW_NARROW_DECLARE_TYPE(ST, SFX) \
    CNORM_ROW_NARROW_KERNELS(CNORM_ROW_NARROW_DECLARE, ST, SFX)
CNORM_ROW_NARROW_TYPES(CNORM_ROW_NARROW_DECLARE_TYPE)
#undef CNORM_ROW_NARROW_DECLARE
#undef CNORM_ROW_NARROW_DECLARE_TYPE

#endif /* CNORM_ROW_NARROW_H */

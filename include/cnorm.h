/*
 * cnorm.h -- public C API of the cnorm normalization kernels.
 *
 * Plain C99, no Python. Every array is C-contiguous; sizes and indices are
 * int64_t so tensors above 2**31 elements work. Each kernel exists for
 * float32 (suffix _f32, T = float) and float64 (suffix _f64, T = double).
 *
 * Views (see docs/design.md, section 1):
 *   channel view (N, C, S): element (n, c, s) is at x[(n*C + c)*S + s];
 *     statistics per channel c over all n and s.  NCHW with axis=1 is
 *     (N, C, H*W); channels-last is (N*H*W, C, 1).
 *   row view (M, K): statistics per contiguous row m.  The per-element
 *     parameter of (m, k) is weight[(m % G) * (K / S) + k / S]:
 *       layer / RMS norm:  G = 1, S = 1          (one parameter per column)
 *       group norm:        G = groups, S = H*W   (one per channel)
 *       instance norm:     G = C, S = H*W        (one per channel)
 *
 * Return value: CNORM_OK, or CNORM_ENOMEM when scratch memory could not be
 * allocated (nothing is written to outputs then), or CNORM_EINVAL for sizes
 * that make no sense (negative, K not divisible by S, ...) or a required
 * pointer that is NULL.
 *
 * Aliasing: an output may be the same array as an input where a function
 * says so ("y may equal x"); otherwise outputs must not overlap inputs.
 *
 * Results do not depend on the number of threads: partial sums and moments
 * are merged in a fixed order.  All functions are thread-safe: scratch
 * memory is per call.  No function touches the Python interpreter.
 *
 * Caches: the channel functions write an output of 64 MiB or more that is
 * not one of their inputs with non-temporal stores when S >= 32 (float32)
 * or 24 (float64), i.e. channels-first layouts, so it is not left in the
 * caches.
 */
#ifndef CNORM_H
#define CNORM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the C API, equal to the Python package's __version__.  The
 * minor number grows when a kernel is added, the major one when an existing
 * signature or meaning changes. */
#define CNORM_VERSION_MAJOR 0
#define CNORM_VERSION_MINOR 1
#define CNORM_VERSION_PATCH 0
#define CNORM_VERSION_HEX \
    ((CNORM_VERSION_MAJOR << 16) | (CNORM_VERSION_MINOR << 8) | CNORM_VERSION_PATCH)

#define CNORM_OK 0
#define CNORM_ENOMEM (-1)
#define CNORM_EINVAL (-2)

/* ---- library configuration ------------------------------------------- */

/* Threads used by the kernels; n <= 0 restores the default, which follows
 * OpenMP's own setting (OMP_NUM_THREADS, threadpoolctl) at each call. */
void cnorm_set_num_threads(int n);
int cnorm_get_num_threads(void);
/* 1 when the kernels were built with OpenMP, else 0. */
int cnorm_openmp_enabled(void);
/* Force serial execution (used after fork(); see README). */
void cnorm_set_serial_only(int on);
/* Name of the SIMD code path selected at run time ("avx512", "avx2",
 * "baseline"). */
const char *cnorm_simd_path(void);

/* Chan et al.'s pairwise update: merge (nb, mean_b, m2_b) into (na, mean_a,
 * m2_a).  The same formula merges blocks, threads, processes and machines. */
void cnorm_moments_merge(double *na, double *mean_a, double *m2_a,
                         double nb, double mean_b, double m2_b);

/* ---- channel family: (N, C, S) ---------------------------------------- */

/* Per-channel mean and m2 = sum((x - mean)**2) over the N*S values of each
 * channel, in one pass over memory (blocked Welford/Chan). */
int cnorm_channel_moments_f32(const float *x, int64_t N, int64_t C, int64_t S,
                              double *mean, double *m2);
int cnorm_channel_moments_f64(const double *x, int64_t N, int64_t C, int64_t S,
                              double *mean, double *m2);

/* y[n, c, s] = x[n, c, s] * scale[c] + shift[c].  y may equal x. */
int cnorm_channel_affine_f32(const float *x, int64_t N, int64_t C, int64_t S,
                             const float *scale, const float *shift, float *y);
int cnorm_channel_affine_f64(const double *x, int64_t N, int64_t C, int64_t S,
                             const double *scale, const double *shift, double *y);

/* Optional batch-renormalization inputs of the training forward
 * (Ioffe 2017).  r and d are written per channel. */
typedef struct cnorm_renorm {
    const double *running_mean;   /* [C], before this step's update */
    const double *running_var;    /* [C] */
    double rmax;                  /* r is clipped to [1/rmax, rmax] */
    double dmax;                  /* d is clipped to [-dmax, dmax] */
    double *r;                    /* [C] out */
    double *d;                    /* [C] out */
} cnorm_renorm;

/* Batch-norm training forward: batch statistics, then
 * y = (x - mean) * invstd * weight + bias with invstd = 1/sqrt(var + eps);
 * with renorm != NULL, x_hat = (x - mean) * invstd * r + d instead.
 * weight and bias may be NULL (1 and 0).  mean and var (biased) are written
 * per channel in float64.  y may equal x.  Requires N*S >= 1. */
int cnorm_bn_forward_train_f32(const float *x, int64_t N, int64_t C, int64_t S,
                               const float *weight, const float *bias, double eps,
                               const cnorm_renorm *renorm,
                               float *y, double *mean, double *var);
int cnorm_bn_forward_train_f64(const double *x, int64_t N, int64_t C, int64_t S,
                               const double *weight, const double *bias, double eps,
                               const cnorm_renorm *renorm,
                               double *y, double *mean, double *var);

/* Batch-norm inference: y = (x - running_mean) / sqrt(running_var + eps)
 * * weight + bias.  weight and bias may be NULL.  y may equal x. */
int cnorm_bn_forward_infer_f32(const float *x, int64_t N, int64_t C, int64_t S,
                               const float *running_mean, const float *running_var,
                               const float *weight, const float *bias, double eps,
                               float *y);
int cnorm_bn_forward_infer_f64(const double *x, int64_t N, int64_t C, int64_t S,
                               const double *running_mean, const double *running_var,
                               const double *weight, const double *bias, double eps,
                               double *y);

/* Batch-norm backward with saved mean and invstd (per channel):
 *   sum_dy[c]      = sum(dy)                    (= dbias)
 *   sum_dy_xhat[c] = sum(dy * (x - mean) * invstd)   (= dweight)
 *   dx = weight * invstd * (dy - sum_dy/M - x_hat * sum_dy_xhat/M), M = N*S.
 * weight may be NULL (1); dx may be NULL (only the sums) and may equal dy;
 * sum_dy and sum_dy_xhat are required. */
int cnorm_bn_backward_f32(const float *dy, const float *x, int64_t N, int64_t C,
                          int64_t S, const float *mean, const float *invstd,
                          const float *weight, float *dx,
                          double *sum_dy, double *sum_dy_xhat);
int cnorm_bn_backward_f64(const double *dy, const double *x, int64_t N, int64_t C,
                          int64_t S, const double *mean, const double *invstd,
                          const double *weight, double *dx,
                          double *sum_dy, double *sum_dy_xhat);

/* ---- row family: (M, K) ------------------------------------------------ */

/* Row-normalization forward.  center = 1: layer/group/instance norm,
 * x_hat = (x - mean[m]) * rstd[m], rstd = 1/sqrt(var + eps) (biased var);
 * center = 0: RMS norm, x_hat = x * rstd[m], rstd = 1/sqrt(mean(x**2) + eps),
 * and mean may be NULL (if given, it is set to 0).  y = x_hat * weight[p] +
 * bias[p] with p as in the header comment; weight and bias may be NULL.
 * y may equal x. */
int cnorm_row_forward_f32(const float *x, int64_t M, int64_t K, int64_t G,
                          int64_t S, int center, double eps,
                          const float *weight, const float *bias,
                          float *y, float *mean, float *rstd);
int cnorm_row_forward_f64(const double *x, int64_t M, int64_t K, int64_t G,
                          int64_t S, int center, double eps,
                          const double *weight, const double *bias,
                          double *y, double *mean, double *rstd);

/* Row-normalization backward with saved mean (NULL when center = 0) and
 * rstd.  g = dy * weight[p];  center = 1:
 *   dx = rstd * (g - mean_k(g) - x_hat * mean_k(g * x_hat));
 * center = 0:  dx = rstd * (g - x_hat * mean_k(g * x_hat)).
 * dweight[p] = sum over rows and s of dy * x_hat, dbias[p] = sum of dy
 * (each has G*K/S entries and may be NULL).  dx may equal dy. */
int cnorm_row_backward_f32(const float *dy, const float *x, int64_t M, int64_t K,
                           int64_t G, int64_t S, int center,
                           const float *mean, const float *rstd,
                           const float *weight, float *dx,
                           double *dweight, double *dbias);
int cnorm_row_backward_f64(const double *dy, const double *x, int64_t M, int64_t K,
                           int64_t G, int64_t S, int center,
                           const double *mean, const double *rstd,
                           const double *weight, double *dx,
                           double *dweight, double *dbias);

#ifdef __cplusplus
}
#endif

#endif /* CNORM_H */

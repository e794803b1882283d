/*
 * cnorm.h -- public C API of the cnorm normalization kernels.
 *
 * Plain C99, no Python. Every array is C-contiguous; sizes and indices are
 * int64_t so tensors above 2**31 elements work. Each kernel exists for
 * float32 (suffix _f32, T = float) and float64 (suffix _f64, T = double).
 * The exact signatures are in cnorm_kernels.def, the list from which the
 * declarations at the end of this file are expanded; each section below
 * documents its functions.
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
 * that make no sense (negative, K not divisible by S, ...), an unknown
 * activation, or a required pointer that is NULL (every pointer a function
 * does not say may be NULL is required; the row functions accept NULL
 * pointers when M == 0).  CNORM_EINVAL is returned before anything is read
 * or written.
 *
 * Aliasing: an output may be the same array as an input where a function
 * says so ("y may equal x", "dx may equal dy": never dx == x); otherwise
 * outputs must not overlap inputs, parameters or statistics, in whole or in
 * part (the loops are written with restrict).  The Python API copies
 * through a temporary where a caller's out= would break this.
 *
 * Alignment: every array must be aligned to its element type (the loops
 * load whole floats, doubles, uint16_t); the Python API copies a misaligned
 * view (e.g. at an odd byte offset of a bytes buffer) to an aligned buffer.
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
#define CNORM_VERSION_MINOR 4
#define CNORM_VERSION_PATCH 0
#define CNORM_VERSION_HEX \
    ((CNORM_VERSION_MAJOR << 16) | (CNORM_VERSION_MINOR << 8) | CNORM_VERSION_PATCH)

#define CNORM_OK 0
#define CNORM_ENOMEM (-1)
#define CNORM_EINVAL (-2)

/* Activation codes of the forward kernels' `activation` argument (since 0.2):
 * y = act(normalized * weight + bias), applied in the same pass. */
#define CNORM_ACT_NONE 0
#define CNORM_ACT_RELU 1   /* max(y, 0); NaN stays NaN */
#define CNORM_ACT_SILU 2   /* y * sigmoid(y) */

/* ---- library configuration ------------------------------------------- */

/* cnorm_set_num_threads(n), cnorm_get_num_threads(): threads used by the
 * kernels; n <= 0 restores the default, which follows
 * OpenMP's own setting (OMP_NUM_THREADS, threadpoolctl) at each call. */
/* cnorm_openmp_enabled(): 1 when the kernels were built with OpenMP, else 0. */
/* cnorm_set_serial_only(on): force serial execution (used after fork(); see README). */
/* cnorm_simd_path(): name of the SIMD code path selected at run time ("avx512", "avx2",
 * "baseline"). */
/* cnorm_build_compiler(): the compiler that built the kernels and the flags cnorm added, e.g.
 * "gcc 12.2.0, flags: -O3 -fopenmp" (since 0.2). */

/* cnorm_f16_to_f32, cnorm_bf16_to_f32: n float16 / bfloat16 values (as their uint16_t bits) to
 * float32, exactly.  cnorm_f32_to_f16, cnorm_f32_to_bf16: float32 to float16 / bfloat16,
 * rounded to nearest even (overflow to Inf, NaN stays NaN).  Since 0.2. */

/* cnorm_moments_merge: Chan et al.'s pairwise update: merge (nb, mean_b, m2_b) into (na, mean_a,
 * m2_a).  The same formula merges blocks, threads, processes and machines.  Where
 * mean_b - mean_a is not finite the mean is the weighted sum of the two (an inf mean stays
 * inf, infs of both signs give NaN, finite means of opposite sign near 1e308 stay finite). */

/* ---- channel family: (N, C, S) ---------------------------------------- */

/* cnorm_channel_moments_*: per-channel mean and m2 = sum((x - mean)**2) over the N*S values of each
 * channel, in one pass over memory (blocked Welford/Chan). */

/* cnorm_channel_affine_*: y[n, c, s] = x[n, c, s] * scale[c] + shift[c].  y may equal x. */

/* cnorm_channel_standardize_*: y[n, c, s] = act((x[n, c, s] - center[c]) * scale[c] + shift[c]),
 * the centred form (exact x - center near center: full precision for data far from 0), act a
 * CNORM_ACT_* code.  y may equal x. */

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

/* cnorm_bn_forward_train_*: batch-norm training forward: batch statistics, then
 * y = (x - mean) * invstd * weight + bias with invstd = 1/sqrt(var + eps);
 * with renorm != NULL, x_hat = (x - mean) * invstd * r + d instead.
 * weight and bias may be NULL (1 and 0).  mean and var (biased) are written
 * per channel in float64.  y may equal x.  Requires N*S >= 1.  activation: CNORM_ACT_*,
 * applied to y in the same pass. */

/* cnorm_bn_forward_infer_*: batch-norm inference: y = (x - running_mean) / sqrt(running_var + eps)
 * * weight + bias, then activation (CNORM_ACT_*).  weight and bias may be NULL.  y may equal
 * x. */

/* cnorm_bn_backward_*: batch-norm backward with saved mean and invstd (per channel):
 *   sum_dy[c]      = sum(dy)                    (= dbias)
 *   sum_dy_xhat[c] = sum(dy * (x - mean) * invstd)   (= dweight)
 *   dx = weight * invstd * (dy - sum_dy/M - x_hat * sum_dy_xhat/M), M = N*S.
 * weight may be NULL (1); dx may be NULL (only the sums) and may equal dy;
 * sum_dy and sum_dy_xhat are required. */

/* cnorm_bn_backward_dx_*: the dx of cnorm_bn_backward from given sums and count M (> 0), e.g.
 * sums all-reduced over the processes of a synchronized batch norm; dx may equal dy. */

/* ---- row family: (M, K) ------------------------------------------------ */

/* cnorm_row_forward_*: row-normalization forward.  center = 1: layer/group/instance norm,
 * x_hat = (x - mean[m]) * rstd[m], rstd = 1/sqrt(var + eps) (biased var);
 * center = 0: RMS norm, x_hat = x * rstd[m], rstd = 1/sqrt(mean(x**2) + eps),
 * and mean may be NULL (if given, it is set to 0).  mean is saved rounded to
 * T, and x_hat uses the exact mean.  y = x_hat * weight[p] +
 * bias[p] with p as in the header comment; weight and bias may be NULL;
 * then activation (CNORM_ACT_*).  mean and rstd may be NULL (not written:
 * inference needs neither).  y may equal x. */

/* cnorm_row_add_forward_*: residual add + layer norm (center = 1) or RMS norm (center = 0)
 * over rows of K values (G = S = 1) in one pass: sum = x + residual (rounded to T) is
 * written, then y is row_forward of sum.  weight, bias, mean and rstd may be NULL.  sum may
 * equal x or residual; y may equal x or residual but not sum. */

/* cnorm_row_backward_*: row-normalization backward with saved mean (NULL when center = 0) and
 * rstd.  g = dy * weight[p];  center = 1:
 *   dx = rstd * (g - mean_k(g) - x_hat * mean_k(g * x_hat));
 * center = 0:  dx = rstd * (g - x_hat * mean_k(g * x_hat)).
 * dweight[p] = sum over rows and s of dy * x_hat, dbias[p] = sum of dy
 * (each has G*K/S entries and may be NULL).  dx may equal dy.  mean is
 * taken as the forward's, i.e. the row mean rounded to T: where that
 * rounding is visible in float32 (|mean| * rstd > 1) x_hat uses the row's
 * exact mean, as the forward did (rows split across threads, M small and K
 * large, use mean as given). */

/* ---- float16 / bfloat16 ----------------------------------------------- */

/* cnorm_row_forward_f16/_bf16, cnorm_bn_forward_infer_f16/_bf16: cnorm_row_forward_f32 and
 * cnorm_bn_forward_infer_f32 for x and y of float16 / bfloat16 (their uint16_t bits) with float32
 * parameters and statistics: computed in float32 on values converted in registers or in
 * cache-sized blocks, y rounded to nearest even (the float32 kernel's result rounded once).
 * y may equal x.  Since 0.2. */

/* cnorm_bn_forward_train_f16/_bf16: cnorm_bn_forward_train_f32 for x and y of float16 /
 * bfloat16 with float32 weight and bias: one pass of chunks converted in cache reduces the
 * moments (merged in an order that depends on the shape only: the same bits for any thread
 * count), a second normalizes them as the float32 kernel does, y rounded to nearest even.
 * mean and var (and renorm's r, d) are float64 as there.  y may equal x.  Since 0.3. */

/* cnorm_row_backward_f16/_bf16: cnorm_row_backward_f32 for dy, x and dx of float16 /
 * bfloat16 with float32 mean, rstd and weight: chunks of rows converted in cache, dx rounded to
 * nearest even; dweight and dbias (float64, may be NULL) are summed per piece of chunks and
 * merged in an order that depends on the shape only (the same bits for any thread count).  dx
 * may equal dy.  Since 0.4. */

/* cnorm_bn_backward_f16/_bf16: cnorm_bn_backward_f32 for dy, x and dx of float16 / bfloat16
 * with float32 mean, invstd and weight, the same way: the sums (float64) are the same bits for
 * any thread count; dx may be NULL (the sums only) and may equal dy.  Since 0.3. */

/* ---- declarations, from the list ------------------------------------- */

#include "cnorm_kernels.def"

#define CNORM_DECLARE_RUNTIME(ret, name, params, args) ret cnorm_##name params;
CNORM_RUNTIME_FUNCTIONS(CNORM_DECLARE_RUNTIME)
CNORM_LOW_PRECISION_FUNCTIONS(CNORM_DECLARE_RUNTIME)
#undef CNORM_DECLARE_RUNTIME

#define CNORM_DECLARE_KERNEL(SFX, name, params, args) int cnorm_##name##_##SFX params;
#define CNORM_DECLARE_ELEMENT_TYPE(T, SFX) CNORM_KERNELS(CNORM_DECLARE_KERNEL, T, SFX)
CNORM_ELEMENT_TYPES(CNORM_DECLARE_ELEMENT_TYPE)
#undef CNORM_DECLARE_ELEMENT_TYPE
#undef CNORM_DECLARE_KERNEL

#ifdef __cplusplus
}
#endif

#endif /* CNORM_H */

/* The runtime both kernel families run on (docs/design.md, "Threads and
 * determinism"): the thread policy and the parallel runner, the
 * deterministic merges of per-piece partial results, lane sums and their
 * fold, and per-call scratch.  Nothing here knows a family's geometry. */
#ifndef CNORM_RUNTIME_H
#define CNORM_RUNTIME_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include "cnorm.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* The loops are written with C99 restrict; MSVC's default C dialect spells
 * it __restrict (with /std:c11 it is the keyword). */
#if defined(_MSC_VER) && !defined(__clang__) && !defined(__STDC_VERSION__)
#define restrict __restrict
#endif

static inline int64_t cnorm_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t cnorm_max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t cnorm_cdiv64(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* ---- threads ---------------------------------------------------------- */

/* Below this many elements of work a kernel stays on the calling thread:
 * waking a team costs more than it saves. */
#define CNORM_PARALLEL_MIN_WORK ((int64_t)1 << 15)

/* Threads a kernel may use for `work` elements, split into `tasks`
 * independent pieces (never more threads than tasks).  With the default
 * thread count (no cnorm_set_num_threads), never more than the CPUs other
 * processes leave free: a static team larger than that waits at every
 * barrier for its descheduled members. */
int cnorm_threads_for(int64_t work, int64_t tasks);

/* 1 while no cnorm_set_num_threads(n > 0) is in force (config.c). */
int cnorm_threads_default(void);

typedef void (*cnorm_task)(const void *job, int64_t t);

/* Runs task(job, t) for t in [0, n) on nt threads, static schedule.  The
 * pieces and the order their results are merged in never depend on nt, so
 * any nt gives the same bits.  One thread stays out of the OpenMP runtime:
 * even a serial region costs libgomp a team set-up with futex calls, as
 * long as a whole small row.  Inline, so a serial caller's loop can inline
 * its task. */
static inline void cnorm_parallel(int nt, int64_t n, cnorm_task task, const void *job)
{
#ifdef _OPENMP
    if (nt > 1) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t t = 0; t < n; t++)
            task(job, t);
        return;
    }
#endif
    (void)nt;
    for (int64_t t = 0; t < n; t++)
        task(job, t);
}

/* ---- deterministic merges ---------------------------------------------- */

/* Chan's pairwise update: (na, ma, m2a) becomes the count, mean and sum of
 * squared deviations of both parts. */
static inline void cnorm_merge(double *na, double *ma, double *m2a,
                               double nb, double mb, double m2b)
{
    if (nb == 0.0)
        return;
    if (*na == 0.0) {
        *na = nb; *ma = mb; *m2a = m2b;
        return;
    }
    double n = *na + nb;
    double delta = mb - *ma;
    /* delta not finite (an inf mean, or means of opposite sign near 1e308):
     * the weighted sum, whose IEEE result is then the mean's (inf + finite
     * is inf, -inf + inf NaN; finite means stay finite) */
    *ma = isfinite(delta) ? *ma + delta * (nb / n) : *ma * (*na / n) + mb * (nb / n);
    *m2a += m2b + delta * delta * (*na * nb / n);
    *na = n;
}

/* cnorm_merge of kw columns that share the counts na and nb: the
 * per-column work has no division, so it vectorizes. */
static inline void cnorm_merge_cols(double na, double *ma, double *m2a, double nb,
                                    const double *mb, const double *m2b, int64_t kw)
{
    if (nb == 0.0)
        return;
    if (na == 0.0) {
        for (int64_t k = 0; k < kw; k++) {
            ma[k] = mb[k];
            m2a[k] = m2b[k];
        }
        return;
    }
    const double n = na + nb, w = nb / n, f = na * nb / n;
    for (int64_t k = 0; k < kw; k++) {   /* as cnorm_merge */
        const double d = mb[k] - ma[k];
        ma[k] = isfinite(d) ? ma[k] + d * w : ma[k] * (na / n) + mb[k] * w;
        m2a[k] += m2b[k] + d * d * f;
    }
}

/* Mean and m2 of float64 values in `runs` runs of `len`, run i at x + i*ld,
 * scaled by a power of two (exact) so that no sum overflows: the slow path
 * for data near the top of float64's range, where the kernels' shifted sums
 * overflow (values of +-1.7e308 give a mean of -inf and m2 NaN).  The mean
 * comes out finite; m2 is inf only where it is beyond float64's range.
 * Where a value is NaN or infinite, the mean is +-inf where the infinities
 * have one sign and there is no NaN, else NaN (what the exact sum gives)
 * and m2 NaN, and it returns 0; else 1. */
int cnorm_moments_scaled(const double *x, int64_t runs, int64_t ld, int64_t len,
                         double *mean, double *m2);

/* out[0..n) += each of `parts` partial arrays, in order; partial q starts
 * at first + q * stride.  Sums over pieces in a fixed order. */
static inline void cnorm_add_parts(double *out, const double *first, int64_t parts,
                                   int64_t stride, int64_t n)
{
    for (int64_t q = 0; q < parts; q++)
        for (int64_t k = 0; k < n; k++)
            out[k] += first[q * stride + k];
}

/* ---- lane sums ---------------------------------------------------------- *
 * A sum runs in CNORM_LANES accumulators of the element type T, so its adds
 * form independent chains and the loop runs at the adder's throughput, not
 * its latency: 4 AVX2 registers of float (8 SSE2, 2 AVX-512).  Also 32 for
 * double: with 16, GCC 12 vectorizes CNORM_LANE_SUM2 across the outer loop
 * with a permute per value (10x the instructions) instead of lane-wise.
 * Plain lane loops: GCC vectorizes them without -ffast-math because the
 * summation order is the code's, hence the same for every thread count. */
#define CNORM_LANES 32

/* acc[0..h) += acc[h..2h): one halving of a fold, upper half onto lower. */
#define CNORM_FOLD_STEP(acc, h)                                               \
    for (int l_ = 0; l_ < (h); l_++)                                          \
        (acc)[l_] += (acc)[l_ + (h)]

/* acc[0] = the sum of acc[0 : CNORM_LANES] as a fixed pairwise tree: a few
 * vector adds where a lane-by-lane chain was 32 dependent scalar ones, and
 * the same order on every ISA. */
#define CNORM_FOLD(acc)                                                       \
    do {                                                                      \
        CNORM_FOLD_STEP(acc, 16); CNORM_FOLD_STEP(acc, 8);                    \
        CNORM_FOLD_STEP(acc, 4); CNORM_FOLD_STEP(acc, 2);                     \
        CNORM_FOLD_STEP(acc, 1);                                              \
    } while (0)

/* result = sum of expr over k in [0, n), in CNORM_LANES accumulators of
 * type T folded by CNORM_FOLD. */
#define CNORM_LANE_SUM(result, n, k, expr)                                    \
    do {                                                                      \
        T acc_[CNORM_LANES] = {0};                                            \
        int64_t i_ = 0;                                                       \
        for (; i_ + CNORM_LANES <= (n); i_ += CNORM_LANES)                    \
            for (int l_ = 0; l_ < CNORM_LANES; l_++) {                        \
                const int64_t k = i_ + l_;                                    \
                acc_[l_] += (expr);                                           \
            }                                                                 \
        for (int l_ = 0; i_ + l_ < (n); l_++) {                               \
            const int64_t k = i_ + l_;                                        \
            acc_[l_] += (expr);                                               \
        }                                                                     \
        CNORM_FOLD(acc_);                                                     \
        (result) = acc_[0];                                                   \
    } while (0)

/* Two lane sums in one loop over k, so a backward reads dy and x once for
 * both (the compiler shares the subexpressions of value1 and value2). */
#define CNORM_LANE_SUM2(result1, result2, n, k, value1, value2)               \
    do {                                                                      \
        T a_[CNORM_LANES] = {0}, b_[CNORM_LANES] = {0};                       \
        int64_t i_ = 0;                                                       \
        for (; i_ + CNORM_LANES <= (n); i_ += CNORM_LANES)                    \
            for (int l_ = 0; l_ < CNORM_LANES; l_++) {                        \
                const int64_t k = i_ + l_;                                    \
                a_[l_] += (value1);                                           \
                b_[l_] += (value2);                                           \
            }                                                                 \
        for (int l_ = 0; i_ + l_ < (n); l_++) {                               \
            const int64_t k = i_ + l_;                                        \
            a_[l_] += (value1);                                               \
            b_[l_] += (value2);                                               \
        }                                                                     \
        CNORM_FOLD(a_);                                                       \
        CNORM_FOLD(b_);                                                       \
        (result1) = a_[0];                                                    \
        (result2) = b_[0];                                                    \
    } while (0)

/* ---- scratch ------------------------------------------------------------ */

/* One allocation for a call's scratch, carved into `n` parts of bytes[i]
 * bytes, each starting on its own cache line (threads writing neighbouring
 * parts do not share a line); parts[i] is NULL where bytes[i] is 0.  *block
 * is what to free (NULL when nothing was needed).  CNORM_ENOMEM before
 * anything is written when memory runs out. */
int cnorm_scratch_alloc(int n, const int64_t *bytes, void **parts, void **block);

#endif /* CNORM_RUNTIME_H */

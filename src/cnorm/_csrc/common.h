/* Internal helpers shared by the kernel families: threading policy, the
 * Chan merge, block sizes and the type-template convention.
 *
 * Template convention: a family's body lives in <family>_impl.h, written
 * with T (the element type) and SFX(name) (a suffix per element type and
 * SIMD path, e.g. name_f32_avx2); instantiate.h includes it once per path
 * and instantiate_types.h once per element type, so there is one copy of
 * every loop for every dtype and path. */
#ifndef CNORM_COMMON_H
#define CNORM_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <math.h>
#include "cnorm.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Elements per statistics block: small enough that the block's second pass
 * (squared deviations) hits L1, large enough to amortize the Chan merge. */
#define CNORM_BLOCK 2048
/* Below this many elements of work a kernel stays on the calling thread:
 * waking a team costs more than it saves. */
#define CNORM_PARALLEL_MIN_WORK ((int64_t)1 << 15)

/* Threads a kernel may use for `work` elements, split into `tasks`
 * independent pieces (never more threads than tasks). */
int cnorm_threads_for(int64_t work, int64_t tasks);

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
    *ma += delta * (nb / n);
    *m2a += m2b + delta * delta * (*na * nb / n);
    *na = n;
}

static inline int cnorm_activation_valid(int a)
{
    return a == CNORM_ACT_NONE || a == CNORM_ACT_RELU || a == CNORM_ACT_SILU;
}

static inline int64_t cnorm_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t cnorm_max64(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t cnorm_cdiv64(int64_t a, int64_t b) { return (a + b - 1) / b; }

#endif /* CNORM_COMMON_H */

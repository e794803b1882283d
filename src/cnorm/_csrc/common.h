/* What every kernel source includes: the runtime (runtime.h), the
 * activation codes' check and the type-template convention.
 *
 * Template convention: a family's body lives in <family>_impl.h (which
 * includes its parts, <family>_<part>_impl.h, in order), written with T
 * (the element type) and SFX(name) (a suffix per element type and SIMD
 * path, e.g. name_f32_avx2); instantiate.h includes it once per path and
 * instantiate_types.h once per element type, so there is one copy of every
 * loop for every dtype and path. */
#ifndef CNORM_COMMON_H
#define CNORM_COMMON_H

#include <math.h>
#include "runtime.h"

static inline int cnorm_activation_valid(int a)
{
    return a == CNORM_ACT_NONE || a == CNORM_ACT_RELU || a == CNORM_ACT_SILU;
}

#endif /* CNORM_COMMON_H */

/* Instantiates a kernel family once per element type and SIMD path.
 *
 * The family's .c file defines CNORM_FAMILY_IMPL (its *_impl.h, written
 * with T and SFX as common.h describes) and includes this file; each
 * public name then exists as name_f32_base, name_f32_avx2, ... and
 * CNORM_DISPATCH (below) defines the public name_f32 that calls the path
 * chosen at run time (simd.h).  The x86 paths are the same source compiled
 * with target options; no -march flag is needed at build time. */
#include "simd.h"

#define T float
#define SFX(name) name##_f32_base
#include CNORM_FAMILY_IMPL
#undef T
#undef SFX
#define T double
#define SFX(name) name##_f64_base
#include CNORM_FAMILY_IMPL
#undef T
#undef SFX

#if CNORM_HAVE_X86_PATHS
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define T float
#define SFX(name) name##_f32_avx2
#include CNORM_FAMILY_IMPL
#undef T
#undef SFX
#define T double
#define SFX(name) name##_f64_avx2
#include CNORM_FAMILY_IMPL
#undef T
#undef SFX
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#define T float
#define SFX(name) name##_f32_avx512
#include CNORM_FAMILY_IMPL
#undef T
#undef SFX
#define T double
#define SFX(name) name##_f64_avx512
#include CNORM_FAMILY_IMPL
#undef T
#undef SFX
#pragma GCC pop_options

/* name(params) calls name_<path>(args) for the path in use. */
#define CNORM_DISPATCH(name, params, args)                                    \
    int name params                                                           \
    {                                                                         \
        switch (cnorm_simd_level()) {                                         \
        case CNORM_SIMD_AVX512: return name##_avx512 args;                    \
        case CNORM_SIMD_AVX2: return name##_avx2 args;                        \
        default: return name##_base args;                                     \
        }                                                                     \
    }
#else
#define CNORM_DISPATCH(name, params, args) \
    int name params { return name##_base args; }
#endif

/* Instantiates a kernel family once per element type and SIMD path, and
 * defines its public, dispatching entry points.
 *
 * The family's .c file defines CNORM_FAMILY_IMPL (its *_impl.h, written
 * with T and SFX as common.h describes) and CNORM_FAMILY_KERNELS (its list
 * in cnorm_kernels.def), then includes this file.  Each kernel then exists
 * as name_f32_base, name_f32_avx2, ... (instantiate_types.h) and the public
 * name_f32 calls the path chosen at run time (simd.h).  The x86 paths are
 * the same source compiled in target regions (simd.h) under GCC and Clang;
 * no -march flag is needed at build time. */
#include "simd.h"

/* A family instantiated for other element types names the file that
 * instantiates them and their list (row.c: the 2-byte forward). */
#ifndef CNORM_FAMILY_TYPES
#define CNORM_FAMILY_TYPES "instantiate_types.h"
#define CNORM_FAMILY_ELEMENT_TYPES CNORM_ELEMENT_TYPES
#endif

#define CNORM_PASTE3_(a, b, c) a##b##c
#define CNORM_PASTE3(a, b, c) CNORM_PASTE3_(a, b, c)

/* CNORM_PATH_VEC_BYTES: the path's widest vector register (the baseline's
 * is SSE2's on x86-64 and unused elsewhere). */
#define CNORM_PATH base
#define CNORM_PATH_VEC_BYTES 16
#include CNORM_FAMILY_TYPES
#undef CNORM_PATH
#undef CNORM_PATH_VEC_BYTES

#if CNORM_HAVE_X86_PATHS
CNORM_TARGET_AVX2_BEGIN
#define CNORM_PATH avx2
#define CNORM_PATH_VEC_BYTES 32
#include CNORM_FAMILY_TYPES
#undef CNORM_PATH
#undef CNORM_PATH_VEC_BYTES
CNORM_TARGET_END

CNORM_TARGET_AVX512_BEGIN
#define CNORM_PATH avx512
#define CNORM_PATH_VEC_BYTES 64
#include CNORM_FAMILY_TYPES
#undef CNORM_PATH
#undef CNORM_PATH_VEC_BYTES
CNORM_TARGET_END

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

/* One dispatching definition per (kernel of the family, element type). */
#define CNORM_DISPATCH_KERNEL(SFX, name, params, args) \
    CNORM_DISPATCH(cnorm_##name##_##SFX, params, args)
#define CNORM_DISPATCH_ELEMENT_TYPE(T, SFX) \
    CNORM_FAMILY_KERNELS(CNORM_DISPATCH_KERNEL, T, SFX)
CNORM_FAMILY_ELEMENT_TYPES(CNORM_DISPATCH_ELEMENT_TYPE)

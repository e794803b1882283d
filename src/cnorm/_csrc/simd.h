/* Run-time SIMD dispatch.  No -march=native: each kernel family is compiled
 * once per path below (the x86 ones with GCC/Clang target pragmas) and the
 * public entry points call the path chosen once at first use. */
#ifndef CNORM_SIMD_H
#define CNORM_SIMD_H

#define CNORM_SIMD_BASELINE 0
#define CNORM_SIMD_AVX2 1
#define CNORM_SIMD_AVX512 2

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define CNORM_HAVE_X86_PATHS 1
#else
#define CNORM_HAVE_X86_PATHS 0
#endif

/* Target regions: every function defined between CNORM_TARGET_<PATH>_BEGIN
 * and CNORM_TARGET_END is compiled for that path's instructions.  GCC takes
 * target pragmas (and defines __AVX2__ etc. inside); Clang ignores those and
 * takes a target attribute applied to each function of the region (without
 * the feature macros: code inside tests CNORM_PATH_VEC_BYTES instead).  An
 * intrinsic of the path fails to compile outside a working region, which
 * config.c's path probes rely on. */
#if CNORM_HAVE_X86_PATHS && defined(__clang__)
#define CNORM_TARGET_AVX2_BEGIN \
    _Pragma("clang attribute push(__attribute__((target(\"avx2,fma\"))), apply_to = function)")
/* one string literal: _Pragma takes no concatenation */
#define CNORM_TARGET_AVX512_BEGIN \
    _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512vl,avx512bw,avx512dq,avx2,fma\"))), apply_to = function)")
#define CNORM_TARGET_END _Pragma("clang attribute pop")
#elif CNORM_HAVE_X86_PATHS
#define CNORM_TARGET_AVX2_BEGIN _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")")
#define CNORM_TARGET_AVX512_BEGIN \
    _Pragma("GCC push_options")   \
    _Pragma("GCC target(\"avx512f,avx512vl,avx512bw,avx512dq,avx2,fma\")")
#define CNORM_TARGET_END _Pragma("GCC pop_options")
#endif

/* CNORM_SIMD_* level in use: what the CPU supports, capped by the
 * environment variable CNORM_SIMD (baseline | avx2 | avx512). */
int cnorm_simd_level(void);

#endif /* CNORM_SIMD_H */

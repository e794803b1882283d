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

/* CNORM_SIMD_* level in use: what the CPU supports, capped by the
 * environment variable CNORM_SIMD (baseline | avx2 | avx512). */
int cnorm_simd_level(void);

#endif /* CNORM_SIMD_H */

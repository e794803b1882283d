/* Library configuration: thread count, fork safety, build facts. */
#include <string.h>

#include "common.h"
#include "simd.h"

#if defined(_OPENMP) && (defined(__unix__) || defined(__APPLE__))
#include <pthread.h>
#endif

static int threads_override = 0;   /* 0: follow OpenMP's own setting */
static volatile int serial_only = 0;

#if defined(_OPENMP) && (defined(__unix__) || defined(__APPLE__))
/* GNU libgomp cannot start a thread team in a child forked after the parent
 * used one: the child hangs.  A team of one thread is safe, so a forked child
 * runs every kernel serially (prefork servers fork one worker per core). */
static void run_serially_after_fork(void) { serial_only = 1; }

__attribute__((constructor)) static void register_fork_handler(void)
{
    pthread_atfork(NULL, NULL, run_serially_after_fork);
}
#endif

void cnorm_set_num_threads(int n) { threads_override = n > 0 ? n : 0; }

int cnorm_threads_default(void) { return threads_override == 0; }

void cnorm_set_serial_only(int on) { serial_only = on != 0; }

int cnorm_get_num_threads(void)
{
#ifdef _OPENMP
    if (serial_only)
        return 1;
    return threads_override > 0 ? threads_override : omp_get_max_threads();
#else
    return 1;
#endif
}

int cnorm_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* The SIMD path: the best the CPU supports, capped by CNORM_SIMD
 * ("baseline", "avx2" or "avx512") so a lower path can be forced. */
static int detect_simd_level(void)
{
    int level = CNORM_SIMD_BASELINE;
#if CNORM_HAVE_X86_PATHS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        level = CNORM_SIMD_AVX2;
    if (level == CNORM_SIMD_AVX2 && __builtin_cpu_supports("avx512f")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512dq"))
        level = CNORM_SIMD_AVX512;
#endif
    const char *cap = getenv("CNORM_SIMD");
    if (cap != NULL) {
        int wanted = strcmp(cap, "baseline") == 0 ? CNORM_SIMD_BASELINE
                     : strcmp(cap, "avx2") == 0   ? CNORM_SIMD_AVX2
                                                  : CNORM_SIMD_AVX512;
        if (wanted < level)
            level = wanted;
    }
    return level;
}

int cnorm_simd_level(void)
{
    static volatile int level = -1;   /* detection is idempotent: a race is benign */
    if (level < 0)
        level = detect_simd_level();
    return level;
}

#if CNORM_HAVE_X86_PATHS
#include <immintrin.h>

/* Path probes: each runs an instruction of its path and returns the path's
 * name.  Its intrinsics compile only inside a region that really targets
 * them, so a compiler that ignored the regions (as Clang ignores GCC's
 * target pragmas) fails the build instead of naming a path it never
 * compiled. */
CNORM_TARGET_AVX2_BEGIN
static const char *avx2_probe(void)
{
    volatile float one = 1.0f;
    float out[8];
    const __m256 v = _mm256_set1_ps(one);
    _mm256_storeu_ps(out, _mm256_fmadd_ps(v, v, v));
    return out[7] == 2.0f ? "avx2" : "avx2 (fma failed)";
}
CNORM_TARGET_END

CNORM_TARGET_AVX512_BEGIN
static const char *avx512_probe(void)
{
    volatile float one = 1.0f;
    float out[16];
    const __m512 v = _mm512_set1_ps(one);
    _mm512_storeu_ps(out, _mm512_fmadd_ps(v, v, v));
    return out[15] == 2.0f ? "avx512" : "avx512 (fma failed)";
}
CNORM_TARGET_END
#endif

const char *cnorm_simd_path(void)
{
#if CNORM_HAVE_X86_PATHS
    switch (cnorm_simd_level()) {
    case CNORM_SIMD_AVX512: return avx512_probe();
    case CNORM_SIMD_AVX2: return avx2_probe();
    default: break;
    }
#endif
    return "baseline";
}

#define CNORM_STR_(x) #x
#define CNORM_STR(x) CNORM_STR_(x)

/* The flags cnorm's build added (setup.py), after Python's own. */
#ifndef CNORM_BUILD_FLAGS
#define CNORM_BUILD_FLAGS ""
#endif

const char *cnorm_build_compiler(void)
{
#if defined(__clang__)
    return "clang " CNORM_STR(__clang_major__) "." CNORM_STR(__clang_minor__) "."
           CNORM_STR(__clang_patchlevel__) ", flags: " CNORM_BUILD_FLAGS;
#elif defined(__GNUC__)
    return "gcc " __VERSION__ ", flags: " CNORM_BUILD_FLAGS;
#elif defined(_MSC_VER)
    return "msvc, flags: " CNORM_BUILD_FLAGS;
#else
    return "unknown, flags: " CNORM_BUILD_FLAGS;
#endif
}

/* float16 / bfloat16 <-> float32 conversions for the low-precision entry
 * points: exact on load, round to nearest even on store, NaN stays NaN
 * (quieted).  Branch-free integer and float operations (convert.h), so the
 * compiler vectorizes them on the baseline path already; the conversion
 * instructions (F16C, AVX-512's for float16, AVX512_BF16's bfloat16 store)
 * where the CPU has them; blocks of values go to threads by the library's
 * policy. */
#include "convert.h"

/* Values per parallel block. */
#define CONVERT_BLOCK ((int64_t)1 << 16)

static void f16_to_f32_block(const uint16_t *src, float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = cnorm_f16_to_float(src[i]);
}

static void f32_to_f16_block(const float *src, uint16_t *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = cnorm_float_to_f16(src[i]);
}

/* always_inline: the AVX2 wrappers below inline and vectorize it again. */
static inline __attribute__((always_inline)) void bf16_to_f32_block(const uint16_t *src,
                                                                    float *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = cnorm_bf16_to_float(src[i]);
}

static inline __attribute__((always_inline)) void f32_to_bf16_block(const float *src,
                                                                    uint16_t *dst, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        dst[i] = cnorm_float_to_bf16(src[i]);
}

/* With F16C (every CPU of cnorm's AVX2 path has it) a conversion is one
 * instruction per 8 values: exact on load, round to nearest even on store
 * (immediate 0, whatever MXCSR says), Inf on overflow, subnormals kept; NaN
 * payloads may differ from the portable loops (both stay NaN).  A partial
 * last vector takes the portable loop. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#include "simd.h"

__attribute__((target("avx,f16c"))) static void f16_to_f32_f16c(const uint16_t *src, float *dst,
                                                                int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    f16_to_f32_block(src + i, dst + i, n - i);
}

__attribute__((target("avx,f16c"))) static void f32_to_f16_f16c(const float *src, uint16_t *dst,
                                                                int64_t n)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), 0));
    f32_to_f16_block(src + i, dst + i, n - i);
}

/* The first min(r, 16) of 16 lanes (none for r <= 0): the mask of a last,
 * partial vector, whose loads and stores leave the other lanes alone. */
static inline __mmask16 lanes16(int64_t r)
{
    return r >= 16 ? (__mmask16)0xffff : r <= 0 ? (__mmask16)0 : (__mmask16)((1u << r) - 1);
}

/* The AVX-512 path: the same instructions on 16 values (measured, one
 * thread, AMD EPYC, against F16C: float16 layer norm (32,128,768) 1.13-1.21x
 * -> 0.73-0.90x the float32 time, batch-norm inference (32,64,56,56)
 * 0.75-0.82x -> 0.68-0.71x, training 1.23x -> 1.02-1.04x). */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void
f16_to_f32_avx512(const uint16_t *src, float *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    if (i < n) {   /* masked loads and stores only here: slow on AMD */
        const __mmask16 m = lanes16(n - i);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, src + i)));
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void
f32_to_f16_avx512(const float *src, uint16_t *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtps_ph(_mm512_loadu_ps(src + i), 0));
    if (i < n) {
        const __mmask16 m = lanes16(n - i);
        _mm256_mask_storeu_epi16(dst + i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), 0));
    }
}

/* bfloat16 has no conversion instruction below AVX-512 BF16: the portable
 * loops, compiled again for AVX2 (twice the lanes of the baseline). */
__attribute__((target("avx2"))) static void bf16_to_f32_avx2(const uint16_t *src, float *dst,
                                                             int64_t n)
{
    bf16_to_f32_block(src, dst, n);
}

__attribute__((target("avx2"))) static void f32_to_bf16_avx2(const float *src, uint16_t *dst,
                                                             int64_t n)
{
    f32_to_bf16_block(src, dst, n);
}

/* The AVX-512 path: the portable bfloat16 loops compiled again, on 16
 * values per instruction with AVX512BW's 16-bit packs (measured, one
 * thread: bfloat16 (32,64,56,56) inference 1.05-1.19x -> 0.87x the float32
 * time). */
__attribute__((target("avx512f,avx512bw"))) static void bf16_to_f32_avx512(const uint16_t *src,
                                                                          float *dst, int64_t n)
{
    bf16_to_f32_block(src, dst, n);
}

__attribute__((target("avx512f,avx512bw"))) static void f32_to_bf16_avx512(const float *src,
                                                                          uint16_t *dst,
                                                                          int64_t n)
{
    f32_to_bf16_block(src, dst, n);
}

/* AVX512_BF16 (AMD Zen 4 and later, Intel Cooper Lake, Sapphire Rapids):
 * one instruction rounds 32 values to nearest even, NaN quieted as the
 * portable loop does it; it flushes subnormal inputs to zero, so 32 values
 * holding one take the portable loop (measured, one thread, the layer-norm
 * forward's store: 0.083 -> 0.028 ns per value). */
/* 32 values of src, rounded; mlo and mhi mask the loads of a last, partial
 * pair of vectors and their store (n values; masked stores are slow on AMD,
 * so full vectors store unmasked). */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512bf16"))) static inline void
bf16_round32(const float *src, uint16_t *dst, __mmask16 mlo, __mmask16 mhi, int64_t n)
{
    const __mmask32 m = ((__mmask32)mhi << 16) | mlo;
    const __m512 lo = _mm512_maskz_loadu_ps(mlo, src), hi = _mm512_maskz_loadu_ps(mhi, src + 16);
    if (_mm512_fpclass_ps_mask(lo, 0x20) | _mm512_fpclass_ps_mask(hi, 0x20))   /* 0x20: subnormal */
        f32_to_bf16_block(src, dst, n);
    else if (m != 0xffffffffu)
        _mm512_mask_storeu_epi16((void *)dst, m, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
    else
        _mm512_storeu_si512((void *)dst, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512bf16"))) static void
f32_to_bf16_avx512bf16(const float *src, uint16_t *dst, int64_t n)
{
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        bf16_round32(src + i, dst + i, 0xffff, 0xffff, 32);
    if (i < n)
        bf16_round32(src + i, dst + i, lanes16(n - i), lanes16(n - i - 16), n - i);
}

/* The CNORM_SIMD cap applies here too (CNORM_SIMD=baseline: portable loops). */
static int avx2_usable(void)
{
    return cnorm_simd_level() >= CNORM_SIMD_AVX2;
}

static int avx512_usable(void)
{
    return cnorm_simd_level() >= CNORM_SIMD_AVX512;
}

/* F16C from CPUID leaf 1 (ECX bit 29): older Clang's __builtin_cpu_supports
 * does not know "f16c". */
static int f16c_usable(void)
{
    /* once: CPUID traps to the hypervisor in a VM (microseconds), and the
     * chunked entry points (lowp.c) pick a converter per chunk */
    static volatile int usable = -1;   /* detection is idempotent: a race is benign */
    if (usable < 0) {
        unsigned eax, ebx, ecx = 0, edx;
        usable = avx2_usable() && __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
    }
    return usable;
}
/* AVX512_BF16 from CPUID leaf 7, subleaf 1 (EAX bit 5), once. */
static int avx512bf16_usable(void)
{
    static volatile int usable = -1;   /* as f16c_usable */
    if (usable < 0) {
        unsigned eax = 0, ebx, ecx, edx;
        usable = avx512_usable() && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) &&
                 (eax & (1u << 5));
    }
    return usable;
}
#define F16_TO_F32 (avx512_usable() ? f16_to_f32_avx512 \
                    : f16c_usable() ? f16_to_f32_f16c : f16_to_f32_block)
#define F32_TO_F16 (avx512_usable() ? f32_to_f16_avx512 \
                    : f16c_usable() ? f32_to_f16_f16c : f32_to_f16_block)
#define BF16_TO_F32 (avx512_usable() ? bf16_to_f32_avx512 \
                     : avx2_usable() ? bf16_to_f32_avx2 : bf16_to_f32_block)
#define F32_TO_BF16 (avx512bf16_usable() ? f32_to_bf16_avx512bf16 \
                     : avx512_usable() ? f32_to_bf16_avx512 \
                     : avx2_usable() ? f32_to_bf16_avx2 : f32_to_bf16_block)
#else
#define F16_TO_F32 f16_to_f32_block
#define F32_TO_F16 f32_to_f16_block
#define BF16_TO_F32 bf16_to_f32_block
#define F32_TO_BF16 f32_to_bf16_block
#endif

/* Runs a block converter over n values, in blocks on the library's threads. */
#define CONVERT_PARALLEL(block_fn, src, dst, n)                                   \
    do {                                                                          \
        const int64_t blocks_ = cnorm_cdiv64((n), CONVERT_BLOCK);                 \
        const int nt_ = cnorm_threads_for((n), blocks_);                          \
        CONVERT_OMP_FOR(nt_)                                                      \
        for (int64_t b_ = 0; b_ < blocks_; b_++) {                                \
            const int64_t o_ = b_ * CONVERT_BLOCK;                                \
            block_fn((src) + o_, (dst) + o_, cnorm_min64(CONVERT_BLOCK, (n) - o_)); \
        }                                                                         \
    } while (0)

#ifdef _OPENMP
#define CONVERT_PRAGMA(x) _Pragma(#x)
#define CONVERT_OMP_FOR(nt) CONVERT_PRAGMA(omp parallel for schedule(static) num_threads(nt) if (nt > 1))
#else
#define CONVERT_OMP_FOR(nt)
#endif

/* The serial converters, for callers that convert cache-sized chunks on
 * their own threads (lowp.c): no parallel region per call. */
cnorm_to_f32_fn cnorm_to_f32_serial(int bfloat16)
{
    return bfloat16 ? BF16_TO_F32 : F16_TO_F32;
}

cnorm_from_f32_fn cnorm_from_f32_serial(int bfloat16)
{
    return bfloat16 ? F32_TO_BF16 : F32_TO_F16;
}

void cnorm_f16_to_f32(const uint16_t *src, float *dst, int64_t n)
{
    void (*const block)(const uint16_t *, float *, int64_t) = F16_TO_F32;
    CONVERT_PARALLEL(block, src, dst, n);
}

void cnorm_f32_to_f16(const float *src, uint16_t *dst, int64_t n)
{
    void (*const block)(const float *, uint16_t *, int64_t) = F32_TO_F16;
    CONVERT_PARALLEL(block, src, dst, n);
}

void cnorm_bf16_to_f32(const uint16_t *src, float *dst, int64_t n)
{
    void (*const block)(const uint16_t *, float *, int64_t) = BF16_TO_F32;
    CONVERT_PARALLEL(block, src, dst, n);
}

void cnorm_f32_to_bf16(const float *src, uint16_t *dst, int64_t n)
{
    void (*const block)(const float *, uint16_t *, int64_t) = F32_TO_BF16;
    CONVERT_PARALLEL(block, src, dst, n);
}

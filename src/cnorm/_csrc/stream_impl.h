/* Non-temporal stores for one element type and SIMD path (stream.h):
 * whole vectors go to memory without the read of each output line that a
 * plain store costs (benchmarks/RESULTS.md, "Streaming stores"); the
 * values before the first vector-aligned address and after the last whole
 * vector are plain stores.  Callers fence (cnorm_sfence) before another
 * thread may read what they streamed.  No include guard on purpose. */

#if CNORM_CAN_STREAM
/* The path's vectors (Clang defines no __AVX__ in target regions, hence
 * CNORM_PATH_VEC_BYTES); SSE2's on the baseline. */
typedef T SFX(vec) __attribute__((vector_size(CNORM_PATH_VEC_BYTES >= 32 ? CNORM_PATH_VEC_BYTES : 16),
                                  aligned(CNORM_PATH_VEC_BYTES >= 32 ? CNORM_PATH_VEC_BYTES : 16)));

/* Values per vector. */
static inline int64_t SFX(vec_len)(void)
{
    return (int64_t)(sizeof(SFX(vec)) / sizeof(T));
}

static inline SFX(vec) SFX(vload)(const T *p)
{
    SFX(vec) v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void SFX(vstream)(T *p, SFX(vec) v)
{
#if CNORM_PATH_VEC_BYTES >= 64
    if (sizeof(T) == 4)
        _mm512_stream_ps((float *)p, (__m512)v);
    else
        _mm512_stream_pd((double *)p, (__m512d)v);
#elif CNORM_PATH_VEC_BYTES >= 32
    if (sizeof(T) == 4)
        _mm256_stream_ps((float *)p, (__m256)v);
    else
        _mm256_stream_pd((double *)p, (__m256d)v);
#elif defined(__SSE2__)
    if (sizeof(T) == 4)
        _mm_stream_ps((float *)p, (__m128)v);
    else
        _mm_stream_pd((double *)p, (__m128d)v);
#else
    memcpy(p, &v, sizeof v);
#endif
}

/* Values before y + i is vector-aligned (or len; len for a y not aligned
 * to T, which cannot stream). */
static inline int64_t SFX(stream_head)(const T *y, int64_t len)
{
    const int64_t vb = (int64_t)sizeof(SFX(vec)), off = (int64_t)((uintptr_t)y % (uintptr_t)vb);
    return off % (int64_t)sizeof(T) ? len
                                   : cnorm_min64(len, (vb - off) % vb / (int64_t)sizeof(T));
}

/* dst[0:n] = src[0:n], streamed; the two do not overlap. */
static inline void SFX(stream_copy)(const T *restrict src, T *restrict dst, int64_t n)
{
    const int64_t head = SFX(stream_head)(dst, n), vl = SFX(vec_len)();
    int64_t v;
    memcpy(dst, src, (size_t)head * sizeof(T));
    for (v = head; v + vl <= n; v += vl)
        SFX(vstream)(dst + v, SFX(vload)(src + v));
    memcpy(dst + v, src + v, (size_t)(n - v) * sizeof(T));
}
#else
static inline void SFX(stream_copy)(const T *restrict src, T *restrict dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(T));
}
#endif


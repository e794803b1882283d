/* convert.c's serial block converters (float16/bfloat16 <-> float32), for
 * the chunked low-precision entry points (lowp.c); the public, parallel
 * conversions are cnorm_f16_to_f32 and the others of cnorm.h. */
#ifndef CNORM_CONVERT_H
#define CNORM_CONVERT_H

#include <string.h>
#include "common.h"

static inline uint32_t cnorm_bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float cnorm_float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* One value at a time, as branch-free integer and float operations, so
 * that loops over them vectorize on every path: the block converters below
 * and the kernels that load and store 2-byte values in their own loops
 * (row family, CNORM_NARROW_STORAGE). */

/* bfloat16 to float: a shift. */
static inline float cnorm_bf16_to_float(uint16_t h)
{
    return cnorm_float_of((uint32_t)h << 16);
}

/* float to bfloat16, round to nearest even; NaN keeps its sign and top
 * mantissa bits, quieted. */
static inline uint16_t cnorm_float_to_bf16(float f)
{
    const uint32_t u = cnorm_bits_of(f);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const int nan = (u & 0x7fffffffu) > 0x7f800000u;
    return (uint16_t)(nan ? (u >> 16) | 0x40u : rounded);
}

/* Half to float: the exponent and mantissa shifted into float position and
 * scaled by 2^(127 - 15) (which also normalizes subnormals); Inf/NaN get
 * the all-ones exponent. */
static inline float cnorm_f16_to_float(uint16_t h16)
{
    const uint32_t h = h16, em = h & 0x7fffu;
    const uint32_t scaled = cnorm_bits_of(cnorm_float_of(em << 13) * 0x1p112f);
    const uint32_t special = 0u - (uint32_t)(em >= 0x7c00u);
    const uint32_t u = (scaled & ~special) | (((em << 13) | 0x7f800000u) & special);
    return cnorm_float_of(u | ((h & 0x8000u) << 16));
}

/* Float to half, round to nearest even: overflow (and values that round
 * past 65504) to Inf, NaN to a quiet NaN, results below 2^-14 through a
 * float add that rounds at the subnormal spacing, the rest by adding the
 * rounding bias (plus the mantissa's lowest kept bit, for ties to even). */
static inline uint16_t cnorm_float_to_f16(float f)
{
    const uint32_t u = cnorm_bits_of(f), sign = (u >> 16) & 0x8000u, x = u & 0x7fffffffu;
    const uint32_t nan = 0u - (uint32_t)(x > 0x7f800000u);
    const uint32_t big = 0x7c00u | (0x0200u & nan);
    const uint32_t tiny = cnorm_bits_of(cnorm_float_of(x) + 0.5f) - 0x3f000000u;
    const uint32_t normal = (x + 0xc8000fffu + ((x >> 13) & 1u)) >> 13;
    const uint32_t is_big = 0u - (uint32_t)(x >= 0x47800000u);
    const uint32_t is_tiny = 0u - (uint32_t)(x < 0x38800000u);
    const uint32_t h = (big & is_big) | (tiny & is_tiny) | (normal & ~(is_big | is_tiny));
    return (uint16_t)(h | sign);
}

typedef void (*cnorm_to_f32_fn)(const uint16_t *src, float *dst, int64_t n);
typedef void (*cnorm_from_f32_fn)(const float *src, uint16_t *dst, int64_t n);

/* The converter of the best path CNORM_SIMD and the CPU allow, run on the
 * calling thread. */
cnorm_to_f32_fn cnorm_to_f32_serial(int bfloat16);
cnorm_from_f32_fn cnorm_from_f32_serial(int bfloat16);

#endif /* CNORM_CONVERT_H */

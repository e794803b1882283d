/* convert.c's serial block converters (float16/bfloat16 <-> float32), for
 * the chunked low-precision entry points (lowp.c); the public, parallel
 * conversions are cnorm_f16_to_f32 and the others of cnorm.h. */
#ifndef CNORM_CONVERT_H
#define CNORM_CONVERT_H

#include "common.h"

typedef void (*cnorm_to_f32_fn)(const uint16_t *src, float *dst, int64_t n);
typedef void (*cnorm_from_f32_fn)(const float *src, uint16_t *dst, int64_t n);

/* The converter of the best path CNORM_SIMD and the CPU allow, run on the
 * calling thread. */
cnorm_to_f32_fn cnorm_to_f32_serial(int bfloat16);
cnorm_from_f32_fn cnorm_from_f32_serial(int bfloat16);

#endif /* CNORM_CONVERT_H */

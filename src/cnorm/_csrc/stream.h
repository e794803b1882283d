/* Non-temporal (streaming) stores, dtype-free part: whether this compiler
 * can emit them and the fence that publishes them (stream_impl.h holds the
 * per-dtype stores; each family decides what streams). */
#ifndef CNORM_STREAM_H
#define CNORM_STREAM_H

#include "simd.h"

/* Streaming needs GCC/Clang vector types (and x86 intrinsics for the stores
 * themselves; elsewhere they are plain). */
#if defined(__GNUC__) || defined(__clang__)
#define CNORM_CAN_STREAM 1
#else
#define CNORM_CAN_STREAM 0
#endif
#if CNORM_HAVE_X86_PATHS
#include <immintrin.h>
#define cnorm_sfence() _mm_sfence()
#else
#define cnorm_sfence() ((void)0)
#endif

#endif

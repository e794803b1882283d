/* What every kernel source includes: the runtime (runtime.h), the
 * activation codes' check and the type-template convention.
 *
 * Template convention: a family's body lives in <family>_impl.h (which
 * includes its parts, <family>_<part>_impl.h, in order), written with T
 * (the element type) and SFX(name) (a suffix per element type and SIMD
 * path, e.g. name_f32_avx2); instantiate.h includes it once per path and
 * instantiate_types.h once per element type, so there is one copy of every
 * loop for every dtype and path.  Loops that also run on 2-byte data (the
 * row forward, instantiate_narrow.h) take x and y as ST, the storage
 * type, a block of n values at a time: LOAD_BLOCK(src, buf, n) gives the
 * block to read, of type LT (src itself, or converted into buf), LOAD(v)
 * each value of it as T; OUT_BLOCK(dst, buf) says where to write the
 * block's T results (dst, or buf) and STORE_BLOCK(src, dst, n) stores
 * them (nothing, or converts buf into dst).  buf holds ROW_BUF values (1
 * where ST is T).  The row backward reads whole rows as T through
 * LOAD_ROW(src, buf, n) (src itself, or converted into buf: its chunks
 * hold ROW_ROW_BUFS row buffers, 0 where ST is T). */
#ifndef CNORM_COMMON_H
#define CNORM_COMMON_H

#include <math.h>
#include "runtime.h"

static inline int cnorm_activation_valid(int a)
{
    return a == CNORM_ACT_NONE || a == CNORM_ACT_RELU || a == CNORM_ACT_SILU;
}

#endif /* CNORM_COMMON_H */

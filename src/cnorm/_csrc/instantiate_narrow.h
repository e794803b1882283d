/* The 2-byte instantiations of CNORM_FAMILY_IMPL for the SIMD path
 * CNORM_PATH (row.c: the forward on float16 and bfloat16 data): values
 * stored as ST = uint16_t, arithmetic and parameters in T = float
 * (common.h).  Loads are exact and stores round to nearest even:
 * bfloat16 loads in registers (a shift: the loops read the 2-byte values,
 * LT = uint16_t), float16 loads and both stores a block at a time in L1
 * through convert.c's serial converters (the F16C, AVX-512 and AVX512_BF16
 * instructions where the CPU has them: one per vector, where inline the
 * portable conversions cost several). */
#include "convert.h"

#define T float
#define ST uint16_t
#define CNORM_NARROW_STORAGE 1
#define OUT_BLOCK(dst, buf) (buf)
#define ROW_ROW_BUFS 2

#define LT uint16_t
#define LOAD(v) cnorm_bf16_to_float(v)
#define LOAD_BLOCK(src, buf, n) ((void)(buf), (src))
#define STORE_BLOCK(src, dst, n) cnorm_from_f32_serial(1)((src), (dst), (n))
#define LOAD_ROW(src, buf, n) (cnorm_to_f32_serial(1)((src), (buf), (n)), (const T *)(buf))
#define SFX(name) CNORM_PASTE3(name, _bf16_, CNORM_PATH)
#include CNORM_FAMILY_IMPL
#undef LT
#undef LOAD
#undef LOAD_BLOCK
#undef STORE_BLOCK
#undef LOAD_ROW
#undef SFX

#define LT float
#define LOAD(v) (v)
#define LOAD_BLOCK(src, buf, n) (cnorm_to_f32_serial(0)((src), (buf), (n)), (const T *)(buf))
#define STORE_BLOCK(src, dst, n) cnorm_from_f32_serial(0)((src), (dst), (n))
#define LOAD_ROW(src, buf, n) LOAD_BLOCK(src, buf, n)
#define SFX(name) CNORM_PASTE3(name, _f16_, CNORM_PATH)
#include CNORM_FAMILY_IMPL
#undef LT
#undef LOAD
#undef LOAD_BLOCK
#undef STORE_BLOCK
#undef LOAD_ROW
#undef SFX

#undef T
#undef ST
#undef CNORM_NARROW_STORAGE
#undef OUT_BLOCK
#undef ROW_ROW_BUFS

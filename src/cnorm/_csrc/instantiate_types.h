/* One instantiation of CNORM_FAMILY_IMPL per element type, for the SIMD
 * path CNORM_PATH (included by instantiate.h once per path).  Adding an
 * element type is one block here and one line in CNORM_ELEMENT_TYPES
 * (cnorm_kernels.def), with the same suffix.  Values are stored as they
 * are computed: ST is T and blocks are used in place (common.h). */
#define ST T
#define LT T
#define CNORM_NARROW_STORAGE 0
#define LOAD(v) (v)
#define LOAD_BLOCK(src, buf, n) ((void)(buf), (src))
#define OUT_BLOCK(dst, buf) ((void)(buf), (dst))
#define STORE_BLOCK(src, dst, n) ((void)0)
#define LOAD_ROW(src, buf, n) ((void)(buf), (src))
#define ROW_ROW_BUFS 0

#define T float
#define SFX(name) CNORM_PASTE3(name, _f32_, CNORM_PATH)
#include CNORM_FAMILY_IMPL
#undef T
#undef SFX

#define T double
#define SFX(name) CNORM_PASTE3(name, _f64_, CNORM_PATH)
#include CNORM_FAMILY_IMPL
#undef T
#undef SFX

#undef ST
#undef LT
#undef CNORM_NARROW_STORAGE
#undef LOAD
#undef LOAD_BLOCK
#undef OUT_BLOCK
#undef STORE_BLOCK
#undef LOAD_ROW
#undef ROW_ROW_BUFS

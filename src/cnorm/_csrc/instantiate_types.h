/* One instantiation of CNORM_FAMILY_IMPL per element type, for the SIMD
 * path CNORM_PATH (included by instantiate.h once per path).  Adding an
 * element type is one block here and one line in CNORM_ELEMENT_TYPES
 * (cnorm_kernels.def), with the same suffix. */
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

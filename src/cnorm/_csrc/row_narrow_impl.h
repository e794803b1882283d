/* Row family for 2-byte storage (float16, bfloat16; T = float); included
 * by instantiate.h through instantiate_narrow.h.  The forward and backward
 * parts of row_impl.h, with ST and the block or row conversions of the
 * 2-byte type, and batch norm on them.  No include guard on purpose. */

#include "activation_impl.h"

#include "row_stats_impl.h"
#include "row_forward_impl.h"
#include "row_batch_impl.h"
#include "row_tiles_impl.h"
#include "row_one_impl.h"
#include "row_backward_impl.h"

/* The backward under its 2-byte kernel name (cnorm_row_backward_f16/_bf16
 * are lowp.c's entry points, which call it for the rows that fit). */
static int SFX(cnorm_row_backward_rows)(const ST *dy, const ST *x, int64_t M, int64_t K,
                                        int64_t G, int64_t S, int center, const T *mean,
                                        const T *rstd, const T *weight, ST *dx,
                                        double *dweight, double *dbias)
{
    return SFX(cnorm_row_backward)(dy, x, M, K, G, S, center, mean, rstd, weight, dx, dweight,
                                   dbias);
}

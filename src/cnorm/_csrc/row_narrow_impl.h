/* Row family forward for 2-byte storage (float16, bfloat16; T = float);
 * included by instantiate.h through instantiate_narrow.h.  The forward
 * parts of row_impl.h, with ST and the block conversions of the 2-byte
 * type, and batch norm on them.  No include guard on purpose. */

#include "activation_impl.h"

#include "row_stats_impl.h"
#include "row_forward_impl.h"
#include "row_batch_impl.h"

/* Row family body for one element type and SIMD path; included by
 * instantiate.h with T and SFX defined (see common.h).  Its parts, in
 * dependency order (row.c says what each holds).  No include guard on
 * purpose. */

#include "activation_impl.h"
#include "stream_impl.h"

#include "row_stats_impl.h"
#include "row_forward_impl.h"
#include "row_tiles_impl.h"
#include "row_one_impl.h"
#include "row_drivers_impl.h"
#include "row_backward_impl.h"

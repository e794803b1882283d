/* Channel family body for one element type and SIMD path; included by
 * instantiate.h with T and SFX defined (see common.h).  Its parts, in
 * dependency order (channel.c says what each holds).  No include guard on
 * purpose. */

#include "activation_impl.h"
#include "stream_impl.h"

/* Lanes (positions) of a strip. */
#define CL ((int)CHAN_LANES(sizeof(T)))

#include "channel_tiles_impl.h"
#include "channel_stats_impl.h"
#include "channel_passes_impl.h"
#include "channel_drivers_impl.h"

#undef CL

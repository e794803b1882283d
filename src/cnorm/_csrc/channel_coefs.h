/* Batch-norm training coefficients of channel c (defined in channel.c): y =
 * (x - mt) * scale + shift from the channel's count, mean and m2 and its mean
 * rounded to the element type, mt; the float32/float64 kernels and the
 * float16/bfloat16 entry points (lowp.c) share them. */
#ifndef CNORM_CHANNEL_COEFS_H
#define CNORM_CHANNEL_COEFS_H

#include "common.h"

void cnorm_bn_train_coefs(int64_t c, double count, double mean, double m2, double mt,
                          double w, double b, double eps, const cnorm_renorm *rn,
                          double *scale, double *shift);

#endif /* CNORM_CHANNEL_COEFS_H */

/* Batch-norm coefficients (defined in channel.c), which the float32/float64
 * kernels and the float16/bfloat16 entry points (lowp.c) share.  Training,
 * channel c: y = (x - mt) * scale + shift from the channel's count, mean
 * and m2 and its mean rounded to the element type, mt.  Inference: y = x *
 * scale + shift from the running statistics (weight 1 and bias 0 where
 * absent); float16/bfloat16 may take y = (x - running_mean) * scale + bias
 * instead (lowp.c). */
#ifndef CNORM_CHANNEL_COEFS_H
#define CNORM_CHANNEL_COEFS_H

#include "common.h"

void cnorm_bn_train_coefs(int64_t c, double count, double mean, double m2, double mt,
                          double w, double b, double eps, const cnorm_renorm *rn,
                          double *scale, double *shift);
void cnorm_bn_infer_coefs(double running_mean, double running_var, double w, double b,
                          double eps, double *scale, double *shift);

#endif /* CNORM_CHANNEL_COEFS_H */

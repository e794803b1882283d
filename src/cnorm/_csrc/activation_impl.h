/* Activations fused into the normalizing passes.  Included by both family
 * bodies, so once per dtype and SIMD path (T, SFX).
 *
 * relu is a lower bound inside the normalizing loops: y = at_least(v,
 * act_lower(act)), 0 for relu and -inf (no bound) otherwise, so it costs
 * no pass of its own; it keeps NaN.  silu, too long to repeat in every loop,
 * is a pass in place over a piece of output just written (still in L1/L2).
 * silu(z) = z * sigmoid(z) is computed as
 * z / (1 + e) for z >= 0 and z * e / (1 + e) for z < 0, e = exp(-|z|), with
 * exp written out (range reduction to r in [-ln2/2, ln2/2], a polynomial,
 * a scale by 2^n through the exponent bits) so the loop vectorizes: libm's
 * exp is a call per value. */

/* 2^(n + K) from t = n + 1.5 * 2^(mantissa bits) (K: 32 in float, 64 in double, undone
 * by exp_unscale): add the exponent bias and K to t's bits and shift them
 * into the exponent field (the bits above n are shifted out).  Unsigned
 * integer ops only, which vectorize (AVX2 has no vector double -> int64
 * conversion). */
static inline T SFX(pow2_scaled)(T t)
{
    if (sizeof(T) == sizeof(float)) {
        uint32_t bits;
        float v, f = (float)t;
        memcpy(&bits, &f, sizeof bits);
        bits = (bits + 127u + 32u) << 23;
        memcpy(&v, &bits, sizeof v);
        return (T)v;
    } else {
        uint64_t bits;
        double v, d = (double)t;
        memcpy(&bits, &d, sizeof bits);
        bits = (bits + 1023u + 64u) << 52;
        memcpy(&v, &bits, sizeof v);
        return (T)v;
    }
}

/* v * 2^-K, K of pow2_scaled: exact, or one rounding into the subnormals. */
static inline T SFX(exp_unscale)(T v)
{
    return v * (sizeof(T) == sizeof(float) ? (T)2.3283064365386963e-10
                                           : (T)5.421010862427522e-20);
}

/* exp(x) * 2^K for x in [lo, 0] (lo of silu_lower): a normal number, where
 * exp(x) itself may be subnormal; exp(x) is its exp_unscale, one rounding.
 * NaN stays NaN.  The polynomial is 1 + r + r^2 q(r), q interpolating
 * (exp(r) - 1 - r) / r^2 at the Chebyshev nodes of [-ln2/2, ln2/2]
 * (computed in 60-digit arithmetic; relative error with the coefficients
 * rounded to T: 1e-8 in float, 1.6e-17 in double). */
static inline T SFX(exp_neg_scaled)(T x)
{
    const int single = sizeof(T) == sizeof(float);
    const T log2e = (T)1.4426950408889634, ln2_hi = (T)0.693145751953125,
            ln2_lo = (T)1.42860682030941723212e-6;
    /* t = v + magic rounds v to an integer n (nearest even), held in t's low bits */
    const T magic = single ? (T)12582912.0 : (T)6755399441055744.0;
    const T t = x * log2e + magic, n = t - magic;
    const T r = (x - n * ln2_hi) - n * ln2_lo;
    T p;
    if (single)   /* degree 6 */
        p = (T)1 + r * ((T)1 + r * ((T)0.5 + r * ((T)0.16666577756404877
            + r * ((T)0.041666556149721146 + r * ((T)0.008363173343241215
            + r * (T)0.0013926175888627768)))));
    else          /* degree 11 */
        p = 1 + r * (1 + r * (0.5000000000000001 + r * (0.16666666666666669
            + r * (0.041666666666624164 + r * (0.008333333333330065
            + r * (0.0013888888917196719 + r * (0.00019841269863040545
            + r * (2.4801521322368692e-05 + r * (2.7557268480310024e-06
            + r * (2.7620075879983367e-07 + r * 2.5100375832561234e-08))))))))));
    return p * SFX(pow2_scaled)(t);
}

/* -|z|, by the sign bit (one vector op). */
static inline T SFX(neg_abs)(T z)
{
    if (sizeof(T) == sizeof(float)) {
        uint32_t bits;
        float f = (float)z;
        memcpy(&bits, &f, sizeof bits);
        bits |= 0x80000000u;
        memcpy(&f, &bits, sizeof f);
        return (T)f;
    } else {
        uint64_t bits;
        double d = (double)z;
        memcpy(&bits, &d, sizeof bits);
        bits |= 0x8000000000000000u;
        memcpy(&d, &bits, sizeof d);
        return (T)d;
    }
}

/* The lower bound of an activation's outputs that the loops apply. */
static inline T SFX(act_lower)(int activation)
{
    return activation == CNORM_ACT_RELU ? (T)0 : (T)-INFINITY;
}

/* v, or lower where v is below it (NaN stays NaN). */
static inline T SFX(at_least)(T v, T lower)
{
    return v < lower ? lower : v;
}

static void SFX(silu)(T *y, int64_t n)
{
    /* below lo, silu(z) = z * exp(z) / (1 + exp(z)) rounds to 0 (from lo
     * up, the n + K of exp_neg_scaled is a normal exponent) */
    const T lo = sizeof(T) == sizeof(float) ? (T)-109.0 : (T)-752.0;
    for (int64_t k = 0; k < n; k++) {
        const T z = y[k], x = SFX(neg_abs)(z), m = SFX(exp_neg_scaled)(x < lo ? lo : x);
        /* z < 0: z * e unscaled last, so that it keeps its precision where
         * e is subnormal and z * e is not */
        const T v = (z < 0 ? SFX(exp_unscale)(z * m) : z) / ((T)1 + SFX(exp_unscale)(m));
        y[k] = z < lo ? z * (T)0 : v;   /* -0, and NaN for -inf as z * sigmoid(z) */
    }
}

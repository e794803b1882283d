/* Activations fused into the normalizing passes: y = act(y) in place on a
 * piece of output that the pass has just written (still in L1/L2).
 * Included by both family bodies, so once per dtype and SIMD path (T, SFX).
 *
 * relu keeps NaN (y < 0 ? 0 : y).  silu(z) = z * sigmoid(z) is computed as
 * z / (1 + e) for z >= 0 and z * e / (1 + e) for z < 0, e = exp(-|z|), with
 * exp written out (range reduction to r in [-ln2/2, ln2/2], a Taylor
 * polynomial, a scale by 2^n through the exponent bits) so the loop
 * vectorizes: libm's exp is a call per value.  The polynomial's error is
 * below 1e-7 relative in float and 2e-16 in double, and the scale by 2^n
 * goes in two steps so that subnormal results stay accurate. */

/* 2^n for an integral n of a T, in the normal range: the bits of
 * n + 1.5 * 2^(mantissa bits) hold n in their low bits; add the exponent
 * bias and shift them into the exponent field.  Unsigned integer ops only,
 * which vectorize (AVX2 has no vector double -> int64 conversion). */
static inline T SFX(exp2_int)(T n)
{
    if (sizeof(T) == sizeof(float)) {
        const float t = (float)n + 12582912.0f;   /* 1.5 * 2^23 */
        uint32_t bits;
        float v;
        memcpy(&bits, &t, sizeof bits);
        bits = (bits + 127u) << 23;
        memcpy(&v, &bits, sizeof v);
        return (T)v;
    } else {
        const double t = (double)n + 6755399441055744.0;   /* 1.5 * 2^52 */
        uint64_t bits;
        double v;
        memcpy(&bits, &t, sizeof bits);
        bits = (bits + 1023u) << 52;
        memcpy(&v, &bits, sizeof v);
        return (T)v;
    }
}

/* x rounded to an integral value (nearest even) by the same magic number:
 * no call to floor/rint, which the baseline SSE2 path cannot inline. */
static inline T SFX(round_int)(T x)
{
    const T magic = sizeof(T) == sizeof(float) ? (T)12582912.0 : (T)6755399441055744.0;
    return (x + magic) - magic;
}

/* exp(x) for x <= 0 (callers pass -|z|): 0 below the subnormal range, NaN
 * for NaN.  2^n is applied as two factors of about 2^(n/2), each normal,
 * so that results down in the subnormals stay accurate. */
static inline T SFX(exp_neg)(T x)
{
    const int single = sizeof(T) == sizeof(float);
    const T lo = single ? (T)-104.0 : (T)-746.0;
    const T log2e = (T)1.4426950408889634, ln2_hi = (T)0.693145751953125,
            ln2_lo = (T)1.42860682030941723212e-6;
    const int under = x < lo;
    x = under ? lo : x;
    const T n = SFX(round_int)(x * log2e);
    const T r = (x - n * ln2_hi) - n * ln2_lo;
    T p;
    if (single)   /* degree 7: r**8 / 8! < 6e-9 for |r| <= ln2/2 */
        p = (T)1 + r * ((T)1 + r * ((T)(1.0 / 2) + r * ((T)(1.0 / 6) + r * ((T)(1.0 / 24)
            + r * ((T)(1.0 / 120) + r * ((T)(1.0 / 720) + r * (T)(1.0 / 5040)))))));
    else          /* degree 12 */
        p = 1 + r * (1 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120
            + r * (1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880
            + r * (1.0 / 3628800 + r * (1.0 / 39916800 + r * (1.0 / 479001600))))))))))));
    const T h = SFX(round_int)(n * (T)0.5);
    return under ? (T)0 : p * SFX(exp2_int)(h) * SFX(exp2_int)(n - h);
}

static void SFX(activate)(T *y, int64_t n, int activation)
{
    int64_t k;
    if (activation == CNORM_ACT_RELU) {
        for (k = 0; k < n; k++)
            y[k] = y[k] < 0 ? (T)0 : y[k];
    } else if (activation == CNORM_ACT_SILU) {
        for (k = 0; k < n; k++) {
            const T z = y[k], e = SFX(exp_neg)(z < 0 ? z : -z);
            y[k] = (z < 0 ? z * e : z) / ((T)1 + e);
        }
    }
}

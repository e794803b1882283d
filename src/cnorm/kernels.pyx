# Exported C-level API: thin nogil forwards to the C kernels (see kernels.pxd).
from libc.stdint cimport int64_t
from cnorm cimport _capi
from cnorm._capi cimport cnorm_renorm


cdef void set_num_threads(int n) noexcept nogil:
    _capi.cnorm_set_num_threads(n)

cdef int get_num_threads() noexcept nogil:
    return _capi.cnorm_get_num_threads()

cdef int openmp_enabled() noexcept nogil:
    return _capi.cnorm_openmp_enabled()

cdef void set_serial_only(int on) noexcept nogil:
    _capi.cnorm_set_serial_only(on)

cdef const char * simd_path() noexcept nogil:
    return _capi.cnorm_simd_path()

cdef void moments_merge(
        double *na, double *mean_a, double *m2_a, double nb, double mean_b, double m2_b
) noexcept nogil:
    _capi.cnorm_moments_merge(na, mean_a, m2_a, nb, mean_b, m2_b)

cdef int channel_moments_f32(
        const float *x, int64_t N, int64_t C, int64_t S, double *mean, double *m2
) noexcept nogil:
    return _capi.cnorm_channel_moments_f32(x, N, C, S, mean, m2)

cdef int channel_moments_f64(
        const double *x, int64_t N, int64_t C, int64_t S, double *mean, double *m2
) noexcept nogil:
    return _capi.cnorm_channel_moments_f64(x, N, C, S, mean, m2)

cdef int channel_affine_f32(
        const float *x, int64_t N, int64_t C, int64_t S, const float *scale,
        const float *shift, float *y
) noexcept nogil:
    return _capi.cnorm_channel_affine_f32(x, N, C, S, scale, shift, y)

cdef int channel_affine_f64(
        const double *x, int64_t N, int64_t C, int64_t S, const double *scale,
        const double *shift, double *y
) noexcept nogil:
    return _capi.cnorm_channel_affine_f64(x, N, C, S, scale, shift, y)

cdef int bn_forward_train_f32(
        const float *x, int64_t N, int64_t C, int64_t S, const float *weight,
        const float *bias, double eps, const cnorm_renorm *renorm, float *y, double *mean,
        double *var
) noexcept nogil:
    return _capi.cnorm_bn_forward_train_f32(x, N, C, S, weight, bias, eps, renorm, y, mean, var)

cdef int bn_forward_train_f64(
        const double *x, int64_t N, int64_t C, int64_t S, const double *weight,
        const double *bias, double eps, const cnorm_renorm *renorm, double *y, double *mean,
        double *var
) noexcept nogil:
    return _capi.cnorm_bn_forward_train_f64(x, N, C, S, weight, bias, eps, renorm, y, mean, var)

cdef int bn_forward_infer_f32(
        const float *x, int64_t N, int64_t C, int64_t S, const float *running_mean,
        const float *running_var, const float *weight, const float *bias, double eps, float *y
) noexcept nogil:
    return _capi.cnorm_bn_forward_infer_f32(
        x, N, C, S, running_mean, running_var, weight, bias, eps, y
    )

cdef int bn_forward_infer_f64(
        const double *x, int64_t N, int64_t C, int64_t S, const double *running_mean,
        const double *running_var, const double *weight, const double *bias, double eps,
        double *y
) noexcept nogil:
    return _capi.cnorm_bn_forward_infer_f64(
        x, N, C, S, running_mean, running_var, weight, bias, eps, y
    )

cdef int bn_backward_f32(
        const float *dy, const float *x, int64_t N, int64_t C, int64_t S, const float *mean,
        const float *invstd, const float *weight, float *dx, double *sum_dy,
        double *sum_dy_xhat
) noexcept nogil:
    return _capi.cnorm_bn_backward_f32(
        dy, x, N, C, S, mean, invstd, weight, dx, sum_dy, sum_dy_xhat
    )

cdef int bn_backward_f64(
        const double *dy, const double *x, int64_t N, int64_t C, int64_t S, const double *mean,
        const double *invstd, const double *weight, double *dx, double *sum_dy,
        double *sum_dy_xhat
) noexcept nogil:
    return _capi.cnorm_bn_backward_f64(
        dy, x, N, C, S, mean, invstd, weight, dx, sum_dy, sum_dy_xhat
    )

cdef int row_forward_f32(
        const float *x, int64_t M, int64_t K, int64_t G, int64_t S, int center, double eps,
        const float *weight, const float *bias, float *y, float *mean, float *rstd
) noexcept nogil:
    return _capi.cnorm_row_forward_f32(x, M, K, G, S, center, eps, weight, bias, y, mean, rstd)

cdef int row_forward_f64(
        const double *x, int64_t M, int64_t K, int64_t G, int64_t S, int center, double eps,
        const double *weight, const double *bias, double *y, double *mean, double *rstd
) noexcept nogil:
    return _capi.cnorm_row_forward_f64(x, M, K, G, S, center, eps, weight, bias, y, mean, rstd)

cdef int row_backward_f32(
        const float *dy, const float *x, int64_t M, int64_t K, int64_t G, int64_t S,
        int center, const float *mean, const float *rstd, const float *weight, float *dx,
        double *dweight, double *dbias
) noexcept nogil:
    return _capi.cnorm_row_backward_f32(
        dy, x, M, K, G, S, center, mean, rstd, weight, dx, dweight, dbias
    )

cdef int row_backward_f64(
        const double *dy, const double *x, int64_t M, int64_t K, int64_t G, int64_t S,
        int center, const double *mean, const double *rstd, const double *weight, double *dx,
        double *dweight, double *dbias
) noexcept nogil:
    return _capi.cnorm_row_backward_f64(
        dy, x, M, K, G, S, center, mean, rstd, weight, dx, dweight, dbias
    )

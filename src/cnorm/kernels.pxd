# C-level API of cnorm for other Cython projects.
#
#     from cnorm.kernels cimport bn_forward_infer_f32
#
# The functions are bound at import time through capsules (as
# scipy.linalg.cython_blas does), so a downstream extension calls them nogil
# without linking against cnorm.  Add cnorm.get_include() to its include
# path: the declarations below come from cnorm.h.  Semantics of every
# function: see cnorm.h (names without the cnorm_ prefix).
from libc.stdint cimport int64_t
from cnorm._capi cimport cnorm_renorm, CNORM_OK, CNORM_ENOMEM, CNORM_EINVAL

cdef void set_num_threads(int n) noexcept nogil
cdef int get_num_threads() noexcept nogil
cdef int openmp_enabled() noexcept nogil
cdef void set_serial_only(int on) noexcept nogil
cdef const char * simd_path() noexcept nogil
cdef void moments_merge(
        double *na, double *mean_a, double *m2_a, double nb, double mean_b, double m2_b
) noexcept nogil
cdef int channel_moments_f32(
        const float *x, int64_t N, int64_t C, int64_t S, double *mean, double *m2
) noexcept nogil
cdef int channel_moments_f64(
        const double *x, int64_t N, int64_t C, int64_t S, double *mean, double *m2
) noexcept nogil
cdef int channel_affine_f32(
        const float *x, int64_t N, int64_t C, int64_t S, const float *scale,
        const float *shift, float *y
) noexcept nogil
cdef int channel_affine_f64(
        const double *x, int64_t N, int64_t C, int64_t S, const double *scale,
        const double *shift, double *y
) noexcept nogil
cdef int bn_forward_train_f32(
        const float *x, int64_t N, int64_t C, int64_t S, const float *weight,
        const float *bias, double eps, const cnorm_renorm *renorm, float *y, double *mean,
        double *var
) noexcept nogil
cdef int bn_forward_train_f64(
        const double *x, int64_t N, int64_t C, int64_t S, const double *weight,
        const double *bias, double eps, const cnorm_renorm *renorm, double *y, double *mean,
        double *var
) noexcept nogil
cdef int bn_forward_infer_f32(
        const float *x, int64_t N, int64_t C, int64_t S, const float *running_mean,
        const float *running_var, const float *weight, const float *bias, double eps, float *y
) noexcept nogil
cdef int bn_forward_infer_f64(
        const double *x, int64_t N, int64_t C, int64_t S, const double *running_mean,
        const double *running_var, const double *weight, const double *bias, double eps,
        double *y
) noexcept nogil
cdef int bn_backward_f32(
        const float *dy, const float *x, int64_t N, int64_t C, int64_t S, const float *mean,
        const float *invstd, const float *weight, float *dx, double *sum_dy,
        double *sum_dy_xhat
) noexcept nogil
cdef int bn_backward_f64(
        const double *dy, const double *x, int64_t N, int64_t C, int64_t S, const double *mean,
        const double *invstd, const double *weight, double *dx, double *sum_dy,
        double *sum_dy_xhat
) noexcept nogil
cdef int row_forward_f32(
        const float *x, int64_t M, int64_t K, int64_t G, int64_t S, int center, double eps,
        const float *weight, const float *bias, float *y, float *mean, float *rstd
) noexcept nogil
cdef int row_forward_f64(
        const double *x, int64_t M, int64_t K, int64_t G, int64_t S, int center, double eps,
        const double *weight, const double *bias, double *y, double *mean, double *rstd
) noexcept nogil
cdef int row_backward_f32(
        const float *dy, const float *x, int64_t M, int64_t K, int64_t G, int64_t S,
        int center, const float *mean, const float *rstd, const float *weight, float *dx,
        double *dweight, double *dbias
) noexcept nogil
cdef int row_backward_f64(
        const double *dy, const double *x, int64_t M, int64_t K, int64_t G, int64_t S,
        int center, const double *mean, const double *rstd, const double *weight, double *dx,
        double *dweight, double *dbias
) noexcept nogil

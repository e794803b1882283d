# Declarations of include/cnorm.h for Cython.  Private: downstream projects
# cimport cnorm.kernels, whose functions they call without linking.
from libc.stdint cimport int64_t

cdef extern from "cnorm.h" nogil:
    enum:
        CNORM_OK
        CNORM_ENOMEM
        CNORM_EINVAL

    ctypedef struct cnorm_renorm:
        const double *running_mean
        const double *running_var
        double rmax
        double dmax
        double *r
        double *d

    void cnorm_set_num_threads(int n)
    int cnorm_get_num_threads()
    int cnorm_openmp_enabled()
    void cnorm_set_serial_only(int on)
    const char *cnorm_simd_path()
    void cnorm_moments_merge(double *na, double *mean_a, double *m2_a,
                             double nb, double mean_b, double m2_b)

    int cnorm_channel_moments_f32(const float *x, int64_t N, int64_t C, int64_t S,
                                  double *mean, double *m2)
    int cnorm_channel_moments_f64(const double *x, int64_t N, int64_t C, int64_t S,
                                  double *mean, double *m2)
    int cnorm_channel_affine_f32(const float *x, int64_t N, int64_t C, int64_t S,
                                 const float *scale, const float *shift, float *y)
    int cnorm_channel_affine_f64(const double *x, int64_t N, int64_t C, int64_t S,
                                 const double *scale, const double *shift, double *y)
    int cnorm_bn_forward_train_f32(const float *x, int64_t N, int64_t C, int64_t S,
                                   const float *weight, const float *bias, double eps,
                                   const cnorm_renorm *renorm,
                                   float *y, double *mean, double *var)
    int cnorm_bn_forward_train_f64(const double *x, int64_t N, int64_t C, int64_t S,
                                   const double *weight, const double *bias, double eps,
                                   const cnorm_renorm *renorm,
                                   double *y, double *mean, double *var)
    int cnorm_bn_forward_infer_f32(const float *x, int64_t N, int64_t C, int64_t S,
                                   const float *running_mean, const float *running_var,
                                   const float *weight, const float *bias, double eps,
                                   float *y)
    int cnorm_bn_forward_infer_f64(const double *x, int64_t N, int64_t C, int64_t S,
                                   const double *running_mean, const double *running_var,
                                   const double *weight, const double *bias, double eps,
                                   double *y)
    int cnorm_bn_backward_f32(const float *dy, const float *x, int64_t N, int64_t C,
                              int64_t S, const float *mean, const float *invstd,
                              const float *weight, float *dx,
                              double *sum_dy, double *sum_dy_xhat)
    int cnorm_bn_backward_f64(const double *dy, const double *x, int64_t N, int64_t C,
                              int64_t S, const double *mean, const double *invstd,
                              const double *weight, double *dx,
                              double *sum_dy, double *sum_dy_xhat)
    int cnorm_row_forward_f32(const float *x, int64_t M, int64_t K, int64_t G,
                              int64_t S, int center, double eps,
                              const float *weight, const float *bias,
                              float *y, float *mean, float *rstd)
    int cnorm_row_forward_f64(const double *x, int64_t M, int64_t K, int64_t G,
                              int64_t S, int center, double eps,
                              const double *weight, const double *bias,
                              double *y, double *mean, double *rstd)
    int cnorm_row_backward_f32(const float *dy, const float *x, int64_t M, int64_t K,
                               int64_t G, int64_t S, int center,
                               const float *mean, const float *rstd,
                               const float *weight, float *dx,
                               double *dweight, double *dbias)
    int cnorm_row_backward_f64(const double *dy, const double *x, int64_t M, int64_t K,
                               int64_t G, int64_t S, int center,
                               const double *mean, const double *rstd,
                               const double *weight, double *dx,
                               double *dweight, double *dbias)

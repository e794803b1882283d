# Thin Python entry points to the C kernels.  The caller (functional.py) has
# validated shapes and made every array C-contiguous and aligned with x's
# dtype; this layer re-checks only what memory safety depends on (dtype,
# contiguity, alignment, sizes), releases the GIL and calls the kernel through cnorm.kernels.
cimport numpy as cnp
from libc.float cimport DBL_EPSILON, FLT_EPSILON
from libc.math cimport fabs, sqrt
from libc.stdint cimport int64_t, uint16_t

from cnorm cimport _dispatch as kernel
from cnorm cimport kernels as k
from cnorm._capi cimport cnorm_renorm, CNORM_ENOMEM, CNORM_OK

cnp.import_array()


cdef inline void _require(cnp.ndarray a, int typenum, int64_t size, str name) except *:
    if cnp.PyArray_TYPE(a) != typenum or not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError(f"{name}: expected dtype {cnp.PyArray_DescrFromType(typenum)}"
                        " in native byte order")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{name}: expected a C-contiguous array")
    if not cnp.PyArray_ISALIGNED(a):   # the kernels load whole elements
        raise ValueError(f"{name}: expected an aligned array")
    if cnp.PyArray_SIZE(a) != size:
        raise ValueError(f"{name}: expected {size} elements, got {cnp.PyArray_SIZE(a)}")


cdef inline void _require_writable(cnp.ndarray a, str name) except *:
    if not cnp.PyArray_ISWRITEABLE(a):
        raise ValueError(f"{name}: array is read-only")


cdef inline void* _data(object a, int typenum, int64_t size, str name) except? NULL:
    """Data pointer of an optional parameter array (None -> NULL)."""
    if a is None:
        return NULL
    _require(<cnp.ndarray>a, typenum, size, name)
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline void* _data_or_null(object a):
    """Data pointer of an optional array already checked (None -> NULL)."""
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline int _dtype_num(cnp.ndarray x) except -1:
    cdef int t = cnp.PyArray_TYPE(x)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError(f"expected float32 or float64 data, got {x.dtype}")
    return t


cdef inline int _element(int typenum) noexcept nogil:
    """The kernels' element code of a NumPy type number (_dtype_num's)."""
    return kernel.ELEMENT_F32 if typenum == cnp.NPY_FLOAT32 else kernel.ELEMENT_F64


cdef inline void _check(int status) except *:
    if status == CNORM_ENOMEM:
        raise MemoryError("cnorm: could not allocate kernel scratch memory")
    if status != CNORM_OK:
        raise ValueError("cnorm: kernel rejected the sizes it was given")


def set_num_threads(int n):
    k.set_num_threads(n)


def get_num_threads():
    return k.get_num_threads()


def openmp_enabled():
    return bool(k.openmp_enabled())


def set_serial_only(bint on):
    k.set_serial_only(on)


def build_compiler():
    return k.build_compiler().decode()


def simd_path():
    return k.simd_path().decode()


cdef inline bint _equal(const cnp.npy_intp *a, const cnp.npy_intp *b, int n):
    cdef int i
    for i in range(n):
        if a[i] != b[i]:
            return False
    return True


def same_buffer(cnp.ndarray a, cnp.ndarray b):
    """Whether a and b view the same elements: same start and strides."""
    return (cnp.PyArray_DATA(a) == cnp.PyArray_DATA(b)
            and cnp.PyArray_NDIM(a) == cnp.PyArray_NDIM(b)
            and _equal(cnp.PyArray_STRIDES(a), cnp.PyArray_STRIDES(b), cnp.PyArray_NDIM(a)))


def bn_forward_train(cnp.ndarray x, int64_t N, int64_t C, int64_t S, weight, bias,
                     double eps, cnp.ndarray y, cnp.ndarray mean, cnp.ndarray var,
                     renorm=None, int activation=0):
    """y = normalized x; mean, var (biased) float64[C].  renorm: None or
    (running_mean f64[C], running_var f64[C], rmax, dmax, r f64[C], d f64[C]).
    activation: a CNORM_ACT_* code."""
    cdef int t = _dtype_num(x)
    _require(x, t, N * C * S, "x")
    _require(y, t, N * C * S, "out")
    _require_writable(y, "out")
    _require(mean, cnp.NPY_FLOAT64, C, "mean")
    _require(var, cnp.NPY_FLOAT64, C, "var")
    _data(weight, t, C, "weight")
    _data(bias, t, C, "bias")
    cdef cnorm_renorm rn
    cdef cnorm_renorm *rp = _renorm_of(renorm, C, &rn)
    _bn_train(x, N, C, S, weight, bias, eps, y, mean, var, rp, t, activation)


cdef int _bn_train(cnp.ndarray x, int64_t N, int64_t C, int64_t S, object weight, object bias,
                   double eps, cnp.ndarray y, cnp.ndarray mean, cnp.ndarray var,
                   cnorm_renorm *rp, int t, int activation) except -1:
    """The kernel call of bn_forward_train, arguments already checked."""
    cdef void *w = NULL if weight is None else cnp.PyArray_DATA(<cnp.ndarray>weight)
    cdef void *b = NULL if bias is None else cnp.PyArray_DATA(<cnp.ndarray>bias)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef double *mp = <double*>cnp.PyArray_DATA(mean)
    cdef double *vp = <double*>cnp.PyArray_DATA(var)
    cdef int status, e = _element(t)
    with nogil:
        status = kernel.bn_forward_train(e, xp, N, C, S, w, b, eps, activation, rp, yp, mp,
                                         vp)
    _check(status)
    return 0


cdef cnorm_renorm *_renorm_of(object renorm, int64_t C, cnorm_renorm *rn) except? NULL:
    """rn filled from bn_forward_train's renorm tuple, or NULL for None."""
    if renorm is None:
        return NULL
    rm, rv, rmax, dmax, r, d = renorm
    rn.running_mean = <double*>_data(rm, cnp.NPY_FLOAT64, C, "running_mean")
    rn.running_var = <double*>_data(rv, cnp.NPY_FLOAT64, C, "running_var")
    rn.rmax = rmax
    rn.dmax = dmax
    rn.r = <double*>_data(r, cnp.NPY_FLOAT64, C, "r")
    rn.d = <double*>_data(d, cnp.NPY_FLOAT64, C, "d")
    return rn


def bn_forward_train_low(cnp.ndarray x, int64_t N, int64_t C, int64_t S, weight, bias,
                         double eps, cnp.ndarray y, cnp.ndarray mean, cnp.ndarray var,
                         renorm, bint bfloat16, int activation=0):
    """bn_forward_train of float16/bfloat16 data (x, y as uint16 bits; float32
    weight and bias; float64 mean, var and renorm as there)."""
    _require(x, cnp.NPY_UINT16, N * C * S, "x")
    _require(y, cnp.NPY_UINT16, N * C * S, "out")
    _require_writable(y, "out")
    _require(mean, cnp.NPY_FLOAT64, C, "mean")
    _require(var, cnp.NPY_FLOAT64, C, "var")
    _require_writable(mean, "mean")
    _require_writable(var, "var")
    cdef const float *w = <const float*>_data(weight, cnp.NPY_FLOAT32, C, "weight")
    cdef const float *b = <const float*>_data(bias, cnp.NPY_FLOAT32, C, "bias")
    cdef cnorm_renorm rn
    cdef cnorm_renorm *rp = _renorm_of(renorm, C, &rn)
    _bn_train_2byte(cnp.PyArray_DATA(x), N, C, S, w, b, eps, cnp.PyArray_DATA(y),
                    <double*>cnp.PyArray_DATA(mean), <double*>cnp.PyArray_DATA(var), rp,
                    bfloat16, activation)


cdef int _bn_train_2byte(void *x, int64_t N, int64_t C, int64_t S, const void *weight,
                         const void *bias, double eps, void *y, double *mean, double *var,
                         cnorm_renorm *rp, bint bfloat16, int activation) except -1:
    """The kernel call of bn_forward_train_low, arguments already checked: x
    and y 2-byte data, weight and bias float32 (or NULL)."""
    cdef const uint16_t *xp = <const uint16_t*>x
    cdef uint16_t *yp = <uint16_t*>y
    cdef const float *w = <const float*>weight
    cdef const float *b = <const float*>bias
    cdef int status
    with nogil:
        if bfloat16:
            status = k.bn_forward_train_bf16(xp, N, C, S, w, b, eps, activation, rp, yp, mean,
                                             var)
        else:
            status = k.bn_forward_train_f16(xp, N, C, S, w, b, eps, activation, rp, yp, mean,
                                            var)
    _check(status)
    return 0


def bn_backward_low(cnp.ndarray dy, cnp.ndarray x, int64_t N, int64_t C, int64_t S,
                    mean, invstd, weight, dx, cnp.ndarray sum_dy, cnp.ndarray sum_dy_xhat,
                    bint bfloat16):
    """bn_backward of float16/bfloat16 data (dy, x, dx as uint16 bits; float32
    mean, invstd and weight; dx None: only the sums)."""
    _require(x, cnp.NPY_UINT16, N * C * S, "x")
    _require(dy, cnp.NPY_UINT16, N * C * S, "dy")
    cdef uint16_t *dxp = <uint16_t*>_data(dx, cnp.NPY_UINT16, N * C * S, "out")
    if dx is not None:
        _require_writable(<cnp.ndarray>dx, "out")
    cdef const float *mp = <const float*>_data(mean, cnp.NPY_FLOAT32, C, "mean")
    cdef const float *ip = <const float*>_data(invstd, cnp.NPY_FLOAT32, C, "invstd")
    cdef const float *w = <const float*>_data(weight, cnp.NPY_FLOAT32, C, "weight")
    if mp == NULL or ip == NULL:
        raise ValueError("bn_backward_low: mean and invstd are required")
    cdef double *s1 = <double*>_data(sum_dy, cnp.NPY_FLOAT64, C, "sum_dy")
    cdef double *s2 = <double*>_data(sum_dy_xhat, cnp.NPY_FLOAT64, C, "sum_dy_xhat")
    _require_writable(sum_dy, "sum_dy")
    _require_writable(sum_dy_xhat, "sum_dy_xhat")
    _bn_backward_2byte(cnp.PyArray_DATA(dy), cnp.PyArray_DATA(x), N, C, S, mp, ip, w, dxp, s1,
                       s2, bfloat16)


cdef int _bn_backward_2byte(const void *dy, const void *x, int64_t N, int64_t C, int64_t S,
                            const void *mean, const void *invstd, const void *weight, void *dx,
                            double *sum_dy, double *sum_dy_xhat, bint bfloat16) except -1:
    """The kernel call of bn_backward_low, arguments already checked: dy, x
    and dx (or NULL) 2-byte data, mean, invstd and weight (or NULL) float32."""
    cdef const uint16_t *dyp = <const uint16_t*>dy
    cdef const uint16_t *xp = <const uint16_t*>x
    cdef uint16_t *dxp = <uint16_t*>dx
    cdef const float *mp = <const float*>mean
    cdef const float *ip = <const float*>invstd
    cdef const float *w = <const float*>weight
    cdef int status
    with nogil:
        if bfloat16:
            status = k.bn_backward_bf16(dyp, xp, N, C, S, mp, ip, w, dxp, sum_dy, sum_dy_xhat)
        else:
            status = k.bn_backward_f16(dyp, xp, N, C, S, mp, ip, w, dxp, sum_dy, sum_dy_xhat)
    _check(status)
    return 0


def row_backward_low(cnp.ndarray dy, cnp.ndarray x, int64_t M, int64_t K, int64_t G, int64_t S,
                     bint center, mean, cnp.ndarray rstd, weight, cnp.ndarray dx, dweight,
                     dbias, bint bfloat16):
    """row_backward of float16/bfloat16 data (dy, x, dx as uint16 bits;
    float32 statistics and weight; float64 gradients, each may be None)."""
    if M < 0 or K < 1 or G < 1 or S < 1 or K % S != 0:
        raise ValueError("row_backward_low: inconsistent sizes")
    cdef int64_t nparam = G * (K // S)
    _require(x, cnp.NPY_UINT16, M * K, "x")
    _require(dy, cnp.NPY_UINT16, M * K, "dy")
    _require(dx, cnp.NPY_UINT16, M * K, "out")
    _require_writable(dx, "out")
    cdef const float *mp = <const float*>_data(mean, cnp.NPY_FLOAT32, M, "mean")
    _require(rstd, cnp.NPY_FLOAT32, M, "rstd")
    cdef const float *w = <const float*>_data(weight, cnp.NPY_FLOAT32, nparam, "weight")
    cdef double *dw = <double*>_data(dweight, cnp.NPY_FLOAT64, nparam, "dweight")
    cdef double *db = <double*>_data(dbias, cnp.NPY_FLOAT64, nparam, "dbias")
    cdef const uint16_t *dyp = <const uint16_t*>cnp.PyArray_DATA(dy)
    cdef const uint16_t *xp = <const uint16_t*>cnp.PyArray_DATA(x)
    cdef const float *rp = <const float*>cnp.PyArray_DATA(rstd)
    cdef uint16_t *dxp = <uint16_t*>cnp.PyArray_DATA(dx)
    cdef int status
    with nogil:
        if bfloat16:
            status = k.row_backward_bf16(dyp, xp, M, K, G, S, center, mp, rp, w, dxp, dw, db)
        else:
            status = k.row_backward_f16(dyp, xp, M, K, G, S, center, mp, rp, w, dxp, dw, db)
    _check(status)


def low_to_float32(cnp.ndarray src, cnp.ndarray dst, bint bfloat16):
    """float16 / bfloat16 bits (uint16) to float32, exactly."""
    cdef int64_t n = cnp.PyArray_SIZE(src)
    _require(src, cnp.NPY_UINT16, n, "src")
    _require(dst, cnp.NPY_FLOAT32, n, "dst")
    _require_writable(dst, "dst")
    cdef const uint16_t *sp = <const uint16_t*>cnp.PyArray_DATA(src)
    cdef float *dp = <float*>cnp.PyArray_DATA(dst)
    with nogil:
        if bfloat16:
            k.bf16_to_f32(sp, dp, n)
        else:
            k.f16_to_f32(sp, dp, n)


def float32_to_low(cnp.ndarray src, cnp.ndarray dst, bint bfloat16):
    """float32 to float16 / bfloat16 bits (uint16), rounded to nearest even."""
    cdef int64_t n = cnp.PyArray_SIZE(src)
    _require(src, cnp.NPY_FLOAT32, n, "src")
    _require(dst, cnp.NPY_UINT16, n, "dst")
    _require_writable(dst, "dst")
    cdef const float *sp = <const float*>cnp.PyArray_DATA(src)
    cdef uint16_t *dp = <uint16_t*>cnp.PyArray_DATA(dst)
    with nogil:
        if bfloat16:
            k.f32_to_bf16(sp, dp, n)
        else:
            k.f32_to_f16(sp, dp, n)


def row_forward_low(cnp.ndarray x, int64_t M, int64_t K, int64_t G, int64_t S, bint center,
                    double eps, weight, bias, cnp.ndarray y, mean, cnp.ndarray rstd,
                    bint bfloat16, int activation=0):
    """row_forward of float16/bfloat16 data (x, y as uint16 bits; float32
    parameters and statistics)."""
    if M < 0 or K < 1 or G < 1 or S < 1 or K % S != 0:
        raise ValueError("row_forward_low: inconsistent sizes")
    cdef int64_t nparam = G * (K // S)
    _require(x, cnp.NPY_UINT16, M * K, "x")
    _require(y, cnp.NPY_UINT16, M * K, "out")
    _require_writable(y, "out")
    _row_forward_2byte(cnp.PyArray_DATA(x), M, K, G, S, center, eps,
                       _data(weight, cnp.NPY_FLOAT32, nparam, "weight"),
                       _data(bias, cnp.NPY_FLOAT32, nparam, "bias"), cnp.PyArray_DATA(y),
                       _data(mean, cnp.NPY_FLOAT32, M, "mean"),
                       _data(rstd, cnp.NPY_FLOAT32, M, "rstd"), bfloat16, activation)


cdef int _row_forward_2byte(void *x, int64_t M, int64_t K, int64_t G, int64_t S, bint center,
                            double eps, void *weight, void *bias, void *y, void *mean,
                            void *rstd, bint bfloat16, int activation) except -1:
    """The kernel call of row_forward_low, arguments already checked: x and
    y 2-byte data, the rest float32 (or NULL)."""
    cdef const uint16_t *xp = <const uint16_t*>x
    cdef uint16_t *yp = <uint16_t*>y
    cdef const float *w = <const float*>weight
    cdef const float *b = <const float*>bias
    cdef float *mp = <float*>mean
    cdef float *rp = <float*>rstd
    cdef int status
    with nogil:
        if bfloat16:
            status = k.row_forward_bf16(xp, M, K, G, S, center, eps, activation, w, b, yp, mp, rp)
        else:
            status = k.row_forward_f16(xp, M, K, G, S, center, eps, activation, w, b, yp, mp, rp)
    _check(status)
    return 0


def bn_forward_infer_low(cnp.ndarray x, int64_t N, int64_t C, int64_t S, running_mean,
                         running_var, weight, bias, double eps, cnp.ndarray y, bint bfloat16,
                         int activation=0):
    """bn_forward_infer of float16/bfloat16 data (uint16 bits; float32 parameters)."""
    _require(x, cnp.NPY_UINT16, N * C * S, "x")
    _require(y, cnp.NPY_UINT16, N * C * S, "out")
    _require_writable(y, "out")
    cdef void *rm = _data(running_mean, cnp.NPY_FLOAT32, C, "running_mean")
    cdef void *rv = _data(running_var, cnp.NPY_FLOAT32, C, "running_var")
    if rm == NULL or rv == NULL:
        raise ValueError("bn_forward_infer_low: running statistics are required")
    _bn_infer_2byte(cnp.PyArray_DATA(x), N, C, S, rm, rv,
                    _data(weight, cnp.NPY_FLOAT32, C, "weight"),
                    _data(bias, cnp.NPY_FLOAT32, C, "bias"), eps, cnp.PyArray_DATA(y), bfloat16,
                    activation)


cdef int _bn_infer_2byte(void *x, int64_t N, int64_t C, int64_t S, void *running_mean,
                         void *running_var, void *weight, void *bias, double eps, void *y,
                         bint bfloat16, int activation) except -1:
    """The kernel call of bn_forward_infer_low, arguments already checked: x
    and y 2-byte data, the rest float32 (weight, bias or NULL)."""
    cdef const uint16_t *xp = <const uint16_t*>x
    cdef uint16_t *yp = <uint16_t*>y
    cdef const float *rm = <const float*>running_mean
    cdef const float *rv = <const float*>running_var
    cdef const float *w = <const float*>weight
    cdef const float *b = <const float*>bias
    cdef int status
    with nogil:
        if bfloat16:
            status = k.bn_forward_infer_bf16(xp, N, C, S, rm, rv, w, b, eps, activation, yp)
        else:
            status = k.bn_forward_infer_f16(xp, N, C, S, rm, rv, w, b, eps, activation, yp)
    _check(status)
    return 0


def channel_moments(cnp.ndarray x, int64_t N, int64_t C, int64_t S, cnp.ndarray mean,
                    cnp.ndarray m2):
    """Per-channel float64 mean and m2 of the (N, C, S) view into mean, m2."""
    cdef int t = _dtype_num(x)
    _require(x, t, N * C * S, "x")
    _require(mean, cnp.NPY_FLOAT64, C, "mean")
    _require(m2, cnp.NPY_FLOAT64, C, "m2")
    _require_writable(mean, "mean")
    _require_writable(m2, "m2")
    cdef const void *xp = cnp.PyArray_DATA(x)
    cdef double *mp = <double*>cnp.PyArray_DATA(mean)
    cdef double *m2p = <double*>cnp.PyArray_DATA(m2)
    cdef int status, e = _element(t)
    with nogil:
        status = kernel.channel_moments(e, xp, N, C, S, mp, m2p)
    _check(status)


def channel_standardize(cnp.ndarray x, int64_t N, int64_t C, int64_t S, cnp.ndarray center,
                        cnp.ndarray scale, cnp.ndarray shift, cnp.ndarray y,
                        int activation=0):
    """y = act((x - center[c]) * scale[c] + shift[c]) on the (N, C, S) view; y may be x."""
    cdef int t = _dtype_num(x)
    _require(x, t, N * C * S, "x")
    _require(y, t, N * C * S, "out")
    _require_writable(y, "out")
    _require(center, t, C, "center")
    _require(scale, t, C, "scale")
    _require(shift, t, C, "shift")
    cdef const void *xp = cnp.PyArray_DATA(x)
    cdef const void *mp = cnp.PyArray_DATA(center)
    cdef const void *sp = cnp.PyArray_DATA(scale)
    cdef const void *hp = cnp.PyArray_DATA(shift)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef int status, e = _element(t)
    with nogil:
        status = kernel.channel_standardize(e, xp, N, C, S, mp, sp, hp, activation, yp)
    _check(status)


def bn_forward_infer(cnp.ndarray x, int64_t N, int64_t C, int64_t S,
                     cnp.ndarray running_mean, cnp.ndarray running_var, weight, bias,
                     double eps, cnp.ndarray y, int activation=0):
    cdef int t = _dtype_num(x)
    _require(x, t, N * C * S, "x")
    _require(y, t, N * C * S, "out")
    _require_writable(y, "out")
    _data(running_mean, t, C, "running_mean")
    _data(running_var, t, C, "running_var")
    _data(weight, t, C, "weight")
    _data(bias, t, C, "bias")
    _bn_infer(x, N, C, S, running_mean, running_var, weight, bias, eps, y, t, activation)


cdef int _bn_infer(cnp.ndarray x, int64_t N, int64_t C, int64_t S, cnp.ndarray running_mean,
                   cnp.ndarray running_var, object weight, object bias, double eps,
                   cnp.ndarray y, int t, int activation) except -1:
    """The kernel call of bn_forward_infer, arguments already checked."""
    cdef void *rm = cnp.PyArray_DATA(running_mean)
    cdef void *rv = cnp.PyArray_DATA(running_var)
    cdef void *w = NULL if weight is None else cnp.PyArray_DATA(<cnp.ndarray>weight)
    cdef void *b = NULL if bias is None else cnp.PyArray_DATA(<cnp.ndarray>bias)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef int status, e = _element(t)
    with nogil:
        status = kernel.bn_forward_infer(e, xp, N, C, S, rm, rv, w, b, eps, activation, yp)
    _check(status)
    return 0


def bn_backward(cnp.ndarray dy, cnp.ndarray x, int64_t N, int64_t C, int64_t S,
                cnp.ndarray mean, cnp.ndarray invstd, weight, dx,
                cnp.ndarray sum_dy, cnp.ndarray sum_dy_xhat):
    """dx (None: only the sums) and the per-channel float64 sums (dbias, dweight)."""
    cdef int t = _dtype_num(x)
    _require(x, t, N * C * S, "x")
    _require(dy, t, N * C * S, "dy")
    _data(dx, t, N * C * S, "out")
    if dx is not None:
        _require_writable(<cnp.ndarray>dx, "out")
    _data(mean, t, C, "mean")
    _data(invstd, t, C, "invstd")
    _data(weight, t, C, "weight")
    _data(sum_dy, cnp.NPY_FLOAT64, C, "sum_dy")
    _data(sum_dy_xhat, cnp.NPY_FLOAT64, C, "sum_dy_xhat")
    _require_writable(sum_dy, "sum_dy")
    _require_writable(sum_dy_xhat, "sum_dy_xhat")
    _bn_backward(dy, x, N, C, S, mean, invstd, weight, dx, sum_dy, sum_dy_xhat, t)


cdef int _bn_backward(cnp.ndarray dy, cnp.ndarray x, int64_t N, int64_t C, int64_t S,
                      cnp.ndarray mean, cnp.ndarray invstd, object weight, object dx,
                      cnp.ndarray sum_dy, cnp.ndarray sum_dy_xhat, int t) except -1:
    """The kernel call of bn_backward, arguments already checked."""
    cdef void *dxp = NULL if dx is None else cnp.PyArray_DATA(<cnp.ndarray>dx)
    cdef void *mp = cnp.PyArray_DATA(mean)
    cdef void *ip = cnp.PyArray_DATA(invstd)
    cdef void *w = NULL if weight is None else cnp.PyArray_DATA(<cnp.ndarray>weight)
    cdef double *s1 = <double*>cnp.PyArray_DATA(sum_dy)
    cdef double *s2 = <double*>cnp.PyArray_DATA(sum_dy_xhat)
    cdef void *dyp = cnp.PyArray_DATA(dy)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef int status, e = _element(t)
    with nogil:
        status = kernel.bn_backward(e, dyp, xp, N, C, S, mp, ip, w, dxp, s1, s2)
    _check(status)
    return 0


def bn_backward_dx(cnp.ndarray dy, cnp.ndarray x, int64_t N, int64_t C, int64_t S,
                   cnp.ndarray mean, cnp.ndarray invstd, weight, cnp.ndarray sum_dy,
                   cnp.ndarray sum_dy_xhat, double count, cnp.ndarray dx):
    """dx from given float64 sums and count (bn_backward's elementwise pass)."""
    cdef int t = _dtype_num(x)
    _require(x, t, N * C * S, "x")
    _require(dy, t, N * C * S, "dy")
    _require(dx, t, N * C * S, "out")
    _require_writable(dx, "out")
    cdef void *mp = _data(mean, t, C, "mean")
    cdef void *ip = _data(invstd, t, C, "invstd")
    cdef void *w = _data(weight, t, C, "weight")
    cdef const double *s1 = <double*>_data(sum_dy, cnp.NPY_FLOAT64, C, "sum_dy")
    cdef const double *s2 = <double*>_data(sum_dy_xhat, cnp.NPY_FLOAT64, C, "sum_dy_xhat")
    cdef void *dyp = cnp.PyArray_DATA(dy)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *dxp = cnp.PyArray_DATA(dx)
    cdef int status, e = _element(t)
    with nogil:
        status = kernel.bn_backward_dx(e, dyp, xp, N, C, S, mp, ip, w, s1, s2, count, dxp)
    _check(status)


def row_forward(cnp.ndarray x, int64_t M, int64_t K, int64_t G, int64_t S, bint center,
                double eps, weight, bias, cnp.ndarray y, mean, cnp.ndarray rstd,
                int activation=0):
    """Row view (M, K); parameters indexed as documented in cnorm.h."""
    cdef int t = _dtype_num(x)
    if M < 0 or K < 1 or G < 1 or S < 1 or K % S != 0:
        raise ValueError("row_forward: inconsistent sizes")
    cdef int64_t nparam = G * (K // S)
    _require(x, t, M * K, "x")
    _require(y, t, M * K, "out")
    _require_writable(y, "out")
    _data(weight, t, nparam, "weight")
    _data(bias, t, nparam, "bias")
    _data(mean, t, M, "mean")
    _require(rstd, t, M, "rstd")
    _row_forward(x, M, K, G, S, center, eps, weight, bias, y, mean, rstd, t, activation)


def row_add_forward(cnp.ndarray x, cnp.ndarray residual, int64_t M, int64_t K, bint center,
                    double eps, weight, bias, cnp.ndarray y, cnp.ndarray sum_out, mean,
                    cnp.ndarray rstd):
    """sum_out = x + residual, then y = the row forward of sum_out (G = S = 1)."""
    cdef int t = _dtype_num(x)
    if M < 0 or K < 1:
        raise ValueError("row_add_forward: inconsistent sizes")
    _require(x, t, M * K, "x")
    _require(residual, t, M * K, "residual")
    _require(y, t, M * K, "out")
    _require(sum_out, t, M * K, "sum_out")
    _require_writable(y, "out")
    _require_writable(sum_out, "sum_out")
    cdef void *w = _data(weight, t, K, "weight")
    cdef void *b = _data(bias, t, K, "bias")
    cdef void *mp = _data(mean, t, M, "mean")
    _require(rstd, t, M, "rstd")
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *rsp = cnp.PyArray_DATA(residual)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *sp = cnp.PyArray_DATA(sum_out)
    cdef void *rp = cnp.PyArray_DATA(rstd)
    cdef int status, e = _element(t)
    with nogil:
        status = kernel.row_add_forward(e, xp, rsp, M, K, center, eps, w, b, yp, sp, mp, rp)
    _check(status)


cdef int _row_forward(cnp.ndarray x, int64_t M, int64_t K, int64_t G, int64_t S, bint center,
                      double eps, object weight, object bias, cnp.ndarray y, object mean,
                      cnp.ndarray rstd, int t, int activation) except -1:
    """The kernel call of row_forward, arguments already checked."""
    cdef void *w = NULL if weight is None else cnp.PyArray_DATA(<cnp.ndarray>weight)
    cdef void *b = NULL if bias is None else cnp.PyArray_DATA(<cnp.ndarray>bias)
    cdef void *mp = NULL if mean is None else cnp.PyArray_DATA(<cnp.ndarray>mean)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *rp = cnp.PyArray_DATA(rstd)
    cdef int status, e = _element(t)
    with nogil:
        status = kernel.row_forward(e, xp, M, K, G, S, center, eps, activation, w, b, yp, mp,
                                    rp)
    _check(status)
    return 0


def row_backward(cnp.ndarray dy, cnp.ndarray x, int64_t M, int64_t K, int64_t G, int64_t S,
                 bint center, mean, cnp.ndarray rstd, weight, cnp.ndarray dx,
                 dweight, dbias):
    """dx and optional float64 parameter gradients (G*K/S entries each)."""
    cdef int t = _dtype_num(x)
    if M < 0 or K < 1 or G < 1 or S < 1 or K % S != 0:
        raise ValueError("row_backward: inconsistent sizes")
    cdef int64_t nparam = G * (K // S)
    _require(x, t, M * K, "x")
    _require(dy, t, M * K, "dy")
    _require(dx, t, M * K, "out")
    _require_writable(dx, "out")
    _data(mean, t, M, "mean")
    _require(rstd, t, M, "rstd")
    _data(weight, t, nparam, "weight")
    _data(dweight, cnp.NPY_FLOAT64, nparam, "dweight")
    _data(dbias, cnp.NPY_FLOAT64, nparam, "dbias")
    _row_backward(dy, x, M, K, G, S, center, mean, rstd, weight, dx, dweight, dbias, t)


cdef int _row_backward(cnp.ndarray dy, cnp.ndarray x, int64_t M, int64_t K, int64_t G,
                       int64_t S, bint center, object mean, cnp.ndarray rstd, object weight,
                       cnp.ndarray dx, object dweight, object dbias, int t) except -1:
    """The kernel call of row_backward, arguments already checked."""
    cdef void *mp = NULL if mean is None else cnp.PyArray_DATA(<cnp.ndarray>mean)
    cdef void *w = NULL if weight is None else cnp.PyArray_DATA(<cnp.ndarray>weight)
    cdef double *dw = NULL if dweight is None else <double*>cnp.PyArray_DATA(<cnp.ndarray>dweight)
    cdef double *db = NULL if dbias is None else <double*>cnp.PyArray_DATA(<cnp.ndarray>dbias)
    cdef void *dyp = cnp.PyArray_DATA(dy)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *rp = cnp.PyArray_DATA(rstd)
    cdef void *dxp = cnp.PyArray_DATA(dx)
    cdef int status, e = _element(t)
    with nogil:
        status = kernel.row_backward(e, dyp, xp, M, K, G, S, center, mp, rp, w, dxp, dw, db)
    _check(status)
    return 0


# ---- lean entry points for small calls --------------------------------------
# A call on a few kilobytes costs less than a microsecond in C, so argument
# handling dominates.  These functions do the whole call for the common case
# (exact ndarrays of x's dtype, C-contiguous, float eps, out None / x / a
# non-overlapping array) with C-level checks only, and return None for
# anything else, which functional.py then handles (conversion, copies,
# error messages).  They never raise for bad input and never write before
# every check has passed.

cdef inline bint _plain(object a, int t):
    """a is an exact, C-contiguous, aligned ndarray of type t in native byte
    order."""
    if type(a) is not cnp.ndarray:
        return False
    cdef cnp.ndarray arr = <cnp.ndarray>a
    return (cnp.PyArray_TYPE(arr) == t and cnp.PyArray_IS_C_CONTIGUOUS(arr)
            and cnp.PyArray_ISALIGNED(arr) and cnp.PyArray_ISNOTSWAPPED(arr))


cdef inline bint _vector(object a, int t, int64_t n, bint optional):
    """a is None (when optional) or a plain 1-D array of n elements."""
    if a is None:
        return optional
    return (_plain(a, t) and cnp.PyArray_NDIM(<cnp.ndarray>a) == 1
            and cnp.PyArray_DIM(<cnp.ndarray>a, 0) == n)


# |mean| * invstd above which the rounding of a saved float32/float64 mean
# moves x_hat by more than 8 ulp of its own: batch-norm backwards then
# recover the lost part from x (functional.channel_mean_residual).
cdef double _OFF_CENTRE = 8.0
OFF_CENTRE = _OFF_CENTRE


cdef bint _off_centre(cnp.ndarray mean, cnp.ndarray invstd, int64_t C, int t):
    """Some channel of plain vectors mean, invstd of type t (float32 or
    float64) has |mean| * invstd > OFF_CENTRE (NaN: no)."""
    cdef int64_t c
    cdef double m, i
    for c in range(C):
        if t == cnp.NPY_FLOAT32:
            m = (<float*>cnp.PyArray_DATA(mean))[c]
            i = (<float*>cnp.PyArray_DATA(invstd))[c]
        else:
            m = (<double*>cnp.PyArray_DATA(mean))[c]
            i = (<double*>cnp.PyArray_DATA(invstd))[c]
        if fabs(m) * i > _OFF_CENTRE:
            return True
    return False


cdef inline bint _good_eps(object eps):
    if type(eps) is not float:
        return False
    cdef double e = <double>eps
    return e >= 0.0 and e < 1e308


cdef inline bint _same_dims(cnp.ndarray a, cnp.ndarray b):
    return (cnp.PyArray_NDIM(a) == cnp.PyArray_NDIM(b)
            and _equal(cnp.PyArray_DIMS(a), cnp.PyArray_DIMS(b), cnp.PyArray_NDIM(a)))


cdef inline bint _overlaps(cnp.ndarray a, cnp.ndarray b):
    """Whether the bytes of two C-contiguous arrays overlap."""
    cdef char *pa = <char*>cnp.PyArray_DATA(a)
    cdef char *pb = <char*>cnp.PyArray_DATA(b)
    return pa < pb + cnp.PyArray_NBYTES(b) and pb < pa + cnp.PyArray_NBYTES(a)


cdef object _output(object out, cnp.ndarray x, int t, object other):
    """Array for the result: a new one, x itself (or `other`, a second input
    of x's shape, when given), or out when it is a plain writable array of
    x's shape that overlaps neither; None otherwise."""
    if out is None:
        return cnp.PyArray_EMPTY(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), t, 0)
    if not _plain(out, t) or not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out):
        return None
    if out is x or (other is not None and out is other):
        return out
    cdef cnp.ndarray o = <cnp.ndarray>out
    if not _same_dims(o, x) or _overlaps(o, x):
        return None
    if other is not None and _overlaps(o, <cnp.ndarray>other):
        return None
    return out


cdef bint _clear(object y, object out, tuple params):
    """False when y is the caller's out and shares memory with one of
    params (the kernels read parameters while they write)."""
    if y is not out:
        return True
    for p in params:
        if p is not None and _overlaps(<cnp.ndarray>y, <cnp.ndarray>p):
            return False
    return True


cdef int _plain_channel_view(object x, object axis, int64_t *ncs,
                             bint two_byte_too=False) except -1:
    """The dtype number of x when x is a plain float32/float64 array (or,
    with two_byte_too, float16/bfloat16) of at least 2 dims and axis an int
    in range, with its channel view (N, C, S) in ncs; 0 otherwise."""
    if type(x) is not cnp.ndarray or type(axis) is not int or not -64 <= axis <= 64:
        return 0  # (an axis beyond any ndim goes to functional.py's message)
    cdef cnp.ndarray xa = <cnp.ndarray>x
    cdef int t = cnp.PyArray_TYPE(xa)
    cdef int nd = cnp.PyArray_NDIM(xa)
    cdef long a = axis
    if ((t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64 and not (two_byte_too and _two_byte(xa, t)))
            or not _plain(x, t) or nd < 2):
        return 0
    if a < 0:
        a += nd
    if a < 0 or a >= nd:
        return 0
    ncs[0] = 1
    ncs[1] = cnp.PyArray_DIM(xa, a)
    ncs[2] = 1
    cdef int i
    for i in range(a):
        ncs[0] *= cnp.PyArray_DIM(xa, i)
    for i in range(a + 1, nd):
        ncs[2] *= cnp.PyArray_DIM(xa, i)
    return t


def bn_infer_fast(x, running_mean, running_var, weight, bias, eps, axis, out):
    """batch_norm_infer for the common case, or None (see above); for
    float16/bfloat16 x the parameters and statistics are float32."""
    cdef int64_t ncs[3]
    cdef int t = _plain_channel_view(x, axis, ncs, True)
    if t == 0 or not _good_eps(eps):
        return None
    cdef bint two_byte = t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64
    cdef int pt = cnp.NPY_FLOAT32 if two_byte else t
    cdef int64_t C = ncs[1]
    if not (_vector(running_mean, pt, C, False) and _vector(running_var, pt, C, False)
            and _vector(weight, pt, C, True) and _vector(bias, pt, C, True)):
        return None
    y = _output(out, <cnp.ndarray>x, t, None)
    if y is None or not _clear(y, out, (running_mean, running_var, weight, bias)):
        return None
    if two_byte:
        _bn_infer_2byte(cnp.PyArray_DATA(<cnp.ndarray>x), ncs[0], C, ncs[2],
                        _data_or_null(running_mean), _data_or_null(running_var),
                        _data_or_null(weight), _data_or_null(bias), eps,
                        cnp.PyArray_DATA(<cnp.ndarray>y), t != cnp.NPY_FLOAT16, 0)
    else:
        _bn_infer(x, ncs[0], C, ncs[2], running_mean, running_var, weight, bias, eps, y, t, 0)
    return y


cdef object _vector_of(cnp.ndarray v, int t):
    """A new 1-D array of type t holding the float64 vector v, rounded."""
    cdef cnp.npy_intp n = cnp.PyArray_DIM(v, 0), i
    cdef cnp.ndarray r = cnp.PyArray_EMPTY(1, &n, t, 0)
    cdef double *src = <double*>cnp.PyArray_DATA(v)
    if t == cnp.NPY_FLOAT32:
        for i in range(n):
            (<float*>cnp.PyArray_DATA(r))[i] = <float>src[i]
    else:
        for i in range(n):
            (<double*>cnp.PyArray_DATA(r))[i] = src[i]
    return r


cdef cnp.ndarray _invstd(cnp.ndarray var, double eps):
    """1 / sqrt(var + eps) in a new float64 vector: functional.saved_statistics
    before its rounding to x's dtype."""
    cdef cnp.npy_intp n = cnp.PyArray_DIM(var, 0), i
    cdef cnp.ndarray r = cnp.PyArray_EMPTY(1, &n, cnp.NPY_FLOAT64, 0)
    cdef double *v = <double*>cnp.PyArray_DATA(var)
    cdef double *dst = <double*>cnp.PyArray_DATA(r)
    for i in range(n):
        dst[i] = 1.0 / sqrt(v[i] + eps)
    return r


def bn_train_fast(x, weight, bias, eps, axis, out, int activation=0, bint moments=False):
    """batch_norm_train for the common case: (y, mean, invstd) in x's dtype
    (float32 statistics and parameters for float16/bfloat16 x), with
    moments followed by the float64 mean and biased var they were rounded
    from (BatchNorm's running update); or None (see above; also for eps == 0
    and fewer than 2 values per channel, which functional.py rejects with
    their messages).  activation: a CNORM_ACT_* code."""
    cdef int64_t ncs[3]
    cdef int t = _plain_channel_view(x, axis, ncs, True)
    if t == 0 or not _good_eps(eps) or <double>eps == 0.0 or ncs[0] * ncs[2] < 2:
        return None
    cdef bint two_byte = t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64
    cdef int pt = cnp.NPY_FLOAT32 if two_byte else t
    cdef int64_t C = ncs[1]
    if not (_vector(weight, pt, C, True) and _vector(bias, pt, C, True)):
        return None
    y = _output(out, <cnp.ndarray>x, t, None)
    if y is None or not _clear(y, out, (weight, bias)):
        return None
    cdef cnp.npy_intp c = C
    cdef cnp.ndarray mean = cnp.PyArray_EMPTY(1, &c, cnp.NPY_FLOAT64, 0)
    cdef cnp.ndarray var = cnp.PyArray_EMPTY(1, &c, cnp.NPY_FLOAT64, 0)
    if two_byte:
        _bn_train_2byte(cnp.PyArray_DATA(<cnp.ndarray>x), ncs[0], C, ncs[2],
                        _data_or_null(weight), _data_or_null(bias), eps,
                        cnp.PyArray_DATA(<cnp.ndarray>y), <double*>cnp.PyArray_DATA(mean),
                        <double*>cnp.PyArray_DATA(var), NULL, t != cnp.NPY_FLOAT16, activation)
    else:
        _bn_train(x, ncs[0], C, ncs[2], weight, bias, eps, y, mean, var, NULL, t, activation)
    saved = (y, _vector_of(mean, pt), _vector_of(_invstd(var, eps), pt))
    return saved + (mean, var) if moments else saved


def bn_backward_fast(dy, x, mean, invstd, weight, bias, axis, out):
    """batch_norm_backward for the common case: (dx, dweight or None, dbias)
    in x's dtype (dweight, dbias, statistics and parameters float32 for
    float16/bfloat16 x and dy), or None (see above; out may also be dy).
    bias is unused without an activation but checked, as the general path
    checks it."""
    cdef int64_t ncs[3]
    cdef int t = _plain_channel_view(x, axis, ncs, True)
    if t == 0 or not _plain(dy, t):
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x, da = <cnp.ndarray>dy
    if not _same_dims(da, xa):
        return None
    cdef bint two_byte = t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64
    cdef int pt = cnp.NPY_FLOAT32 if two_byte else t
    cdef int64_t C = ncs[1]
    if not (_vector(mean, pt, C, False) and _vector(invstd, pt, C, False)
            and _vector(weight, pt, C, True) and _vector(bias, pt, C, True)):
        return None
    if not two_byte and _off_centre(<cnp.ndarray>mean, <cnp.ndarray>invstd, C, t):
        return None
    dx = _output(out, da, t, None)   # dx may be dy, never x (restrict in the kernels)
    if dx is None or not _clear(dx, out, (xa, mean, invstd, weight)):
        return None
    cdef cnp.npy_intp c = C
    cdef cnp.ndarray sum_dy = cnp.PyArray_EMPTY(1, &c, cnp.NPY_FLOAT64, 0)
    cdef cnp.ndarray sum_dy_xhat = cnp.PyArray_EMPTY(1, &c, cnp.NPY_FLOAT64, 0)
    if two_byte:
        _bn_backward_2byte(cnp.PyArray_DATA(da), cnp.PyArray_DATA(xa), ncs[0], C, ncs[2],
                           _data_or_null(mean), _data_or_null(invstd), _data_or_null(weight),
                           cnp.PyArray_DATA(<cnp.ndarray>dx), <double*>cnp.PyArray_DATA(sum_dy),
                           <double*>cnp.PyArray_DATA(sum_dy_xhat), t != cnp.NPY_FLOAT16)
    else:
        _bn_backward(da, xa, ncs[0], C, ncs[2], mean, invstd, weight, dx, sum_dy, sum_dy_xhat,
                     t)
    dweight = None if weight is None else _vector_of(sum_dy_xhat, pt)
    return dx, dweight, _vector_of(sum_dy, pt)


cdef int _bfloat16_type = -1   # ml_dtypes' bfloat16, once an array of it was seen


cdef bint _two_byte(cnp.ndarray x, int t):
    """x's dtype (number t) is float16 or bfloat16 (by name, as
    lowp.is_low_dtype: ml_dtypes is not imported)."""
    global _bfloat16_type
    if t == cnp.NPY_FLOAT16 or t == _bfloat16_type:
        return True
    if not cnp.PyTypeNum_ISUSERDEF(t) or _bfloat16_type >= 0:
        return False
    dt = x.dtype
    if dt.itemsize == 2 and dt.name == "bfloat16":
        _bfloat16_type = t
        return True
    return False


cdef int _plain_row_view(object x, object normalized_shape, int64_t *mk,
                         bint two_byte_too=False) except -1:
    """The dtype number of x when x is a plain float32/float64 array (or,
    with two_byte_too, float16/bfloat16) whose last dim is normalized_shape
    (an int, or a tuple of one int), with its row view (M, K) in mk; 0
    otherwise."""
    if type(normalized_shape) is tuple and len(normalized_shape) == 1:
        normalized_shape = normalized_shape[0]
    if type(x) is not cnp.ndarray or type(normalized_shape) is not int:
        return 0
    if not 0 < normalized_shape < 2**62:  # fits int64_t; others get functional's message
        return 0
    cdef cnp.ndarray xa = <cnp.ndarray>x
    cdef int t = cnp.PyArray_TYPE(xa)
    cdef int nd = cnp.PyArray_NDIM(xa)
    if ((t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64 and not (two_byte_too and _two_byte(xa, t)))
            or not _plain(x, t) or nd < 1):
        return 0
    mk[1] = cnp.PyArray_DIM(xa, nd - 1)
    if mk[1] != <int64_t>normalized_shape:
        return 0
    mk[0] = 1
    cdef int i
    for i in range(nd - 1):
        mk[0] *= cnp.PyArray_DIM(xa, i)
    return t


cdef inline bint _row_stat(object a, int t, cnp.ndarray x):
    """a is a plain array of type t with x's leading shape (x.shape[:-1])."""
    cdef int nd = cnp.PyArray_NDIM(x) - 1
    return (_plain(a, t) and cnp.PyArray_NDIM(<cnp.ndarray>a) == nd
            and _equal(cnp.PyArray_DIMS(<cnp.ndarray>a), cnp.PyArray_DIMS(x), nd))


def row_norm_fast(x, normalized_shape, weight, bias, eps, out, bint center=True,
                  int activation=0):
    """layer_norm (center) or rms_norm (not center: mean None, bias None) over
    the last dim for the common case: (y, mean, rstd), or None.  Parameters
    and statistics are of x's dtype, float32 for float16/bfloat16 x.
    rms_norm's eps None is the machine epsilon of that dtype, as
    functional._rms_eps."""
    cdef int64_t mk[2]
    cdef int t = _plain_row_view(x, normalized_shape, mk, True)
    if t == 0:
        return None
    cdef bint two_byte = t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64
    cdef int st = cnp.NPY_FLOAT32 if two_byte else t
    if eps is None and not center:
        eps = FLT_EPSILON if st == cnp.NPY_FLOAT32 else DBL_EPSILON
    cdef int64_t M = mk[0], K = mk[1]
    if not (_good_eps(eps) and _vector(weight, st, K, True)
            and (_vector(bias, st, K, True) if center else bias is None)):
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x
    y = _output(out, xa, t, None)
    if y is None or not _clear(y, out, (weight, bias)):
        return None
    cdef int nd = cnp.PyArray_NDIM(xa)
    mean = cnp.PyArray_EMPTY(nd - 1, cnp.PyArray_DIMS(xa), st, 0) if center else None
    rstd = cnp.PyArray_EMPTY(nd - 1, cnp.PyArray_DIMS(xa), st, 0)
    if M > 0 and two_byte:
        _row_forward_2byte(cnp.PyArray_DATA(xa), M, K, 1, 1, center, eps, _data_or_null(weight),
                           _data_or_null(bias), cnp.PyArray_DATA(<cnp.ndarray>y),
                           _data_or_null(mean), cnp.PyArray_DATA(<cnp.ndarray>rstd),
                           t != cnp.NPY_FLOAT16, activation)
    elif M > 0:
        _row_forward(xa, M, K, 1, 1, center, eps, weight, bias, y, mean, rstd, t, activation)
    return y, mean, rstd


def row_backward_fast(dy, x, mean, rstd, normalized_shape, weight, bias, out,
                      bint center=True):
    """layer_norm_backward (center) or rms_norm_backward (not center: mean
    and bias None, dbias None) over the last dim for the common case: (dx,
    dweight or None, dbias or None) in x's dtype, or None (out may also be
    dy).  bias is unused without an activation but checked, as the general
    path checks it."""
    cdef int64_t mk[2]
    cdef int t = _plain_row_view(x, normalized_shape, mk)
    if t == 0 or not _plain(dy, t):
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x, da = <cnp.ndarray>dy
    cdef int64_t M = mk[0], K = mk[1]
    if not (_same_dims(da, xa) and (_row_stat(mean, t, xa) if center else mean is None)
            and _row_stat(rstd, t, xa) and _vector(weight, t, K, True)
            and (_vector(bias, t, K, True) if center else bias is None)):
        return None
    dx = _output(out, da, t, None)   # dx may be dy, never x (restrict in the kernels)
    if dx is None or not _clear(dx, out, (xa, mean, rstd, weight)):
        return None
    cdef cnp.npy_intp nk = K
    dweight = None if weight is None else cnp.PyArray_ZEROS(1, &nk, cnp.NPY_FLOAT64, 0)
    dbias = cnp.PyArray_ZEROS(1, &nk, cnp.NPY_FLOAT64, 0) if center else None
    if M > 0:
        _row_backward(da, xa, M, K, 1, 1, center, mean, rstd, weight, dx, dweight, dbias, t)
    return (dx, None if dweight is None else _vector_of(dweight, t),
            None if dbias is None else _vector_of(dbias, t))


# ---- running statistics -----------------------------------------------------


cdef inline bint _float_vector(object a, int64_t n):
    """a is a plain float32 or float64 vector of n elements."""
    return _vector(a, cnp.NPY_FLOAT32, n, False) or _vector(a, cnp.NPY_FLOAT64, n, False)


cdef cnp.ndarray _average(cnp.ndarray running, cnp.ndarray batch, double f, double scale):
    """(1 - f) * running + f * (batch * scale) in a new float64 vector, each
    product rounded before the sum, as NumPy's separate ufuncs compute it
    (volatile: no FMA contraction on targets that have one)."""
    cdef cnp.npy_intp n = cnp.PyArray_DIM(batch, 0), i
    cdef cnp.ndarray r = cnp.PyArray_EMPTY(1, &n, cnp.NPY_FLOAT64, 0)
    cdef double *dst = <double*>cnp.PyArray_DATA(r)
    cdef const double *b = <double*>cnp.PyArray_DATA(batch)
    cdef const void *old = cnp.PyArray_DATA(running)
    cdef bint single = cnp.PyArray_TYPE(running) == cnp.NPY_FLOAT32
    cdef volatile double kept, added
    for i in range(n):
        kept = (1.0 - f) * ((<const float*>old)[i] if single else (<const double*>old)[i])
        added = f * (b[i] * scale)
        dst[i] = kept + added
    return r


def running_average(running_mean, running_var, mean, var, f, double var_scale):
    """One step of PyTorch's running averages, for plain vectors and a float
    f: (new mean, new var) in float64, new = (1 - f) * running + f * batch
    with var's batch var * var_scale; the running buffers float32 or
    float64, mean and var float64.  None for anything else (an f of NumPy's
    float32, say, makes 1 - f a float32).  Writes nothing: the caller commits."""
    if type(f) is not float or type(mean) is not cnp.ndarray:
        return None
    if cnp.PyArray_NDIM(<cnp.ndarray>mean) != 1:
        return None
    cdef int64_t n = cnp.PyArray_DIM(<cnp.ndarray>mean, 0)
    if not (_vector(mean, cnp.NPY_FLOAT64, n, False) and _vector(var, cnp.NPY_FLOAT64, n, False)
            and _float_vector(running_mean, n) and _float_vector(running_var, n)):
        return None
    return (_average(<cnp.ndarray>running_mean, <cnp.ndarray>mean, f, 1.0),
            _average(<cnp.ndarray>running_var, <cnp.ndarray>var, f, var_scale))

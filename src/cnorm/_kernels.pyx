# Thin Python entry points to the C kernels.  The caller (functional.py) has
# validated shapes and made every array C-contiguous with x's dtype; this
# layer re-checks only what memory safety depends on (dtype, contiguity,
# sizes), releases the GIL and calls the kernel through cnorm.kernels.
cimport numpy as cnp
from libc.stdint cimport int64_t

from cnorm cimport kernels as k
from cnorm._capi cimport cnorm_renorm, CNORM_ENOMEM, CNORM_OK

cnp.import_array()


cdef inline void _require(cnp.ndarray a, int typenum, int64_t size, str name) except *:
    if cnp.PyArray_TYPE(a) != typenum:
        raise TypeError(f"{name}: expected dtype {cnp.PyArray_DescrFromType(typenum)}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError(f"{name}: expected a C-contiguous array")
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


cdef inline int _dtype_num(cnp.ndarray x) except -1:
    cdef int t = cnp.PyArray_TYPE(x)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError(f"expected float32 or float64 data, got {x.dtype}")
    return t


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


def simd_path():
    return k.simd_path().decode()


def bn_forward_train(cnp.ndarray x, int64_t N, int64_t C, int64_t S, weight, bias,
                     double eps, cnp.ndarray y, cnp.ndarray mean, cnp.ndarray var,
                     renorm=None):
    """y = normalized x; mean, var (biased) float64[C].  renorm: None or
    (running_mean f64[C], running_var f64[C], rmax, dmax, r f64[C], d f64[C])."""
    cdef int t = _dtype_num(x)
    _require(x, t, N * C * S, "x")
    _require(y, t, N * C * S, "out")
    _require_writable(y, "out")
    _require(mean, cnp.NPY_FLOAT64, C, "mean")
    _require(var, cnp.NPY_FLOAT64, C, "var")
    cdef void *w = _data(weight, t, C, "weight")
    cdef void *b = _data(bias, t, C, "bias")
    cdef cnorm_renorm rn
    cdef cnorm_renorm *rp = NULL
    if renorm is not None:
        rm, rv, rmax, dmax, r, d = renorm
        rn.running_mean = <double*>_data(rm, cnp.NPY_FLOAT64, C, "running_mean")
        rn.running_var = <double*>_data(rv, cnp.NPY_FLOAT64, C, "running_var")
        rn.rmax = rmax
        rn.dmax = dmax
        rn.r = <double*>_data(r, cnp.NPY_FLOAT64, C, "r")
        rn.d = <double*>_data(d, cnp.NPY_FLOAT64, C, "d")
        rp = &rn
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef double *mp = <double*>cnp.PyArray_DATA(mean)
    cdef double *vp = <double*>cnp.PyArray_DATA(var)
    cdef int status
    with nogil:
        if t == cnp.NPY_FLOAT32:
            status = k.bn_forward_train_f32(<float*>xp, N, C, S, <float*>w, <float*>b, eps, rp,
                                            <float*>yp, mp, vp)
        else:
            status = k.bn_forward_train_f64(<double*>xp, N, C, S, <double*>w, <double*>b, eps,
                                            rp, <double*>yp, mp, vp)
    _check(status)


def bn_forward_infer(cnp.ndarray x, int64_t N, int64_t C, int64_t S,
                     cnp.ndarray running_mean, cnp.ndarray running_var, weight, bias,
                     double eps, cnp.ndarray y):
    cdef int t = _dtype_num(x)
    _require(x, t, N * C * S, "x")
    _require(y, t, N * C * S, "out")
    _require_writable(y, "out")
    cdef void *rm = _data(running_mean, t, C, "running_mean")
    cdef void *rv = _data(running_var, t, C, "running_var")
    cdef void *w = _data(weight, t, C, "weight")
    cdef void *b = _data(bias, t, C, "bias")
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef int status
    with nogil:
        if t == cnp.NPY_FLOAT32:
            status = k.bn_forward_infer_f32(<float*>xp, N, C, S, <float*>rm, <float*>rv,
                                            <float*>w, <float*>b, eps, <float*>yp)
        else:
            status = k.bn_forward_infer_f64(<double*>xp, N, C, S, <double*>rm, <double*>rv,
                                            <double*>w, <double*>b, eps, <double*>yp)
    _check(status)


def bn_backward(cnp.ndarray dy, cnp.ndarray x, int64_t N, int64_t C, int64_t S,
                cnp.ndarray mean, cnp.ndarray invstd, weight, cnp.ndarray dx,
                cnp.ndarray sum_dy, cnp.ndarray sum_dy_xhat):
    """dx and the per-channel float64 sums (dbias, dweight)."""
    cdef int t = _dtype_num(x)
    _require(x, t, N * C * S, "x")
    _require(dy, t, N * C * S, "dy")
    _require(dx, t, N * C * S, "out")
    _require_writable(dx, "out")
    cdef void *mp = _data(mean, t, C, "mean")
    cdef void *ip = _data(invstd, t, C, "invstd")
    cdef void *w = _data(weight, t, C, "weight")
    _require(sum_dy, cnp.NPY_FLOAT64, C, "sum_dy")
    _require(sum_dy_xhat, cnp.NPY_FLOAT64, C, "sum_dy_xhat")
    cdef void *dyp = cnp.PyArray_DATA(dy)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *dxp = cnp.PyArray_DATA(dx)
    cdef double *s1 = <double*>cnp.PyArray_DATA(sum_dy)
    cdef double *s2 = <double*>cnp.PyArray_DATA(sum_dy_xhat)
    cdef int status
    with nogil:
        if t == cnp.NPY_FLOAT32:
            status = k.bn_backward_f32(<float*>dyp, <float*>xp, N, C, S, <float*>mp,
                                       <float*>ip, <float*>w, <float*>dxp, s1, s2)
        else:
            status = k.bn_backward_f64(<double*>dyp, <double*>xp, N, C, S, <double*>mp,
                                       <double*>ip, <double*>w, <double*>dxp, s1, s2)
    _check(status)


def row_forward(cnp.ndarray x, int64_t M, int64_t K, int64_t G, int64_t S, bint center,
                double eps, weight, bias, cnp.ndarray y, mean, cnp.ndarray rstd):
    """Row view (M, K); parameters indexed as documented in cnorm.h."""
    cdef int t = _dtype_num(x)
    if M < 0 or K < 1 or G < 1 or S < 1 or K % S != 0:
        raise ValueError("row_forward: inconsistent sizes")
    cdef int64_t nparam = G * (K // S)
    _require(x, t, M * K, "x")
    _require(y, t, M * K, "out")
    _require_writable(y, "out")
    cdef void *w = _data(weight, t, nparam, "weight")
    cdef void *b = _data(bias, t, nparam, "bias")
    cdef void *mp = _data(mean, t, M, "mean")
    _require(rstd, t, M, "rstd")
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *yp = cnp.PyArray_DATA(y)
    cdef void *rp = cnp.PyArray_DATA(rstd)
    cdef int status
    with nogil:
        if t == cnp.NPY_FLOAT32:
            status = k.row_forward_f32(<float*>xp, M, K, G, S, center, eps, <float*>w,
                                       <float*>b, <float*>yp, <float*>mp, <float*>rp)
        else:
            status = k.row_forward_f64(<double*>xp, M, K, G, S, center, eps, <double*>w,
                                       <double*>b, <double*>yp, <double*>mp, <double*>rp)
    _check(status)


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
    cdef void *mp = _data(mean, t, M, "mean")
    _require(rstd, t, M, "rstd")
    cdef void *w = _data(weight, t, nparam, "weight")
    cdef double *dw = <double*>_data(dweight, cnp.NPY_FLOAT64, nparam, "dweight")
    cdef double *db = <double*>_data(dbias, cnp.NPY_FLOAT64, nparam, "dbias")
    cdef void *dyp = cnp.PyArray_DATA(dy)
    cdef void *xp = cnp.PyArray_DATA(x)
    cdef void *rp = cnp.PyArray_DATA(rstd)
    cdef void *dxp = cnp.PyArray_DATA(dx)
    cdef int status
    with nogil:
        if t == cnp.NPY_FLOAT32:
            status = k.row_backward_f32(<float*>dyp, <float*>xp, M, K, G, S, center,
                                        <float*>mp, <float*>rp, <float*>w, <float*>dxp, dw, db)
        else:
            status = k.row_backward_f64(<double*>dyp, <double*>xp, M, K, G, S, center,
                                        <double*>mp, <double*>rp, <double*>w, <double*>dxp,
                                        dw, db)
    _check(status)

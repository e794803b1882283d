"""Slow, obvious float64 NumPy reference for the row family (layer, group,
instance and RMS norm) and for batch renormalization.

Written from the formulas with plain NumPy reductions, in float64; nothing
here imports cnorm.

Row family.  Each normalization computes statistics over a set of "reduce"
axes of x and scales per "parameter" element:

    layer norm     reduce: the trailing len(normalized_shape) dims
                   weight/bias: shape normalized_shape
    group norm     x (N, C, *) viewed as (N, G, C/G, S); reduce: (C/G, S)
                   weight/bias: shape (C,)
    instance norm  x (N, C, *); reduce: all spatial dims; weight/bias: (C,)
    RMS norm       as layer norm, without centring and without bias

    mean = sum(x) / K                        (K values per reduced set)
    var  = sum((x - mean)**2) / K            (biased)
    rstd = 1 / sqrt(var + eps)               (RMS: 1 / sqrt(sum(x**2)/K + eps))
    xhat = (x - mean) * rstd                 (RMS: x * rstd)
    y    = xhat * weight + bias

Backward, with g = dy * weight (weight = 1 when None) and means over the
reduced set:

    dx      = rstd * (g - mean(g) - xhat * mean(g * xhat))   (RMS: no mean(g) term)
    dweight = sum of dy * xhat over everything but the parameter dims
    dbias   = sum of dy over everything but the parameter dims

Batch renormalization (Ioffe 2017), per channel c:

    mu_B, var_B   batch mean and biased batch variance
    sigma_B = sqrt(var_B + eps),  sigma = sqrt(running_var + eps)
    r = clip(sigma_B / sigma, 1/rmax, rmax)
    d = clip((mu_B - running_mean) / sigma, -dmax, dmax)
    xhat = (x - mu_B) / sigma_B * r + d
    y = weight * xhat + bias

r and d are constants for the gradient, so dx is batch norm's dx with
weight * r, dweight = sum(dy * xhat) and dbias = sum(dy).
"""
import numpy as np

from reference import bn_infer, numerical_grad  # noqa: F401 - re-exported for the tests
from reference import running_update as bn_running_update  # noqa: F401


def f64(a):
    return None if a is None else np.asarray(a, dtype=np.float64)


# ---------------------------------------------------------------- helpers


def _stats(x, axes, eps, center=True):
    """(mean, rstd) with keepdims over `axes`; mean is 0 for RMS norm."""
    if center:
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)  # two-pass
    else:
        mean = np.zeros([1 if i in axes else s for i, s in enumerate(x.shape)])
        var = (x * x).mean(axis=axes, keepdims=True)
    return mean, 1.0 / np.sqrt(var + eps)


def _backward(dy, xhat, rstd, w_b, axes, param_axes, center=True):
    """dx, dweight_sum, dbias_sum for xhat normalized over `axes`.

    w_b: weight broadcast against x (or None); param_axes: axes summed for
    dweight/dbias (everything that is not a parameter dim)."""
    g = dy if w_b is None else dy * w_b
    mg = g.mean(axis=axes, keepdims=True) if center else 0.0
    mgx = (g * xhat).mean(axis=axes, keepdims=True)
    dx = rstd * (g - mg - xhat * mgx)
    dw = (dy * xhat).sum(axis=param_axes)
    db = dy.sum(axis=param_axes)
    return dx, dw, db


def _norm_shape(normalized_shape):
    if np.ndim(normalized_shape) == 0:
        return (int(normalized_shape),)
    return tuple(int(d) for d in normalized_shape)


# ---------------------------------------------------------------- layer norm


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Returns (y, mean, rstd); mean/rstd have x's leading shape."""
    x = f64(x)
    D = len(_norm_shape(normalized_shape))
    axes = tuple(range(x.ndim - D, x.ndim))
    mean, rstd = _stats(x, axes, eps)
    y = (x - mean) * rstd
    if weight is not None:
        y = y * f64(weight)
    if bias is not None:
        y = y + f64(bias)
    lead = x.shape[: x.ndim - D]
    return y, mean.reshape(lead), rstd.reshape(lead)


def layer_norm_backward(dy, x, normalized_shape, weight=None, eps=1e-5):
    """(dx, dweight, dbias) with the statistics recomputed from x in float64."""
    x, dy = f64(x), f64(dy)
    D = len(_norm_shape(normalized_shape))
    axes = tuple(range(x.ndim - D, x.ndim))
    mean, rstd = _stats(x, axes, eps)
    xhat = (x - mean) * rstd
    dx, dw, db = _backward(dy, xhat, rstd, f64(weight), axes, tuple(range(x.ndim - D)))
    return dx, (None if weight is None else dw), db


# ---------------------------------------------------------------- group norm


def _group_view(x, G):
    N, C = x.shape[:2]
    S = int(np.prod(x.shape[2:], dtype=np.int64))
    return x.reshape(N, G, C // G, S)


def _per_channel(v, G):
    return None if v is None else f64(v).reshape(1, G, -1, 1)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Returns (y, mean, rstd); mean/rstd have shape (N, G)."""
    x = f64(x)
    G = num_groups
    xv = _group_view(x, G)
    mean, rstd = _stats(xv, (2, 3), eps)
    y = (xv - mean) * rstd
    if weight is not None:
        y = y * _per_channel(weight, G)
    if bias is not None:
        y = y + _per_channel(bias, G)
    N = x.shape[0]
    return y.reshape(x.shape), mean.reshape(N, G), rstd.reshape(N, G)


def group_norm_backward(dy, x, num_groups, weight=None, eps=1e-5):
    x, dy = f64(x), f64(dy)
    G = num_groups
    xv, dyv = _group_view(x, G), _group_view(dy, G)
    mean, rstd = _stats(xv, (2, 3), eps)
    xhat = (xv - mean) * rstd
    dx, dw, db = _backward(dyv, xhat, rstd, _per_channel(weight, G), (2, 3), (0, 3))
    C = x.shape[1]
    return dx.reshape(x.shape), (None if weight is None else dw.reshape(C)), db.reshape(C)


# ---------------------------------------------------------------- instance norm


def _chan(v, ndim):
    return None if v is None else f64(v).reshape((1, -1) + (1,) * (ndim - 2))


def instance_norm(x, weight=None, bias=None, eps=1e-5):
    """Returns (y, mean, rstd); mean/rstd have shape (N, C)."""
    x = f64(x)
    axes = tuple(range(2, x.ndim))
    mean, rstd = _stats(x, axes, eps)
    y = (x - mean) * rstd
    if weight is not None:
        y = y * _chan(weight, x.ndim)
    if bias is not None:
        y = y + _chan(bias, x.ndim)
    return y, mean.reshape(x.shape[:2]), rstd.reshape(x.shape[:2])


def instance_norm_backward(dy, x, weight=None, eps=1e-5):
    x, dy = f64(x), f64(dy)
    axes = tuple(range(2, x.ndim))
    mean, rstd = _stats(x, axes, eps)
    xhat = (x - mean) * rstd
    param_axes = (0,) + axes
    dx, dw, db = _backward(dy, xhat, rstd, _chan(weight, x.ndim), axes, param_axes)
    return dx, (None if weight is None else dw), db


def instance_running_update(running_mean, running_var, x, momentum, num_batches_tracked=None):
    """PyTorch's InstanceNorm running statistics: the per-(n, c) mean and
    unbiased variance, averaged over the batch, then the usual momentum step."""
    x = f64(x)
    axes = tuple(range(2, x.ndim))
    S = int(np.prod(x.shape[2:]))
    mean = x.mean(axis=axes)
    var_u = ((x - x.mean(axis=axes, keepdims=True)) ** 2).sum(axis=axes) / (S - 1)
    m = 1.0 / num_batches_tracked if momentum is None else momentum
    rm = (1 - m) * f64(running_mean) + m * mean.mean(axis=0)
    rv = (1 - m) * f64(running_var) + m * var_u.mean(axis=0)
    return rm, rv


# ---------------------------------------------------------------- RMS norm


def rms_norm(x, normalized_shape, weight=None, eps=None):
    """Returns (y, rstd); eps None means the machine epsilon of x's dtype."""
    if eps is None:
        eps = float(np.finfo(np.asarray(x).dtype).eps)
    x = f64(x)
    D = len(_norm_shape(normalized_shape))
    axes = tuple(range(x.ndim - D, x.ndim))
    _, rstd = _stats(x, axes, eps, center=False)
    y = x * rstd
    if weight is not None:
        y = y * f64(weight)
    return y, rstd.reshape(x.shape[: x.ndim - D])


def rms_norm_backward(dy, x, normalized_shape, weight=None, eps=None):
    """(dx, dweight); eps None means the machine epsilon of x's dtype."""
    if eps is None:
        eps = float(np.finfo(np.asarray(x).dtype).eps)
    x, dy = f64(x), f64(dy)
    D = len(_norm_shape(normalized_shape))
    axes = tuple(range(x.ndim - D, x.ndim))
    _, rstd = _stats(x, axes, eps, center=False)
    xhat = x * rstd
    dx, dw, _ = _backward(dy, xhat, rstd, f64(weight), axes, tuple(range(x.ndim - D)),
                          center=False)
    return dx, (None if weight is None else dw)


# ---------------------------------------------------------------- batch renorm


def _bc(v, ndim, axis):
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return f64(v).reshape(shape)


def _red(ndim, axis):
    return tuple(i for i in range(ndim) if i != axis % ndim)


def renorm_r_d(x, running_mean, running_var, rmax, dmax, eps=1e-5, axis=1):
    """(mean_B, var_B (biased), r, d) per channel, from the given running stats."""
    x = f64(x)
    red = _red(x.ndim, axis)
    mean = x.mean(axis=red)
    var = ((x - _bc(mean, x.ndim, axis)) ** 2).mean(axis=red)
    sigma_b = np.sqrt(var + eps)
    sigma = np.sqrt(f64(running_var) + eps)
    r = np.clip(sigma_b / sigma, 1.0 / rmax, rmax)
    d = np.clip((mean - f64(running_mean)) / sigma, -dmax, dmax)
    return mean, var, r, d


def renorm_forward_fixed(x, r, d, weight=None, bias=None, eps=1e-5, axis=1):
    """y = weight * ((x - mu_B)/sigma_B * r + d) + bias with r, d given constants
    (the function whose gradient batch renorm's backward is)."""
    x = f64(x)
    nd = x.ndim
    red = _red(nd, axis)
    mean = x.mean(axis=red)
    var = ((x - _bc(mean, nd, axis)) ** 2).mean(axis=red)
    xhat = (x - _bc(mean, nd, axis)) / _bc(np.sqrt(var + eps), nd, axis) * _bc(r, nd, axis) \
        + _bc(d, nd, axis)
    y = xhat
    if weight is not None:
        y = y * _bc(weight, nd, axis)
    if bias is not None:
        y = y + _bc(bias, nd, axis)
    return y


def renorm_forward(x, running_mean, running_var, weight=None, bias=None, rmax=3.0, dmax=5.0,
                   eps=1e-5, axis=1):
    """Training forward: (y, mean_B, var_B, r, d), all float64."""
    mean, var, r, d = renorm_r_d(x, running_mean, running_var, rmax, dmax, eps, axis)
    y = renorm_forward_fixed(x, r, d, weight, bias, eps, axis)
    return y, mean, var, r, d


def renorm_backward(dy, x, r, d, weight=None, eps=1e-5, axis=1):
    """(dx, dweight, dbias) with r and d constants."""
    x, dy = f64(x), f64(dy)
    nd = x.ndim
    red = _red(nd, axis)
    count = x.size // x.shape[axis % nd]
    mean = x.mean(axis=red)
    var = ((x - _bc(mean, nd, axis)) ** 2).mean(axis=red)
    invstd = 1.0 / np.sqrt(var + eps)
    xbn = (x - _bc(mean, nd, axis)) * _bc(invstd, nd, axis)
    w = np.ones_like(mean) if weight is None else f64(weight)
    sdy = dy.sum(axis=red)
    sdyx = (dy * xbn).sum(axis=red)
    dx = _bc(w * f64(r) * invstd, nd, axis) * (
        dy - _bc(sdy / count, nd, axis) - xbn * _bc(sdyx / count, nd, axis))
    xhat = xbn * _bc(r, nd, axis) + _bc(d, nd, axis)
    dw = (dy * xhat).sum(axis=red)
    return dx, dw, sdy

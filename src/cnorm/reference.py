"""Slow, obvious float64 NumPy reference for every normalization in cnorm.

This module is the oracle of the tests, of ``python -m cnorm check`` and of
the benchmark's correctness, and at the same time the documentation of the
math that cnorm implements (in the spirit of bottleneck's ``slow/``
package).  Everything here is written from the formulas, in float64, with
plain NumPy reductions; nothing here imports cnorm's kernels, so a bug in
them cannot hide in their own oracle.

Statistics are always two-pass: deviations from the mean, never
E[x^2] - E[x]^2.

Batch norm
----------
``x`` has any ndim >= 2, ``axis`` is the channel axis.  For each channel c
the statistics run over the ``M = x.size / C`` values that share that
channel index (all n and all spatial positions s).

Training forward::

    mean[c]   = sum(x[..c..]) / M
    var[c]    = sum((x[..c..] - mean[c])**2) / M          (biased)
    invstd[c] = 1 / sqrt(var[c] + eps)
    xhat      = (x - mean[c]) * invstd[c]
    y         = xhat * weight[c] + bias[c]

Inference forward uses running statistics instead of batch statistics::

    y = (x - running_mean[c]) / sqrt(running_var[c] + eps) * weight[c] + bias[c]

Backward, given dL/dy = dy and the saved (mean, invstd)::

    dbias[c]   = sum(dy[..c..])
    dweight[c] = sum(dy[..c..] * xhat[..c..])
    dx         = weight[c] * invstd[c] * (dy - dbias[c]/M - xhat * dweight[c]/M)

Running statistics (PyTorch convention), with the unbiased batch variance::

    running_mean = (1 - m) * running_mean + m * mean
    running_var  = (1 - m) * running_var  + m * var * M / (M - 1)

where ``m = momentum``, or ``m = 1 / num_batches_tracked`` (counted after
incrementing) when momentum is None: a cumulative moving average.

Batch renormalization (Ioffe 2017)
----------------------------------
Per channel c, with mu_B and var_B the batch mean and biased variance::

    sigma_B = sqrt(var_B + eps),  sigma = sqrt(running_var + eps)
    r = clip(sigma_B / sigma, 1/rmax, rmax)
    d = clip((mu_B - running_mean) / sigma, -dmax, dmax)
    xhat = (x - mu_B) / sigma_B * r + d
    y = weight * xhat + bias

r and d are constants for the gradient, so dx is batch norm's dx with
weight * r, dweight = sum(dy * xhat) and dbias = sum(dy).

Row family (layer, group, instance and RMS norm)
------------------------------------------------
Each computes statistics over a set of "reduce" axes of x and scales per
"parameter" element::

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
reduced set::

    dx      = rstd * (g - mean(g) - xhat * mean(g * xhat))   (RMS: no mean(g) term)
    dweight = sum of dy * xhat over everything but the parameter dims
    dbias   = sum of dy over everything but the parameter dims

Masked batch norm (mask: bool, broadcastable to x, size 1 on the channel
axis) takes mean and var over the masked-in positions only (count n per
channel) and normalizes every position; its backward is
``dx = weight * invstd * (dy - mask * (sum(dy) + xhat * sum(dy * xhat)) / n)``
with the sums over every position.

Fused activations: y = act(z) with z the normalization's output above;
relu(z) = max(z, 0), silu(z) = z / (1 + exp(-z)); the backward is the
plain backward of dy * act'(z).

Statistics and folding
----------------------
Moments per feature: count, mean and m2 = sum((x - mean)**2) of the values
sharing that feature index.  Standardization: z = (x - mean) / scale.
Folding an eval batch norm into the preceding layer (output channels on
``axis`` of its weight): s = bn_weight / sqrt(running_var + eps),
weight' = weight * s, bias' = (bias - running_mean) * s + bn_bias.

Every function takes arrays of any float dtype (or None for an absent
weight/bias) and returns float64 arrays.
"""
import numpy as np

__all__ = [
    "batch_stats", "bn_train", "bn_infer", "bn_backward", "running_update",
    "renorm_r_d", "renorm_forward_fixed", "renorm_forward", "renorm_backward",
    "layer_norm", "layer_norm_backward", "group_norm", "group_norm_backward",
    "instance_norm", "instance_norm_backward", "instance_running_update",
    "rms_norm", "rms_norm_backward",
    "masked_bn_train", "masked_bn_backward", "moments", "fold_batch_norm",
    "activation", "activation_slope",
]


# ---------------------------------------------------------------- helpers


def f64(a):
    """a as a float64 array; None stays None."""
    return None if a is None else np.asarray(a, dtype=np.float64)


def _reduce_axes(ndim, axis):
    """Every axis but the channel axis."""
    axis = axis % ndim
    return tuple(i for i in range(ndim) if i != axis)


def _bcast(v, ndim, axis):
    """Reshape a per-channel vector so it broadcasts against x."""
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return f64(v).reshape(shape)


def _moments(x, axes):
    """(mean, biased variance) over `axes`, keepdims, two-pass."""
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return mean, var


def _momentum_step(running, batch_value, momentum, num_batches_tracked):
    """(1 - m) * running + m * batch_value; m = 1/num_batches_tracked when
    momentum is None (a cumulative moving average)."""
    m = 1.0 / num_batches_tracked if momentum is None else momentum
    return (1.0 - m) * f64(running) + m * batch_value


def _affine(y, weight, bias, shape_of):
    """y * weight + bias, each parameter reshaped by shape_of (absent: skipped)."""
    if weight is not None:
        y = y * shape_of(weight)
    if bias is not None:
        y = y + shape_of(bias)
    return y


# ---------------------------------------------------------------- batch norm


def batch_stats(x, axis=1):
    """Per-channel mean, biased variance and count M, in float64."""
    x = f64(x)
    mean, var = _moments(x, _reduce_axes(x.ndim, axis))
    count = x.size // x.shape[axis % x.ndim]
    return mean.reshape(-1), var.reshape(-1), count


def bn_train(x, weight=None, bias=None, eps=1e-5, axis=1):
    """Training forward: returns (y, mean, invstd) in float64.

    y = (x - mean[c]) * invstd[c] * weight[c] + bias[c], invstd = 1/sqrt(var + eps).
    """
    x = f64(x)
    mean, var, _ = batch_stats(x, axis)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - _bcast(mean, x.ndim, axis)) * _bcast(invstd, x.ndim, axis)
    return _affine(xhat, weight, bias, lambda p: _bcast(p, x.ndim, axis)), mean, invstd


def bn_infer(x, running_mean, running_var, weight=None, bias=None, eps=1e-5, axis=1):
    """Inference forward with given running statistics, in float64.

    y = (x - running_mean[c]) / sqrt(running_var[c] + eps) * weight[c] + bias[c].
    """
    x = f64(x)
    rm = _bcast(running_mean, x.ndim, axis)
    rv = _bcast(running_var, x.ndim, axis)
    y = (x - rm) / np.sqrt(rv + eps)
    return _affine(y, weight, bias, lambda p: _bcast(p, x.ndim, axis))


def bn_backward(dy, x, mean, invstd, weight=None, axis=1):
    """Backward of the training forward: returns (dx, dweight, dbias).

    dx = weight * invstd * (dy - dbias/M - xhat * dweight/M), with
    dbias = sum(dy) and dweight = sum(dy * xhat) per channel.
    dweight is None when weight is None; dbias is always computed.
    """
    dy, x = f64(dy), f64(x)
    nd = x.ndim
    red = _reduce_axes(nd, axis)
    count = x.size // x.shape[axis % nd]
    xhat = (x - _bcast(mean, nd, axis)) * _bcast(invstd, nd, axis)
    dbias = dy.sum(axis=red)
    dweight = (dy * xhat).sum(axis=red)
    w = np.ones_like(dbias) if weight is None else f64(weight)
    dx = _bcast(w * f64(invstd), nd, axis) * (
        dy - _bcast(dbias / count, nd, axis) - xhat * _bcast(dweight / count, nd, axis)
    )
    return dx, (None if weight is None else dweight), dbias


def masked_bn_train(x, mask, weight=None, bias=None, eps=1e-5, axis=1):
    """Training forward with statistics over the masked-in positions:
    (y, mean, invstd, count)."""
    x = f64(x)
    red = _reduce_axes(x.ndim, axis)
    m = np.broadcast_to(mask, x.shape)
    count = m.sum(axis=red, keepdims=True)
    mean = np.where(m, x, 0.0).sum(axis=red, keepdims=True) / count
    var = np.where(m, (x - mean) ** 2, 0.0).sum(axis=red, keepdims=True) / count
    invstd = 1.0 / np.sqrt(var + eps)
    y = _affine((x - mean) * invstd, weight, bias, lambda p: _bcast(p, x.ndim, axis))
    return y, mean.reshape(-1), invstd.reshape(-1), count.reshape(-1)


def masked_bn_backward(dy, x, mask, weight=None, eps=1e-5, axis=1):
    """Backward of masked_bn_train: (dx, dweight, dbias)."""
    dy, x = f64(dy), f64(x)
    nd = x.ndim
    red = _reduce_axes(nd, axis)
    _, mean, invstd, count = masked_bn_train(x, mask, eps=eps, axis=axis)
    xhat = (x - _bcast(mean, nd, axis)) * _bcast(invstd, nd, axis)
    dbias = dy.sum(axis=red)
    dweight = (dy * xhat).sum(axis=red)
    w = np.ones_like(dbias) if weight is None else f64(weight)
    m = np.broadcast_to(mask, x.shape)
    dx = _bcast(w * invstd, nd, axis) * (
        dy - m * (_bcast(dbias, nd, axis) + xhat * _bcast(dweight, nd, axis))
        / _bcast(count, nd, axis))
    return dx, (None if weight is None else dweight), dbias


def moments(x, axis=-1):
    """(count, mean, m2) per feature on `axis` over every other axis."""
    x = f64(x)
    red = _reduce_axes(x.ndim, axis)
    mean = x.mean(axis=red, keepdims=True)
    m2 = ((x - mean) ** 2).sum(axis=red)
    return x.size // x.shape[axis], mean.reshape(-1), m2


def fold_batch_norm(weight, bias, running_mean, running_var, bn_weight=None, bn_bias=None,
                    eps=1e-5, axis=0):
    """(weight', bias') of the preceding layer with an eval batch norm folded in."""
    weight = f64(weight)
    s = 1.0 / np.sqrt(f64(running_var) + eps)
    if bn_weight is not None:
        s = s * f64(bn_weight)
    b = -f64(running_mean) * s if bias is None else (f64(bias) - f64(running_mean)) * s
    if bn_bias is not None:
        b = b + f64(bn_bias)
    return weight * _bcast(s, weight.ndim, axis), b


def activation(z, name):
    """relu(z) = max(z, 0); silu(z) = z * sigmoid(z) = z / (1 + exp(-z))."""
    z = f64(z)
    return np.maximum(z, 0.0) if name == "relu" else z / (1.0 + np.exp(-z))


def activation_slope(z, name):
    """d act / dz: relu 1 where z > 0 (0 at 0); silu s * (1 + z * (1 - s)), s = sigmoid(z).
    A fused norm's backward is the plain backward of dy * slope(z), z the pre-activation."""
    z = f64(z)
    if name == "relu":
        return (z > 0).astype(np.float64)
    s = 1.0 / (1.0 + np.exp(-z))
    return s * (1.0 + z * (1.0 - s))


def running_update(running_mean, running_var, x, momentum, num_batches_tracked, axis=1):
    """One training step of the running statistics.

    running_mean <- (1 - m) running_mean + m mean;
    running_var <- (1 - m) running_var + m var M / (M - 1).
    ``num_batches_tracked`` is the value *after* this step's increment.
    Returns the new (running_mean, running_var) in float64.
    """
    mean, var, count = batch_stats(x, axis)
    unbiased = var * count / (count - 1)
    return (_momentum_step(running_mean, mean, momentum, num_batches_tracked),
            _momentum_step(running_var, unbiased, momentum, num_batches_tracked))


# ---------------------------------------------------------------- batch renorm


def renorm_r_d(x, running_mean, running_var, rmax, dmax, eps=1e-5, axis=1):
    """(mean_B, var_B (biased), r, d) per channel, from the given running stats.

    r = clip(sigma_B / sigma, 1/rmax, rmax), d = clip((mean_B - running_mean) / sigma,
    -dmax, dmax), with sigma_B = sqrt(var_B + eps), sigma = sqrt(running_var + eps).
    """
    mean, var, _ = batch_stats(x, axis)
    sigma_b = np.sqrt(var + eps)
    sigma = np.sqrt(f64(running_var) + eps)
    r = np.clip(sigma_b / sigma, 1.0 / rmax, rmax)
    d = np.clip((mean - f64(running_mean)) / sigma, -dmax, dmax)
    return mean, var, r, d


def _renorm_xhat(x, r, d, eps, axis):
    """(x - mu_B) / sigma_B * r + d, and the batch-norm invstd and xhat on the way."""
    nd = x.ndim
    mean, var, _ = batch_stats(x, axis)
    invstd = 1.0 / np.sqrt(var + eps)
    xbn = (x - _bcast(mean, nd, axis)) * _bcast(invstd, nd, axis)
    return xbn * _bcast(r, nd, axis) + _bcast(d, nd, axis), mean, invstd


def renorm_forward_fixed(x, r, d, weight=None, bias=None, eps=1e-5, axis=1):
    """y = weight * ((x - mu_B)/sigma_B * r + d) + bias with r, d given constants
    (the function whose gradient batch renorm's backward is)."""
    x = f64(x)
    xhat = _renorm_xhat(x, r, d, eps, axis)[0]
    return _affine(xhat, weight, bias, lambda p: _bcast(p, x.ndim, axis))


def renorm_forward(x, running_mean, running_var, weight=None, bias=None, rmax=3.0, dmax=5.0,
                   eps=1e-5, axis=1):
    """Training forward: (y, mean_B, var_B, r, d), all float64."""
    mean, var, r, d = renorm_r_d(x, running_mean, running_var, rmax, dmax, eps, axis)
    y = renorm_forward_fixed(x, r, d, weight, bias, eps, axis)
    return y, mean, var, r, d


def renorm_backward(dy, x, r, d, weight=None, eps=1e-5, axis=1):
    """(dx, dweight, dbias) with r and d constants: dx is batch norm's dx with
    weight * r; dweight = sum(dy * xhat), dbias = sum(dy)."""
    x, dy = f64(x), f64(dy)
    xhat, mean, invstd = _renorm_xhat(x, r, d, eps, axis)
    w = np.ones_like(mean) if weight is None else f64(weight)
    dx, _, dbias = bn_backward(dy, x, mean, invstd, w * f64(r), axis)
    dweight = (dy * xhat).sum(axis=_reduce_axes(x.ndim, axis))
    return dx, dweight, dbias


# ---------------------------------------------------------------- row family helpers


def _stats(x, axes, eps, center=True):
    """(mean, rstd) with keepdims over `axes`; mean is 0 for RMS norm."""
    if center:
        mean, var = _moments(x, axes)
    else:
        mean = np.zeros([1 if i in axes else s for i, s in enumerate(x.shape)])
        var = (x * x).mean(axis=axes, keepdims=True)
    return mean, 1.0 / np.sqrt(var + eps)


def _backward(dy, xhat, rstd, w_b, axes, param_axes, center=True):
    """dx, dweight_sum, dbias_sum for xhat normalized over `axes`.

    dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * weight.
    w_b: weight broadcast against x (or None); param_axes: axes summed for
    dweight/dbias (everything that is not a parameter dim)."""
    g = dy if w_b is None else dy * w_b
    mg = g.mean(axis=axes, keepdims=True) if center else 0.0
    mgx = (g * xhat).mean(axis=axes, keepdims=True)
    dx = rstd * (g - mg - xhat * mgx)
    dw = (dy * xhat).sum(axis=param_axes)
    db = dy.sum(axis=param_axes)
    return dx, dw, db


def _trailing_axes(x, normalized_shape):
    """(leading dims, trailing axes) of x: the trailing axes are those that
    normalized_shape (an int or a shape) covers."""
    D = 1 if np.ndim(normalized_shape) == 0 else len(normalized_shape)
    return x.ndim - D, tuple(range(x.ndim - D, x.ndim))


def _machine_eps(x, eps):
    """eps, or the machine epsilon of x's dtype when eps is None (RMS norm)."""
    return float(np.finfo(np.asarray(x).dtype).eps) if eps is None else eps


# ---------------------------------------------------------------- layer norm


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Returns (y, mean, rstd); mean/rstd have x's leading shape.

    Statistics over the trailing len(normalized_shape) dims;
    y = (x - mean) * rstd * weight + bias.
    """
    x = f64(x)
    lead, axes = _trailing_axes(x, normalized_shape)
    mean, rstd = _stats(x, axes, eps)
    y = _affine((x - mean) * rstd, weight, bias, f64)
    return y, mean.reshape(x.shape[:lead]), rstd.reshape(x.shape[:lead])


def layer_norm_backward(dy, x, normalized_shape, weight=None, eps=1e-5):
    """(dx, dweight, dbias) with the statistics recomputed from x in float64."""
    x, dy = f64(x), f64(dy)
    lead, axes = _trailing_axes(x, normalized_shape)
    mean, rstd = _stats(x, axes, eps)
    xhat = (x - mean) * rstd
    dx, dw, db = _backward(dy, xhat, rstd, f64(weight), axes, tuple(range(lead)))
    return dx, (None if weight is None else dw), db


# ---------------------------------------------------------------- group norm


def _group_view(x, G):
    """x (N, C, *) as (N, G, C/G, S)."""
    N, C = x.shape[:2]
    S = int(np.prod(x.shape[2:], dtype=np.int64))
    return x.reshape(N, G, C // G, S)


def _per_channel(v, G):
    return None if v is None else f64(v).reshape(1, G, -1, 1)


def group_norm(x, num_groups, weight=None, bias=None, eps=1e-5):
    """Returns (y, mean, rstd); mean/rstd have shape (N, G).

    Statistics over each (C/G, S) block of x viewed as (N, G, C/G, S);
    y = (x - mean) * rstd * weight[c] + bias[c].
    """
    x = f64(x)
    G = num_groups
    xv = _group_view(x, G)
    mean, rstd = _stats(xv, (2, 3), eps)
    y = _affine((xv - mean) * rstd, weight, bias, lambda p: _per_channel(p, G))
    N = x.shape[0]
    return y.reshape(x.shape), mean.reshape(N, G), rstd.reshape(N, G)


def group_norm_backward(dy, x, num_groups, weight=None, eps=1e-5):
    """(dx, dweight, dbias) with the statistics recomputed from x in float64."""
    x, dy = f64(x), f64(dy)
    G = num_groups
    xv, dyv = _group_view(x, G), _group_view(dy, G)
    mean, rstd = _stats(xv, (2, 3), eps)
    xhat = (xv - mean) * rstd
    dx, dw, db = _backward(dyv, xhat, rstd, _per_channel(weight, G), (2, 3), (0, 3))
    C = x.shape[1]
    return dx.reshape(x.shape), (None if weight is None else dw.reshape(C)), db.reshape(C)


# ---------------------------------------------------------------- instance norm


def instance_norm(x, weight=None, bias=None, eps=1e-5):
    """Returns (y, mean, rstd); mean/rstd have shape (N, C).

    Statistics over the spatial dims of each (n, c);
    y = (x - mean) * rstd * weight[c] + bias[c].
    """
    x = f64(x)
    axes = tuple(range(2, x.ndim))
    mean, rstd = _stats(x, axes, eps)
    y = _affine((x - mean) * rstd, weight, bias, lambda p: _bcast(p, x.ndim, 1))
    return y, mean.reshape(x.shape[:2]), rstd.reshape(x.shape[:2])


def instance_norm_backward(dy, x, weight=None, eps=1e-5):
    """(dx, dweight, dbias) with the statistics recomputed from x in float64."""
    x, dy = f64(x), f64(dy)
    axes = tuple(range(2, x.ndim))
    mean, rstd = _stats(x, axes, eps)
    xhat = (x - mean) * rstd
    w_b = None if weight is None else _bcast(weight, x.ndim, 1)
    dx, dw, db = _backward(dy, xhat, rstd, w_b, axes, (0,) + axes)
    return dx, (None if weight is None else dw), db


def instance_running_update(running_mean, running_var, x, momentum, num_batches_tracked=None):
    """PyTorch's InstanceNorm running statistics: the per-(n, c) mean and
    unbiased variance (sum of squared deviations / (S - 1)), averaged over
    the batch, then the usual momentum step."""
    x = f64(x)
    axes = tuple(range(2, x.ndim))
    S = int(np.prod(x.shape[2:]))
    mean, var = _moments(x, axes)
    var_u = var * S / (S - 1)
    return (_momentum_step(running_mean, mean.mean(axis=0).reshape(-1), momentum,
                           num_batches_tracked),
            _momentum_step(running_var, var_u.mean(axis=0).reshape(-1), momentum,
                           num_batches_tracked))


# ---------------------------------------------------------------- RMS norm


def rms_norm(x, normalized_shape, weight=None, eps=None):
    """Returns (y, rstd); eps None means the machine epsilon of x's dtype.

    rstd = 1 / sqrt(mean(x**2) + eps) over the trailing dims; y = x * rstd * weight.
    """
    eps = _machine_eps(x, eps)
    x = f64(x)
    lead, axes = _trailing_axes(x, normalized_shape)
    _, rstd = _stats(x, axes, eps, center=False)
    y = _affine(x * rstd, weight, None, f64)
    return y, rstd.reshape(x.shape[: lead])


def rms_norm_backward(dy, x, normalized_shape, weight=None, eps=None):
    """(dx, dweight); eps None means the machine epsilon of x's dtype."""
    eps = _machine_eps(x, eps)
    x, dy = f64(x), f64(dy)
    lead, axes = _trailing_axes(x, normalized_shape)
    _, rstd = _stats(x, axes, eps, center=False)
    xhat = x * rstd
    dx, dw, _ = _backward(dy, xhat, rstd, f64(weight), axes, tuple(range(lead)),
                          center=False)
    return dx, (None if weight is None else dw)

"""Slow, obvious float64 NumPy reference for batch normalization.

This module is the test oracle and, at the same time, the documentation of
the math that cnorm implements (in the spirit of bottleneck's ``slow/``
package).  Everything here is written from the formulas, in float64, with
plain NumPy reductions; nothing imports cnorm.

Notation: ``x`` has any ndim >= 2, ``axis`` is the channel axis.  For each
channel c, the statistics run over the ``M = x.size / C`` values that share
that channel index (all n and all spatial positions s).

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
"""
import numpy as np


def _reduce_axes(ndim, axis):
    axis = axis % ndim
    return tuple(i for i in range(ndim) if i != axis)


def _bcast(v, ndim, axis):
    """Reshape a per-channel vector so it broadcasts against x."""
    axis = axis % ndim
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(v, dtype=np.float64).reshape(shape)


def batch_stats(x, axis=1):
    """Per-channel mean, biased variance and count M, in float64."""
    x = np.asarray(x, dtype=np.float64)
    red = _reduce_axes(x.ndim, axis)
    count = x.size // x.shape[axis % x.ndim]
    mean = x.mean(axis=red)
    # two-pass: deviations from the mean, never E[x^2] - E[x]^2
    var = ((x - _bcast(mean, x.ndim, axis)) ** 2).mean(axis=red)
    return mean, var, count


def bn_train(x, weight=None, bias=None, eps=1e-5, axis=1):
    """Training forward: returns (y, mean, invstd) in float64."""
    x = np.asarray(x, dtype=np.float64)
    mean, var, _ = batch_stats(x, axis)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - _bcast(mean, x.ndim, axis)) * _bcast(invstd, x.ndim, axis)
    y = xhat
    if weight is not None:
        y = y * _bcast(weight, x.ndim, axis)
    if bias is not None:
        y = y + _bcast(bias, x.ndim, axis)
    return y, mean, invstd


def bn_infer(x, running_mean, running_var, weight=None, bias=None, eps=1e-5, axis=1):
    """Inference forward with given running statistics, in float64."""
    x = np.asarray(x, dtype=np.float64)
    rm = _bcast(running_mean, x.ndim, axis)
    rv = _bcast(running_var, x.ndim, axis)
    y = (x - rm) / np.sqrt(rv + eps)
    if weight is not None:
        y = y * _bcast(weight, x.ndim, axis)
    if bias is not None:
        y = y + _bcast(bias, x.ndim, axis)
    return y


def bn_backward(dy, x, mean, invstd, weight=None, axis=1):
    """Backward of the training forward: returns (dx, dweight, dbias).

    dweight is None when weight is None; dbias is always computed.
    """
    dy = np.asarray(dy, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    nd = x.ndim
    red = _reduce_axes(nd, axis)
    count = x.size // x.shape[axis % nd]
    xhat = (x - _bcast(mean, nd, axis)) * _bcast(invstd, nd, axis)
    dbias = dy.sum(axis=red)
    dweight = (dy * xhat).sum(axis=red)
    w = np.ones_like(dbias) if weight is None else np.asarray(weight, dtype=np.float64)
    dx = _bcast(w * np.asarray(invstd, dtype=np.float64), nd, axis) * (
        dy - _bcast(dbias / count, nd, axis) - xhat * _bcast(dweight / count, nd, axis)
    )
    return dx, (None if weight is None else dweight), dbias


def running_update(running_mean, running_var, x, momentum, num_batches_tracked, axis=1):
    """One training step of the running statistics.

    ``num_batches_tracked`` is the value *after* this step's increment.
    Returns the new (running_mean, running_var) in float64.
    """
    mean, var, count = batch_stats(x, axis)
    unbiased = var * count / (count - 1)
    m = 1.0 / num_batches_tracked if momentum is None else momentum
    rm = (1.0 - m) * np.asarray(running_mean, np.float64) + m * mean
    rv = (1.0 - m) * np.asarray(running_var, np.float64) + m * unbiased
    return rm, rv


def numerical_grad(f, x, h=1e-6):
    """Central finite-difference gradient of the scalar function f at x.

    f receives a float64 copy of x with one element moved by +-h at a time.
    """
    x = np.array(x, dtype=np.float64, order="C")  # private copy, perturbed below
    g = np.zeros_like(x)
    flat = x.reshape(-1)  # a view of the copy
    gflat = g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f(x)
        flat[i] = old - h
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g

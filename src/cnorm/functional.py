"""Stateless normalization functions on NumPy arrays.

Each function validates its arguments (see _validate.py), views x without
copying as the channel view (N, C, S) or the row view (M, K) of docs/design.md,
and hands C-contiguous buffers to one of the kernel families.
"""
from __future__ import annotations

import math
import operator
from typing import Any, Literal, SupportsIndex, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cnorm import _kernels
from cnorm._typing import Activation, Array, FloatArray, ShapeLike
from cnorm._validate import (
    as_contiguous,
    as_float_array,
    check_eps,
    check_ndim,
    check_out,
    check_positive_int,
    finish_output,
    kernel_output,
    normalize_axis,
    param,
    same_shape,
)
from cnorm.activation import activation_code, activation_grad
from cnorm.lowp import downcast, is_low_precision, native_low, run_in_float32, upcast, widen_param
from cnorm.statistics import Moments

__all__ = [
    "add_layer_norm",
    "add_rms_norm",
    "batch_norm_backward",
    "batch_norm_infer",
    "batch_norm_train",
    "group_norm",
    "group_norm_backward",
    "instance_norm",
    "instance_norm_backward",
    "layer_norm",
    "layer_norm_backward",
    "rms_norm",
    "rms_norm_backward",
]

_F64 = NDArray[np.float64]   # float64 statistics and sums


# ---- channel family: batch norm -------------------------------------------


def _data_input(x: ArrayLike) -> tuple[Array, np.dtype[Any]]:
    """(x for the kernels, the dtype of its arithmetic and statistics):
    float32/float64 as as_float_array gives it, or a float16/bfloat16 array
    in native byte order with float32 arithmetic."""
    if is_low_precision(x):
        return native_low(x), np.dtype(np.float32)
    x = as_float_array(x, "x")
    return x, x.dtype


def _param_for(p: ArrayLike | None, name: str, shape: tuple[int, ...], x: Array,
               dtype: np.dtype[Any], optional: bool = True) -> Any:
    """param() in the arithmetic dtype; for float16/bfloat16 x the array may
    also have x's dtype."""
    if dtype != x.dtype:
        p = widen_param(p, name, x.dtype)
    return param(p, name, shape, dtype, optional=optional)


def channel_view(x: Array, axis: SupportsIndex) -> tuple[int, int, int]:
    """(N, C, S) of x for channel axis `axis` (x C-contiguous)."""
    check_ndim(x, 2)
    a = normalize_axis(axis, x.ndim)
    return math.prod(x.shape[:a]), x.shape[a], math.prod(x.shape[a + 1 :])


def batch_statistics(x: ArrayLike, weight: ArrayLike | None, bias: ArrayLike | None, eps: float,
                     axis: SupportsIndex, out: Array | None, act: int = 0
                     ) -> tuple[Array, NDArray[np.float64], NDArray[np.float64]]:
    """Training forward: (y, mean, var) with float64 batch mean and biased
    var; act: an activation code (cnorm.activation)."""
    y, mean, var, _ = _train_forward(x, weight, bias, eps, axis, out, None, act)
    return y, mean, var


def batch_renorm_statistics(x: ArrayLike, weight: ArrayLike | None, bias: ArrayLike | None,
                            eps: float, axis: SupportsIndex, out: Array | None,
                            running_mean: NDArray[np.float64], running_var: NDArray[np.float64],
                            rmax: float, dmax: float, act: int = 0) -> tuple[
                                Array, NDArray[np.float64], NDArray[np.float64],
                                NDArray[np.float64], NDArray[np.float64]]:
    """Batch-renorm training forward: (y, mean, var, r, d), all but y float64,
    r and d clipped from the float64 running statistics before this step."""
    y, mean, var, (r, d) = _train_forward(x, weight, bias, eps, axis, out,
                                          (running_mean, running_var, rmax, dmax), act)
    return y, mean, var, r, d


def saved_statistics(mean: NDArray[np.float64], var: NDArray[np.float64], eps: float,
                     dtype: np.dtype[Any]) -> tuple[FloatArray, FloatArray]:
    """(mean, invstd) in dtype as batch_norm_train returns them and
    batch_norm_backward takes them: invstd = 1 / sqrt(var + eps) in float64,
    then rounded (the lean path in _kernels.pyx computes the same bits)."""
    return mean.astype(dtype), (1.0 / np.sqrt(var + eps)).astype(dtype)


@overload
def _train_forward(x: ArrayLike, weight: ArrayLike | None, bias: ArrayLike | None, eps: float,
                   axis: SupportsIndex, out: Array | None, renorm: None,
                   act: int) -> tuple[Array, _F64, _F64, None]: ...
@overload
def _train_forward(x: ArrayLike, weight: ArrayLike | None, bias: ArrayLike | None, eps: float,
                   axis: SupportsIndex, out: Array | None,
                   renorm: tuple[_F64, _F64, float, float],
                   act: int) -> tuple[Array, _F64, _F64, tuple[_F64, _F64]]: ...
def _train_forward(x: ArrayLike, weight: ArrayLike | None, bias: ArrayLike | None, eps: float,
                   axis: SupportsIndex, out: Array | None,
                   renorm: tuple[_F64, _F64, float, float] | None,
                   act: int) -> tuple[Array, _F64, _F64, tuple[_F64, _F64] | None]:
    """The checks and kernel call of both training forwards: (y, mean, var,
    (r, d) or None); renorm is None or (running_mean, running_var, rmax, dmax)."""
    x, dtype = _data_input(x)
    N, C, S = channel_view(x, axis)
    # One value per channel has no variance (PyTorch refuses it too); an empty
    # batch gives an empty y, mean 0 and var 0, as PyTorch (not for renorm,
    # whose r and d need the batch's statistics).
    if N * S == 1 or (N * S == 0 and renorm is not None):
        raise ValueError(
            f"training needs more than one value per channel, got input of shape {x.shape} "
            f"with channel axis {axis}"
        )
    weight = _param_for(weight, "weight", (C,), x, dtype)
    bias = _param_for(bias, "bias", (C,), x, dtype)
    eps = check_eps(eps)
    if eps == 0.0:  # as PyTorch: a constant channel would give 0 * inf
        raise ValueError("eps must be > 0 for batch-norm training, got 0")
    check_out(out, x)
    xc = as_contiguous(x)
    y = kernel_output(out, xc, params=(weight, bias))
    mean = np.empty(C, np.float64)
    var = np.empty(C, np.float64)
    if renorm is None:
        _bn_train_kernel(xc, N, C, S, weight, bias, eps, y, mean, var, None, act)
        return finish_output(y, out), mean, var, None
    r = np.empty(C, np.float64)
    d = np.empty(C, np.float64)
    _bn_train_kernel(xc, N, C, S, weight, bias, eps, y, mean, var, (*renorm, r, d), act)
    return finish_output(y, out), mean, var, (r, d)


def _bn_train_kernel(xc: Array, N: int, C: int, S: int, weight: Any, bias: Any, eps: float,
                     y: Array, mean: _F64, var: _F64, renorm: Any, act: int) -> None:
    """bn_forward_train, or for float16/bfloat16 xc its 2-byte entry (float32
    parameters, chunks converted in cache)."""
    if is_low_precision(xc):
        _kernels.bn_forward_train_low(xc.view(np.uint16), N, C, S, weight, bias, eps,
                                      y.view(np.uint16), mean, var, renorm,
                                      xc.dtype.kind != "f", act)
    else:
        _kernels.bn_forward_train(xc, N, C, S, weight, bias, eps, y, mean, var, renorm, act)


def batch_norm_train(x: ArrayLike, weight: ArrayLike | None = None, bias: ArrayLike | None = None,
                     *, eps: float = 1e-5, axis: SupportsIndex = 1, out: Array | None = None,
                     mask: ArrayLike | None = None, activation: Activation = None
                     ) -> tuple[Array, FloatArray, FloatArray]:
    """Batch-norm training forward: normalize x with its own per-channel statistics.

    Each channel (the elements of x with one index on `axis`) is normalized with the mean and
    the biased variance of its values over every other axis, then scaled by `weight`, shifted by
    `bias` and passed through `activation`, all in one pass over the output.  The statistics are
    returned for batch_norm_backward; no running statistics are kept (BatchNorm keeps them).

    Parameters
    ----------
    x : array_like
        Input of at least 2 dimensions, dtype float32, float64, float16 or bfloat16 (big-endian
        data is converted).  Any layout: NCHW with ``axis=1``, channels-last with ``axis=-1``.
    weight : array_like, optional
        Per-channel scale of shape (C,), C = ``x.shape[axis]``; None: 1.  float32 or float64 (or
        x's own float16/bfloat16 dtype), converted to the dtype of x's arithmetic.
    bias : array_like, optional
        Per-channel shift of shape (C,); None: 0.  Dtypes as `weight`.
    eps : float, default 1e-5
        Added to the variance; must be finite and > 0 (as PyTorch, training refuses 0).
    axis : int, default 1
        The channel axis, in ``[-x.ndim, x.ndim)``.
    out : ndarray, optional
        Array to receive y: x's shape and dtype, writable; it may be x itself (in place) or
        any other layout (written through a buffer when not C-contiguous).
    mask : array_like of bool, optional
        Positions that enter the statistics: a bool array broadcastable to x with size 1 on
        the channel axis (a position is in or out for every channel), e.g. the valid steps of
        padded sequences.  Every position is normalized with the masked statistics.  Pass the
        same mask to batch_norm_backward.
    activation : {None, 'relu', 'silu'}, default None
        Applied to the affine output in the same pass.

    Returns
    -------
    y : ndarray
        x's shape and dtype (`out` when given).
    mean : ndarray
        Shape (C,): the batch mean of each channel, blocks of x's dtype merged in float64,
        rounded to x's dtype (float32 for float16/bfloat16 x).
    invstd : ndarray
        Shape (C,), mean's dtype: ``1 / sqrt(var + eps)`` with the biased batch variance (its
        blocks' sums as the mean's), computed in float64 and rounded.

    Raises
    ------
    TypeError
        x of another dtype (integer, bool, complex, int16/uint16, ...); weight or bias of a
        dtype other than float32, float64 (or x's float16/bfloat16 dtype); eps not a real
        number (a str or a bool); axis not an integer; out not a numpy.ndarray.
    ValueError
        x with fewer than 2 dimensions; axis out of range; weight or bias not of shape (C,);
        eps negative, NaN, infinite or 0; one value per channel (an empty batch gives an
        empty y, mean 0 and var 0, as PyTorch), or a mask selecting fewer than 2
        positions; a mask not of dtype bool, or not broadcastable to x with size 1
        on the channel axis; out of another shape or dtype than x, or read-only; an activation
        other than None, 'relu' and 'silu'.

    See Also
    --------
    batch_norm_backward : The gradients of this function.
    batch_norm_infer : Batch norm with given (running) statistics.
    BatchNorm : The layer, with running statistics.

    Notes
    -----
    With n the number of values per channel (or of masked-in positions)::

        mean = sum(x) / n
        var = sum((x - mean)**2) / n                    (biased)
        invstd = 1 / sqrt(var + eps)
        y = act((x - mean) * invstd * weight + bias)

    The moments are computed in one pass with blocked Chan merges in float64 (never as
    ``E[x**2] - E[x]**2``), so large means keep their precision, and the result is the same
    for any thread count.  y, mean and invstd equal those of PyTorch's
    ``torch.native_batch_norm(x, weight, bias, None, None, True, momentum, eps)`` (y is
    ``torch.nn.functional.batch_norm(..., training=True)``).  float16 and bfloat16 x are
    computed in float32 and y is rounded back to x's dtype (see cnorm.lowp).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((8, 3, 4, 4), dtype=np.float32)
    >>> y, mean, invstd = cnorm.batch_norm_train(x)
    >>> y.shape, mean.shape, invstd.dtype
    ((8, 3, 4, 4), (3,), dtype('float32'))
    >>> m, v = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    >>> np.allclose(y, (x - m[:, None, None]) / np.sqrt(v[:, None, None] + 1e-5), atol=1e-5)
    True
    >>> np.allclose(invstd, 1 / np.sqrt(v + 1e-5))
    True

    The channel axis last (axis=-1), float16 input: y in float16, statistics in float32.

    >>> y16, mean16, invstd16 = cnorm.batch_norm_train(x.astype(np.float16), axis=-1)
    >>> y16.dtype, mean16.dtype, mean16.shape
    (dtype('float16'), dtype('float32'), (4,))

    Statistics over the valid steps of padded sequences (lengths 5 and 3) only:

    >>> s = rng.standard_normal((2, 3, 5))
    >>> mask = (np.arange(5) < np.array([[5], [3]]))[:, None, :]     # (2, 1, 5)
    >>> y, mean, invstd = cnorm.batch_norm_train(s, mask=mask)
    >>> np.allclose(mean, s.transpose(1, 0, 2)[:, mask[:, 0]].mean(axis=1))
    True
    """
    act = 0 if activation is None else activation_code(activation)   # None: no call
    if mask is None:
        result = _kernels.bn_train_fast(x, weight, bias, eps, axis, out, act)
        if result is not None:
            return result
    low = is_low_precision(x)
    if low and mask is not None:
        return run_in_float32(batch_norm_train, locals(), ("x",))
    if mask is None:
        y, mean, var = batch_statistics(x, weight, bias, eps, axis, out, act)
    else:
        y, mean, var, _ = masked_batch_statistics(x, weight, bias, eps, axis, out, mask, act)
    return (y, *saved_statistics(mean, var, float(eps), np.dtype(np.float32) if low else y.dtype))


def channel_mask(mask: ArrayLike, x: Array, axis: SupportsIndex) -> tuple[NDArray[np.bool_], int]:
    """mask as a bool array broadcast to x's shape with size 1 on the channel
    axis, and the number of positions it selects per channel."""
    m = np.asarray(mask)
    a = normalize_axis(axis, x.ndim)
    if m.dtype != np.bool_:
        raise ValueError(f"mask must have dtype bool, got {m.dtype}")
    target = x.shape[:a] + (1,) + x.shape[a + 1:]
    if m.ndim > x.ndim or m.ndim > x.ndim - a and m.shape[a - x.ndim] != 1:
        raise ValueError(f"mask must broadcast to x's shape {x.shape} with size 1 on the "
                         f"channel axis {axis}, got shape {m.shape}")
    try:
        m = np.broadcast_to(m, target)
    except ValueError:
        raise ValueError(f"mask must broadcast to x's shape {x.shape} with size 1 on the "
                         f"channel axis {axis}, got shape {m.shape}") from None
    return m, int(np.count_nonzero(m))


def masked_batch_statistics(x: ArrayLike, weight: ArrayLike | None, bias: ArrayLike | None,
                            eps: float, axis: SupportsIndex, out: Array | None, mask: ArrayLike,
                            act: int = 0
                            ) -> tuple[Array, NDArray[np.float64], NDArray[np.float64], int]:
    """Training forward with statistics over the masked-in positions only:
    (y, mean, var, count), mean and biased var float64."""
    x = as_float_array(x, "x")
    N, C, S = channel_view(x, axis)
    weight = param(weight, "weight", (C,), x.dtype)
    bias = param(bias, "bias", (C,), x.dtype)
    eps = check_eps(eps)
    if eps == 0.0:
        raise ValueError("eps must be > 0 for batch-norm training, got 0")
    check_out(out, x)
    m, count = channel_mask(mask, x, axis)
    if count < 2:
        raise ValueError(f"training needs more than one value per channel, the mask selects "
                         f"{count}")
    moments = Moments.of(x, axis, mask=m)
    var = moments.m2 / count
    mean, invstd = saved_statistics(moments.mean, var, eps, x.dtype)
    xc = as_contiguous(x)
    y = kernel_output(out, xc)
    scale = invstd.astype(np.float64) * (1.0 if weight is None else weight)
    # centred on the float64 mean: the saved mean's rounding goes into the shift
    shift = (0.0 if bias is None else bias) - scale * (moments.mean - mean)
    _kernels.channel_standardize(xc, N, C, S, mean, scale.astype(x.dtype), shift.astype(x.dtype),
                                 y, act)
    return finish_output(y, out), moments.mean, var, count


def channel_mean_residual(x: Array, view: tuple[int, int, int], mean: FloatArray,
                          invstd: FloatArray, mask: NDArray[np.bool_] | None = None
                          ) -> NDArray[np.float64] | None:
    """Per channel, what rounding the saved mean to x's dtype lost (the
    float64 mean of x, or of its masked-in positions (channel_mask), less
    mean), for a backward to centre x_hat as the forward did; None where it
    cannot matter: no channel with |mean| * invstd > OFF_CENTRE.  0 in a
    channel whose saved mean is not x's own rounded (more than an ulp away:
    statistics over several processes, or of other data), which the
    backward then takes as given."""
    far = np.abs(mean.astype(np.float64)) * invstd > _kernels.OFF_CENTRE
    if not far.any():
        return None
    N, C, S = view
    if mask is None:
        mu, m2 = np.empty(C), np.empty(C)
        _kernels.channel_moments(x, N, C, S, mu, m2)
    else:
        mu = Moments.of(x.reshape(N, C, S), 1, mask=mask.reshape(N, 1, S)).mean
    delta = mu - mean
    own = far & (np.abs(delta) <= np.spacing(np.abs(mean)))
    return np.where(own, delta, 0.0)


def recentre_sums(sum_dy: NDArray[np.float64], sum_dy_xhat: NDArray[np.float64],
                  invstd: FloatArray, delta: NDArray[np.float64]) -> NDArray[np.float64]:
    """The backward's sums taken around mean, moved to mean + delta
    (channel_mean_residual): sum_dy_xhat in place; returns the sum_dy that
    bn_backward_dx, which centres on mean, takes to give dx around mean +
    delta (its constant absorbs -a * delta)."""
    sum_dy_xhat -= invstd * delta * sum_dy
    return sum_dy - invstd * delta * sum_dy_xhat


def channel_preactivation_grad(dy: Array, x: Array, view: tuple[int, int, int], mean: FloatArray,
                               invstd: FloatArray, weight: FloatArray | None,
                               bias: FloatArray | None, activation: str | None,
                               delta: NDArray[np.float64] | None = None) -> Array:
    """dy * act'(z) with z = (x - mean - delta) * invstd * weight + bias
    recomputed (one kernel pass; delta: channel_mean_residual, None for 0),
    in a new array."""
    N, C, S = view
    z = np.empty_like(x)
    scale = invstd.astype(np.float64) * (1.0 if weight is None else weight)
    shift = np.zeros(C) if bias is None else bias.astype(np.float64)
    if delta is not None:
        shift = shift - scale * delta
    _kernels.channel_standardize(x, N, C, S, mean, scale.astype(x.dtype), shift.astype(x.dtype),
                                 z)
    return activation_grad(dy, z, activation)


def masked_input_gradient(dy: Array, x: Array, view: tuple[int, int, int], mean: FloatArray,
                          invstd: FloatArray, weight: FloatArray | None,
                          sum_dy: NDArray[np.float64], sum_dy_xhat: NDArray[np.float64],
                          count: int, dx: Array, mask: NDArray[np.bool_],
                          delta: NDArray[np.float64] | None = None) -> Array:
    """dx = weight * invstd * (dy - mask * (sum_dy + x_hat * sum_dy_xhat) / count)
    in x's dtype, into dx (C-contiguous, x's shape): masked batch norm's
    input gradient (mask: x's shape with size 1 on the channel axis; x_hat
    = (x - mean - delta) * invstd, delta: channel_mean_residual or None)."""
    N, C, S = view
    if N * S == 0:
        return dx
    inv = invstd.astype(np.float64)
    k1 = inv if weight is None else weight.astype(np.float64) * inv
    col = (C, 1)
    t = x.dtype
    d = dx.reshape(N, C, S)
    np.subtract(x.reshape(N, C, S), mean.reshape(col), out=d)
    if delta is not None:
        d -= delta.astype(t).reshape(col)
    d *= (-inv * sum_dy_xhat / count).astype(t).reshape(col)
    d -= (sum_dy / count).astype(t).reshape(col)
    d *= mask.reshape(N, 1, S)
    d += dy.reshape(N, C, S)
    d *= k1.astype(t).reshape(col)
    return dx


def batch_norm_infer(x: ArrayLike, running_mean: ArrayLike, running_var: ArrayLike,
                     weight: ArrayLike | None = None, bias: ArrayLike | None = None, *,
                     eps: float = 1e-5, axis: SupportsIndex = 1, out: Array | None = None,
                     activation: Activation = None) -> Array:
    """Batch-norm inference: normalize x with given per-channel (running) statistics.

    Each channel (the elements of x with one index on `axis`) is normalized with its entry of
    `running_mean` and `running_var`, scaled, shifted and passed through `activation` in one
    pass; nothing is computed from x's own statistics.

    Parameters
    ----------
    x : array_like
        Input of at least 2 dimensions, dtype float32, float64, float16 or bfloat16.
    running_mean : array_like
        Per-channel mean of shape (C,), C = ``x.shape[axis]``.  float32 or float64 (or, for
        float16/bfloat16 x, a 2-byte float dtype), converted to the dtype of x's arithmetic.
    running_var : array_like
        Per-channel variance of shape (C,); dtypes as `running_mean`.
    weight : array_like, optional
        Per-channel scale of shape (C,); None: 1.  Dtypes as `running_mean`.
    bias : array_like, optional
        Per-channel shift of shape (C,); None: 0.  Dtypes as `running_mean`.
    eps : float, default 1e-5
        Added to the variance; finite and >= 0 (0 is accepted, as in PyTorch).
    axis : int, default 1
        The channel axis, in ``[-x.ndim, x.ndim)``.
    out : ndarray, optional
        Array to receive y: x's shape and dtype, writable; it may be x itself.
    activation : {None, 'relu', 'silu'}, default None
        Applied to the affine output in the same pass.

    Returns
    -------
    y : ndarray
        x's shape and dtype (`out` when given).

    Raises
    ------
    TypeError
        x of another dtype (integer, bool, complex, int16/uint16, ...); running_mean,
        running_var, weight or bias of a dtype other than float32 and float64 (float16 and
        bfloat16 are accepted only with float16/bfloat16 x); eps not a real number; axis not
        an integer; out not a numpy.ndarray.
    ValueError
        x with fewer than 2 dimensions; axis out of range; running_mean or running_var None;
        running_mean, running_var, weight or bias not of shape (C,); eps negative, NaN or
        infinite; out of another shape or dtype than x, or read-only; an activation other
        than None, 'relu' and 'silu'.

    See Also
    --------
    batch_norm_train : Batch norm with the batch's own statistics.
    fold_batch_norm : Folding this transform into the preceding layer.

    Notes
    -----
    ::

        y = act((x - running_mean) / sqrt(running_var + eps) * weight + bias)

    computed as ``y = act(x * scale + shift)`` with ``scale = weight / sqrt(running_var + eps)``
    and ``shift = bias - running_mean * scale`` per channel.  This is PyTorch's
    ``torch.nn.functional.batch_norm(x, running_mean, running_var, weight, bias,
    training=False, eps=eps)``.  float16 and bfloat16 x are loaded and stored as 2-byte values
    and computed in float32.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 3, 4), dtype=np.float32)
    >>> rm = np.array([0.0, 1.0, -1.0], np.float32)
    >>> rv = np.array([1.0, 4.0, 0.25], np.float32)
    >>> y = cnorm.batch_norm_infer(x, rm, rv, eps=0.0)
    >>> np.allclose(y, (x - rm[:, None]) / np.sqrt(rv[:, None]))
    True
    >>> xt = x.transpose(0, 2, 1)                      # channels-last: (N, L, C)
    >>> y = cnorm.batch_norm_infer(xt, rm, rv, eps=0.0, axis=-1, activation="relu")
    >>> np.allclose(y, np.maximum((xt - rm) / np.sqrt(rv), 0))
    True
    """
    act = 0 if activation is None else activation_code(activation)   # None: no call
    if not act:
        y = _kernels.bn_infer_fast(x, running_mean, running_var, weight, bias, eps, axis, out)
        if y is not None:
            return y
    x, dtype = _data_input(x)
    N, C, S = channel_view(x, axis)
    running_mean = _param_for(running_mean, "running_mean", (C,), x, dtype, optional=False)
    running_var = _param_for(running_var, "running_var", (C,), x, dtype, optional=False)
    weight = _param_for(weight, "weight", (C,), x, dtype)
    bias = _param_for(bias, "bias", (C,), x, dtype)
    eps = check_eps(eps)
    check_out(out, x)
    xc = as_contiguous(x)
    y = kernel_output(out, xc, params=(running_mean, running_var, weight, bias))
    if dtype != x.dtype:   # float16/bfloat16: 2-byte loads and stores, float32 inside
        _kernels.bn_forward_infer_low(xc.view(np.uint16), N, C, S, running_mean, running_var,
                                      weight, bias, eps, y.view(np.uint16),
                                      x.dtype.kind != "f", act)
    else:
        _kernels.bn_forward_infer(xc, N, C, S, running_mean, running_var, weight, bias, eps,
                                  y, act)
    return finish_output(y, out)


@overload
def batch_norm_backward(dy: ArrayLike, x: ArrayLike, mean: ArrayLike, invstd: ArrayLike,
                        weight: None = None, *, axis: SupportsIndex = 1,
                        out: Array | None = None, mask: ArrayLike | None = None,
                        activation: Activation = None, bias: ArrayLike | None = None
                        ) -> tuple[Array, None, FloatArray]: ...
@overload
def batch_norm_backward(dy: ArrayLike, x: ArrayLike, mean: ArrayLike, invstd: ArrayLike,
                        weight: ArrayLike, *, axis: SupportsIndex = 1,
                        out: Array | None = None, mask: ArrayLike | None = None,
                        activation: Activation = None, bias: ArrayLike | None = None
                        ) -> tuple[Array, FloatArray, FloatArray]: ...
def batch_norm_backward(dy: ArrayLike, x: ArrayLike, mean: ArrayLike, invstd: ArrayLike,
                        weight: ArrayLike | None = None, *, axis: SupportsIndex = 1,
                        out: Array | None = None, mask: ArrayLike | None = None,
                        activation: Activation = None, bias: ArrayLike | None = None
                        ) -> tuple[Array, FloatArray | None, FloatArray]:
    """Gradients of batch_norm_train: (dx, dweight, dbias).

    Takes the forward's input and its saved statistics (nothing else is kept between the two
    calls) and the gradient dy of the loss with respect to y.  With the forward's `activation`
    and `bias`, the pre-activation is recomputed from x and the statistics and its derivative
    is applied to dy first.

    Parameters
    ----------
    dy : array_like
        Gradient with respect to y: x's shape and dtype.
    x : array_like
        The forward's input, of at least 2 dimensions, dtype float32, float64, float16 or
        bfloat16.
    mean : array_like
        The forward's saved mean, shape (C,), C = ``x.shape[axis]``; float32 or float64 (or
        x's float16/bfloat16 dtype), converted to the dtype of x's arithmetic.
    invstd : array_like
        The forward's saved ``1 / sqrt(var + eps)``, shape (C,); dtypes as `mean`.
    weight : array_like, optional
        The forward's weight, shape (C,); None: 1, and dweight is not computed.
    axis : int, default 1
        The forward's channel axis.
    out : ndarray, optional
        Array to receive dx: x's shape and dtype, writable; it may be dy or x.
    mask : array_like of bool, optional
        The forward's mask (the positions in the statistics); None when it had none.
    activation : {None, 'relu', 'silu'}, default None
        The forward's activation.
    bias : array_like, optional
        The forward's bias, shape (C,); it matters only with an activation (for the
        pre-activation).

    Returns
    -------
    dx : ndarray
        Gradient with respect to x: x's shape and dtype (`out` when given).
    dweight : ndarray or None
        Shape (C,): ``sum(dy * x_hat)`` over every axis but the channel axis; None when weight
        is None.
    dbias : ndarray
        Shape (C,): ``sum(dy)`` over every axis but the channel axis, always returned.
        dweight and dbias have x's dtype (float32 for float16/bfloat16 x).

    Raises
    ------
    TypeError
        x or dy of another dtype than float32, float64, float16 and bfloat16, or dy of another
        dtype than x; mean, invstd, weight or bias of a dtype other than float32, float64 (or
        x's float16/bfloat16 dtype); axis not an integer; out not a numpy.ndarray.
    ValueError
        x with fewer than 2 dimensions; axis out of range; dy of another shape than x; mean or
        invstd None; mean, invstd or weight not of shape (C,), or bias not of shape (C,) with
        an activation; a mask not of dtype bool, not broadcastable to x with size 1 on the
        channel axis, or selecting no position; out of another shape or dtype than x, or
        read-only; an activation other than None, 'relu' and 'silu'.

    See Also
    --------
    batch_norm_train : The forward.

    Notes
    -----
    With ``x_hat = (x - mean) * invstd``, sums over every axis but the channel axis and n the
    number of values per channel::

        dbias = sum(dy)
        dweight = sum(dy * x_hat)
        dx = weight * invstd * (dy - (dbias + x_hat * dweight) / n)

    With a mask, n is the number of masked-in positions and only those get the correction:
    ``dx = weight * invstd * (dy - mask * (dbias + x_hat * dweight) / n)`` (the sums still run
    over every position, as every position was normalized).  With an activation, dy is first
    replaced by ``dy * act'(z)``, ``z = x_hat * weight + bias``.  The results are the
    gradients PyTorch's autograd gives for ``torch.nn.functional.batch_norm(...,
    training=True)``.  When mean is x's own, rounded to x's dtype (within an ulp of x's float64
    mean, or of its masked-in positions'), and far from 0 (``|mean| * invstd > 8``), x_hat is
    centred on x's float64 mean, as the forward normalized; any other mean is used as given.
    float16 and bfloat16 inputs are computed in float32; dx is rounded back to x's dtype.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, dy = rng.standard_normal((8, 3, 5)), rng.standard_normal((8, 3, 5))
    >>> w = np.array([1.0, 2.0, 0.5])
    >>> y, mean, invstd = cnorm.batch_norm_train(x, w)
    >>> dx, dw, db = cnorm.batch_norm_backward(dy, x, mean, invstd, w)
    >>> xhat, n = (x - mean[:, None]) * invstd[:, None], 8 * 5
    >>> np.allclose(dw, (dy * xhat).sum((0, 2))), np.allclose(db, dy.sum((0, 2)))
    (True, True)
    >>> k, db1, dw1 = (w * invstd)[:, None], db[:, None], dw[:, None]     # (C, 1)
    >>> np.allclose(dx, k * (dy - (db1 + xhat * dw1) / n))
    True
    >>> cnorm.batch_norm_backward(dy, x, mean, invstd)[1] is None
    True
    """
    act = 0 if activation is None else activation_code(activation)   # None: no call
    if mask is None and not act:
        result = _kernels.bn_backward_fast(dy, x, mean, invstd, weight, bias, axis, out)
        if result is not None:
            return result
    low = is_low_precision(x) or is_low_precision(dy)
    if low and (mask is not None or act or np.asarray(dy).dtype != np.asarray(x).dtype):
        return run_in_float32(batch_norm_backward, locals(), ("x", "dy"))
    x, dtype = _data_input(x)   # float16/bfloat16 (dy of the same dtype): float32 arithmetic
    dy = _data_input(dy)[0] if low else as_float_array(dy, "dy")
    same_shape(dy, x, "dy")
    N, C, S = channel_view(x, axis)
    mean = _param_for(mean, "mean", (C,), x, dtype, optional=False)
    invstd = _param_for(invstd, "invstd", (C,), x, dtype, optional=False)
    weight = _param_for(weight, "weight", (C,), x, dtype)
    bias = _param_for(bias, "bias", (C,), x, dtype)
    check_out(out, x)
    xc, dyc = as_contiguous(x), as_contiguous(dy)
    if mask is not None:
        m, count = channel_mask(mask, x, axis)
        if count == 0:
            raise ValueError("mask selects no position: the forward had no statistics")
    # The forward centred on its float64 mean: the rounding of the saved one,
    # recovered from x, centres x_hat here too.
    delta = None if low else channel_mean_residual(xc, (N, C, S), mean, invstd,
                                                   None if mask is None else m)
    if act:
        dyc = channel_preactivation_grad(dyc, xc, (N, C, S), mean, invstd, weight, bias,
                                         activation, delta)
    # Masked: the kernel's sums are the masked gradient's too, its dx (which
    # counts every position) is replaced; a fresh buffer, as dx may be dy.
    dx = (kernel_output(out, dyc, params=(xc, mean, invstd, weight)) if mask is None
          else np.empty_like(xc))
    sum_dy = np.empty(C, np.float64)
    sum_dy_xhat = np.empty(C, np.float64)
    if low:   # 2-byte loads and stores, float32 inside (no mask, no activation)
        _kernels.bn_backward_low(dyc.view(np.uint16), xc.view(np.uint16), N, C, S, mean, invstd,
                                 weight, dx.view(np.uint16), sum_dy, sum_dy_xhat,
                                 x.dtype.kind != "f")
    elif delta is not None and mask is None:   # sums around mean, then dx around mean + delta
        _kernels.bn_backward(dyc, xc, N, C, S, mean, invstd, weight, None, sum_dy, sum_dy_xhat)
        _kernels.bn_backward_dx(dyc, xc, N, C, S, mean, invstd, weight,
                                recentre_sums(sum_dy, sum_dy_xhat, invstd, delta), sum_dy_xhat,
                                N * S, dx)
    else:
        _kernels.bn_backward(dyc, xc, N, C, S, mean, invstd, weight, dx, sum_dy, sum_dy_xhat)
    if mask is not None:
        if delta is not None:
            recentre_sums(sum_dy, sum_dy_xhat, invstd, delta)
        masked_input_gradient(dyc, xc, (N, C, S), mean, invstd, weight, sum_dy, sum_dy_xhat,
                              count, dx, m, delta)
    dweight = None if weight is None else sum_dy_xhat.astype(dtype)
    return finish_output(dx, out), dweight, sum_dy.astype(dtype)


# ---- row family: layer, group, instance and RMS norm ----------------------


def _normalized_shape(normalized_shape: Any, x: Array) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(leading shape, normalized shape) of x; the trailing dims must match
    (normalized_shape: unchecked, as the caller got it)."""
    shape = (normalized_shape,) if np.ndim(normalized_shape) == 0 else tuple(normalized_shape)
    try:  # operator.index: 16.7 and "16" are not sizes; nor is True (the layers agree)
        if any(isinstance(d, (bool, np.bool_)) for d in shape):
            raise TypeError
        shape = tuple(operator.index(d) for d in shape)
    except TypeError:
        raise TypeError(f"normalized_shape must be an int or a tuple of ints, got "
                        f"{normalized_shape!r}") from None
    D = len(shape)
    if D == 0 or x.ndim < D or x.shape[x.ndim - D:] != shape:
        raise ValueError(f"normalized_shape {shape} does not match the trailing dimensions of x "
                         f"with shape {x.shape}")
    if math.prod(shape) == 0:
        raise ValueError(f"normalized_shape must contain at least one element, got {shape}")
    return x.shape[: x.ndim - D], shape


def _group_view(x: Array, num_groups: SupportsIndex, name: str = "num_groups"
                ) -> tuple[int, int, int, int]:
    """(N, C, S, G) for x of shape (N, C, *) normalized per group of channels."""
    check_ndim(x, 2)
    G = check_positive_int(num_groups, name)
    N, C = x.shape[:2]
    if C % G:
        raise ValueError(f"{name} must divide the number of channels {C}, got {G}")
    return N, C, math.prod(x.shape[2:]), G


def _check_row_sizes(M: int, K: int) -> None:
    if K == 0 and M > 0:
        raise ValueError("normalization needs at least one value per row, got an empty row")


@overload
def _row_forward(x: Array, M: int, K: int, G: int, S: int, stat_shape: tuple[int, ...],
                 weight: FloatArray | None, bias: FloatArray | None, eps: float,
                 out: Array | None, center: Literal[True], act: int = 0,
                 dtype: np.dtype[Any] | None = None) -> tuple[Array, FloatArray, FloatArray]: ...
@overload
def _row_forward(x: Array, M: int, K: int, G: int, S: int, stat_shape: tuple[int, ...],
                 weight: FloatArray | None, bias: FloatArray | None, eps: float,
                 out: Array | None, center: bool, act: int = 0,
                 dtype: np.dtype[Any] | None = None
                 ) -> tuple[Array, FloatArray | None, FloatArray]: ...
def _row_forward(x: Array, M: int, K: int, G: int, S: int, stat_shape: tuple[int, ...],
                 weight: FloatArray | None, bias: FloatArray | None, eps: float,
                 out: Array | None, center: bool, act: int = 0,
                 dtype: np.dtype[Any] | None = None) -> tuple[Array, FloatArray | None, FloatArray]:
    """The row kernels' forward; dtype: of the statistics (x's, or float32
    for float16/bfloat16 x, which runs the 2-byte kernels)."""
    dtype = x.dtype if dtype is None else dtype
    _check_row_sizes(M, K)
    check_out(out, x)
    xc = as_contiguous(x)
    y = kernel_output(out, xc, params=(weight, bias))
    mean = np.empty(stat_shape, dtype) if center else None
    rstd = np.empty(stat_shape, dtype)
    if M > 0 and dtype != x.dtype:
        _kernels.row_forward_low(xc.view(np.uint16), M, K, G, S, center, eps, weight, bias,
                                 y.view(np.uint16), mean, rstd, x.dtype.kind != "f", act)
    elif M > 0:
        _kernels.row_forward(xc, M, K, G, S, center, eps, weight, bias, y, mean, rstd, act)
    return finish_output(y, out), mean, rstd


@overload
def _row_backward(dy: Array, x: Array, M: int, K: int, G: int, S: int,
                  stat_shape: tuple[int, ...], param_shape: tuple[int, ...],
                  mean: ArrayLike | None, rstd: ArrayLike, weight: FloatArray | None,
                  out: Array | None, center: bool, want_dbias: Literal[True] = True,
                  activation: Activation = None, bias: ArrayLike | None = None,
                  dtype: np.dtype[Any] | None = None
                  ) -> tuple[Array, FloatArray | None, FloatArray]: ...
@overload
def _row_backward(dy: Array, x: Array, M: int, K: int, G: int, S: int,
                  stat_shape: tuple[int, ...], param_shape: tuple[int, ...],
                  mean: ArrayLike | None, rstd: ArrayLike, weight: FloatArray | None,
                  out: Array | None, center: bool, want_dbias: bool = True,
                  activation: Activation = None, bias: ArrayLike | None = None,
                  dtype: np.dtype[Any] | None = None
                  ) -> tuple[Array, FloatArray | None, FloatArray | None]: ...
def _row_backward(dy: Array, x: Array, M: int, K: int, G: int, S: int,
                  stat_shape: tuple[int, ...], param_shape: tuple[int, ...],
                  mean: ArrayLike | None, rstd: ArrayLike, weight: FloatArray | None,
                  out: Array | None, center: bool, want_dbias: bool = True,
                  activation: Activation = None, bias: ArrayLike | None = None,
                  dtype: np.dtype[Any] | None = None
                  ) -> tuple[Array, FloatArray | None, FloatArray | None]:
    """The row kernels' backward; dtype: of the arithmetic, statistics and
    parameters (x's, or float32 for float16/bfloat16 x and dy, which take
    the 2-byte kernel: no activation then)."""
    dtype = x.dtype if dtype is None else dtype
    act = 0 if activation is None else activation_code(activation)   # None: no call
    mean = _param_for(mean, "mean", stat_shape, x, dtype, optional=not center)
    rstd = _param_for(rstd, "rstd", stat_shape, x, dtype, optional=False)
    bias = _param_for(bias, "bias", param_shape, x, dtype)
    _check_row_sizes(M, K)
    check_out(out, x)
    xc, dyc = as_contiguous(x), as_contiguous(dy)
    if act and M > 0:
        dyc = _row_dz(dyc, xc, (M, K, G, S), mean, rstd, weight, bias, activation)
    dx = kernel_output(out, dyc, params=(xc, mean, rstd, weight))   # dx may be dy, not x
    dweight = None if weight is None else np.zeros(param_shape, np.float64)
    dbias = np.zeros(param_shape, np.float64) if want_dbias else None
    if M > 0 and dtype != x.dtype:
        _kernels.row_backward_low(dyc.view(np.uint16), xc.view(np.uint16), M, K, G, S, center,
                                  mean, rstd, weight, dx.view(np.uint16), dweight, dbias,
                                  x.dtype.kind != "f")
    elif M > 0:
        _kernels.row_backward(dyc, xc, M, K, G, S, center, mean, rstd, weight, dx, dweight,
                              dbias)
    return finish_output(dx, out), _cast(dweight, dtype), _cast(dbias, dtype)


def _row_dz(dy: Array, x: Array, view: tuple[int, int, int, int], mean: FloatArray | None,
            rstd: FloatArray, weight: FloatArray | None, bias: FloatArray | None,
            activation: str | None) -> Array:
    """dy * act'(z) with z = x_hat * weight + bias recomputed per row (row m
    uses parameter row m % G, each parameter repeated over S values), in a
    new array.  x_hat is centred as the forward's, as the kernels centre it:
    on the saved mean, less the row mean of x - mean in rows where
    |mean| * rstd > 1 and that is within an ulp of mean (the mean is the
    row's own, rounded: for |mean| >> std its rounding moves x_hat, and
    relu's mask, by far more than float32's)."""
    M, K, G, S = view
    if mean is None:
        z = x.reshape(M, K).copy()
    else:
        m = mean.reshape(M, 1)
        z = x.reshape(M, K) - m
        far = np.abs(m.astype(np.float64)) * rstd.reshape(M, 1) > 1.0
        if far.any():
            delta = np.mean(z, axis=1, dtype=np.float64, keepdims=True)
            own = far & (np.abs(delta) <= np.spacing(np.abs(m)))
            z -= np.where(own, delta, 0.0).astype(z.dtype)
    z *= rstd.reshape(M, 1)
    rows = z.reshape(M // G, G, K)
    if weight is not None:
        rows *= np.repeat(weight.reshape(G, K // S), S, axis=1)
    if bias is not None:
        rows += np.repeat(bias.reshape(G, K // S), S, axis=1)
    return activation_grad(dy.reshape(M, K), z, activation).reshape(x.shape)


def _cast(a: NDArray[np.float64] | None, dtype: np.dtype[Any]) -> FloatArray | None:
    return None if a is None else a.astype(dtype)


def _row_backward_in_float32(x: ArrayLike, dy: ArrayLike, activation: Activation) -> bool:
    """Whether a row backward of float16/bfloat16 data goes through
    run_in_float32: with an activation (the 2-byte kernel has none), or dy
    and x of different dtypes (which run_in_float32 refuses, naming dy)."""
    low = is_low_precision(x) or is_low_precision(dy)
    return low and (activation is not None or np.asarray(dy).dtype != np.asarray(x).dtype)


def _dy_like(dy: ArrayLike, x: Array) -> Array:
    """dy checked against x (for float16/bfloat16 x: of x's dtype already)."""
    dy = native_low(dy) if is_low_precision(x) else as_float_array(dy, "dy")
    same_shape(dy, x, "dy")
    return dy


def layer_norm(x: ArrayLike, normalized_shape: ShapeLike, weight: ArrayLike | None = None,
               bias: ArrayLike | None = None, *, eps: float = 1e-5, out: Array | None = None,
               activation: Activation = None) -> tuple[Array, FloatArray, FloatArray]:
    """Layer norm over the trailing dimensions, with an optional fused activation.

    Each row (the trailing dimensions given by `normalized_shape`, for every index of the
    leading ones) is normalized with its own mean and biased variance, then scaled, shifted and
    passed through `activation` while it is in cache.

    Parameters
    ----------
    x : array_like
        Input whose trailing dimensions are `normalized_shape`, dtype float32, float64, float16
        or bfloat16 (big-endian data is converted).
    normalized_shape : int or tuple of int
        The trailing dimensions to normalize over: ``x.shape[-D:]`` for D of them.
    weight : array_like, optional
        Elementwise scale of shape `normalized_shape`; None: 1.  float32 or float64 (or, for
        float16/bfloat16 x, a 2-byte float dtype), converted to the dtype of x's arithmetic.
    bias : array_like, optional
        Elementwise shift of shape `normalized_shape`; None: 0.  Dtypes as `weight`.
    eps : float, default 1e-5
        Added to the variance; finite and >= 0.
    out : ndarray, optional
        Array to receive y: x's shape and dtype, writable; it may be x itself.
    activation : {None, 'relu', 'silu'}, default None
        Applied to the affine output in the same pass.

    Returns
    -------
    y : ndarray
        x's shape and dtype (`out` when given).
    mean : ndarray
        The mean of each row, of x's leading shape ``x.shape[:-D]``, in x's dtype (float32 for
        float16/bfloat16 x).
    rstd : ndarray
        ``1 / sqrt(var + eps)`` of each row with the biased variance; mean's shape and dtype.

    Raises
    ------
    TypeError
        x of another dtype (integer, bool, complex, int16/uint16, ...); normalized_shape
        holding something other than integers (a float, a str, None); weight or bias of a
        dtype other than float32 and float64 (float16 and bfloat16 are accepted only with
        float16/bfloat16 x); eps not a real number; out not a numpy.ndarray.
    ValueError
        normalized_shape empty, holding a 0, or not equal to x's trailing dimensions; weight or
        bias not of shape normalized_shape; eps negative, NaN or infinite; out of another shape
        or dtype than x, or read-only; an activation other than None, 'relu' and 'silu'.

    See Also
    --------
    layer_norm_backward : The gradients of this function.
    add_layer_norm : Residual add and layer norm in one pass.
    LayerNorm : The layer.

    Notes
    -----
    Over the K values of each row::

        mean = sum(x) / K
        var = sum((x - mean)**2) / K                    (biased)
        rstd = 1 / sqrt(var + eps)
        y = act((x - mean) * rstd * weight + bias)

    This is ``torch.nn.functional.layer_norm(x, normalized_shape, weight, bias, eps)``;
    ``torch.native_layer_norm`` returns the same mean and rstd with trailing dimensions of size
    1 kept.  With eps=0 a constant row gives NaN (0 * inf), as in PyTorch.  float16 and
    bfloat16 x are loaded and stored as 2-byte values and computed in float32.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 5, 8), dtype=np.float32)
    >>> y, mean, rstd = cnorm.layer_norm(x, 8)
    >>> y.shape, mean.shape, rstd.dtype
    ((2, 5, 8), (2, 5), dtype('float32'))
    >>> ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    >>> np.allclose(y, ref, atol=1e-5)
    True
    >>> cnorm.layer_norm(x, (5, 8))[1].shape
    (2,)
    """
    act = 0 if activation is None else activation_code(activation)   # None: no call
    result = _kernels.row_norm_fast(x, normalized_shape, weight, bias, eps, out, True, act)
    if result is not None:
        return result
    x, dtype = _data_input(x)
    lead, norm = _normalized_shape(normalized_shape, x)
    weight = _param_for(weight, "weight", norm, x, dtype)
    bias = _param_for(bias, "bias", norm, x, dtype)
    eps = check_eps(eps)
    return _row_forward(x, math.prod(lead), math.prod(norm), 1, 1, lead, weight, bias, eps, out,
                        True, act, dtype)


@overload
def layer_norm_backward(dy: ArrayLike, x: ArrayLike, mean: ArrayLike, rstd: ArrayLike,
                        normalized_shape: ShapeLike, weight: None = None, *,
                        out: Array | None = None, activation: Activation = None,
                        bias: ArrayLike | None = None
                        ) -> tuple[Array, None, FloatArray]: ...
@overload
def layer_norm_backward(dy: ArrayLike, x: ArrayLike, mean: ArrayLike, rstd: ArrayLike,
                        normalized_shape: ShapeLike, weight: ArrayLike, *,
                        out: Array | None = None, activation: Activation = None,
                        bias: ArrayLike | None = None
                        ) -> tuple[Array, FloatArray, FloatArray]: ...
def layer_norm_backward(dy: ArrayLike, x: ArrayLike, mean: ArrayLike, rstd: ArrayLike,
                        normalized_shape: ShapeLike, weight: ArrayLike | None = None, *,
                        out: Array | None = None, activation: Activation = None,
                        bias: ArrayLike | None = None
                        ) -> tuple[Array, FloatArray | None, FloatArray]:
    """Gradients of layer_norm: (dx, dweight, dbias).

    Takes the forward's input and its saved statistics and the gradient dy of the loss with
    respect to y.  With the forward's `activation` and `bias`, the pre-activation is recomputed
    from x and the statistics and its derivative is applied to dy first.

    Parameters
    ----------
    dy : array_like
        Gradient with respect to y: x's shape and dtype.
    x : array_like
        The forward's input, dtype float32, float64, float16 or bfloat16.
    mean : array_like
        The forward's saved mean, of x's leading shape ``x.shape[:-D]``; float32 or float64 (or
        x's float16/bfloat16 dtype), converted to the dtype of x's arithmetic.
    rstd : array_like
        The forward's saved ``1 / sqrt(var + eps)``; shape and dtypes as `mean`.
    normalized_shape : int or tuple of int
        The forward's normalized trailing dimensions.
    weight : array_like, optional
        The forward's weight, of shape `normalized_shape`; None: 1, and dweight is not
        computed.
    out : ndarray, optional
        Array to receive dx: x's shape and dtype, writable; it may be dy or x.
    activation : {None, 'relu', 'silu'}, default None
        The forward's activation.
    bias : array_like, optional
        The forward's bias, of shape `normalized_shape`; it matters only with an activation.

    Returns
    -------
    dx : ndarray
        Gradient with respect to x: x's shape and dtype (`out` when given).
    dweight : ndarray or None
        ``sum(dy * x_hat)`` over the leading dimensions, of shape `normalized_shape`; None when
        weight is None.
    dbias : ndarray
        ``sum(dy)`` over the leading dimensions, of shape `normalized_shape`, always returned.
        dweight and dbias have x's dtype (float32 for float16/bfloat16 x).

    Raises
    ------
    TypeError
        x or dy of another dtype than float32, float64, float16 and bfloat16, or dy of another
        dtype than x; normalized_shape holding something other than integers; mean, rstd,
        weight or bias of a dtype other than float32, float64 (or x's float16/bfloat16 dtype);
        out not a numpy.ndarray.
    ValueError
        dy of another shape than x; normalized_shape empty, holding a 0, or not equal to x's
        trailing dimensions; mean or rstd None or not of x's leading shape; weight or bias not
        of shape normalized_shape; out of another shape or dtype than x, or read-only; an
        activation other than None, 'relu' and 'silu'.

    See Also
    --------
    layer_norm : The forward.

    Notes
    -----
    With ``x_hat = (x - mean) * rstd``, ``g = dy * weight`` and means over the K values of
    each row::

        dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat))
        dweight = sum(dy * x_hat),  dbias = sum(dy)      (over the leading dimensions)

    With an activation, dy is first replaced by ``dy * act'(z)``, ``z = x_hat * weight + bias``.
    These are the gradients PyTorch's autograd gives for ``torch.nn.functional.layer_norm``.
    For add_layer_norm, dx is the gradient of both x and residual (call this function with s).
    float16 and bfloat16 inputs are computed in float32; dx is rounded back to x's dtype.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, dy, w = rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 3, 8)), np.arange(8.0)
    >>> y, mean, rstd = cnorm.layer_norm(x, 8, w)
    >>> dx, dw, db = cnorm.layer_norm_backward(dy, x, mean, rstd, 8, w)
    >>> xhat, g = (x - mean[..., None]) * rstd[..., None], dy * w
    >>> ref = g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True)
    >>> np.allclose(dx, rstd[..., None] * ref)
    True
    >>> np.allclose(dw, (dy * xhat).sum((0, 1))), db.shape
    (True, (8,))
    """
    if activation is None:
        result = _kernels.row_backward_fast(dy, x, mean, rstd, normalized_shape, weight, bias,
                                            out)
        if result is not None:
            return result
    if _row_backward_in_float32(x, dy, activation):
        return run_in_float32(layer_norm_backward, locals(), ("x", "dy"))
    x, dtype = _data_input(x)
    dy = _dy_like(dy, x)
    lead, norm = _normalized_shape(normalized_shape, x)
    weight = _param_for(weight, "weight", norm, x, dtype)
    return _row_backward(dy, x, math.prod(lead), math.prod(norm), 1, 1, lead, norm, mean, rstd,
                         weight, out, True, activation=activation, bias=bias, dtype=dtype)


def group_norm(x: ArrayLike, num_groups: SupportsIndex, weight: ArrayLike | None = None,
               bias: ArrayLike | None = None, *, eps: float = 1e-5, out: Array | None = None,
               activation: Activation = None) -> tuple[Array, FloatArray, FloatArray]:
    """Group norm of x (N, C, *) over groups of C/num_groups channels, with an optional activation.

    For every sample n, the channels are split into num_groups consecutive groups, and each
    group (its channels and all their spatial positions) is normalized with its own mean and
    biased variance, then scaled and shifted per channel and passed through `activation`.

    Parameters
    ----------
    x : array_like
        Input of shape (N, C, *) (at least 2 dimensions), dtype float32, float64, float16 or
        bfloat16.
    num_groups : int
        The number of groups G, >= 1, dividing C.
    weight : array_like, optional
        Per-channel scale of shape (C,); None: 1.  float32 or float64 (or, for
        float16/bfloat16 x, a 2-byte float dtype), converted to the dtype of x's arithmetic.
    bias : array_like, optional
        Per-channel shift of shape (C,); None: 0.  Dtypes as `weight`.
    eps : float, default 1e-5
        Added to the variance; finite and >= 0.
    out : ndarray, optional
        Array to receive y: x's shape and dtype, writable; it may be x itself.
    activation : {None, 'relu', 'silu'}, default None
        Applied to the affine output in the same pass.

    Returns
    -------
    y : ndarray
        x's shape and dtype (`out` when given).
    mean : ndarray
        Shape (N, num_groups): the mean of each group, in x's dtype (float32 for
        float16/bfloat16 x).
    rstd : ndarray
        Shape (N, num_groups): ``1 / sqrt(var + eps)`` with the biased variance; mean's dtype.

    Raises
    ------
    TypeError
        x of another dtype (integer, bool, complex, int16/uint16, ...); num_groups not an
        integer; weight or bias of a dtype other than float32 and float64 (float16 and bfloat16
        are accepted only with float16/bfloat16 x); eps not a real number; out not a
        numpy.ndarray.
    ValueError
        x with fewer than 2 dimensions; num_groups < 1 or not dividing C; groups without
        values (C or a spatial dimension 0 while N > 0); weight or bias not of shape (C,); eps
        negative, NaN or infinite; out of another shape or dtype than x, or read-only; an
        activation other than None, 'relu' and 'silu'.

    See Also
    --------
    group_norm_backward : The gradients of this function.
    GroupNorm : The layer.

    Notes
    -----
    For sample n, group g and channel c in g, over the K = (C / G) * prod(x.shape[2:]) values
    of the group::

        y[n, c] = act((x[n, c] - mean[n, g]) * rstd[n, g] * weight[c] + bias[c])

    with the biased variance, ``rstd = 1 / sqrt(var + eps)``.  This is
    ``torch.nn.functional.group_norm(x, num_groups, weight, bias, eps)``;
    ``torch.native_group_norm`` returns the same mean and rstd, shape (N, G).  float16 and
    bfloat16 x are loaded and stored as 2-byte values and computed in float32.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 6, 4, 4), dtype=np.float32)
    >>> y, mean, rstd = cnorm.group_norm(x, 3)
    >>> y.shape, mean.shape, rstd.dtype
    ((2, 6, 4, 4), (2, 3), dtype('float32'))
    >>> g = x.reshape(2, 3, -1)                       # (N, G, C/G * H * W)
    >>> ref = (g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5)
    >>> np.allclose(y, ref.reshape(x.shape), atol=1e-5)
    True
    """
    act = 0 if activation is None else activation_code(activation)   # None: no call
    x, dtype = _data_input(x)
    N, C, S, G = _group_view(x, num_groups)
    weight = _param_for(weight, "weight", (C,), x, dtype)
    bias = _param_for(bias, "bias", (C,), x, dtype)
    eps = check_eps(eps)
    return _row_forward(x, N * G, C // G * S, G, S, (N, G), weight, bias, eps, out, True, act,
                        dtype)


@overload
def group_norm_backward(dy: ArrayLike, x: ArrayLike, mean: ArrayLike, rstd: ArrayLike,
                        num_groups: SupportsIndex, weight: None = None, *,
                        out: Array | None = None, activation: Activation = None,
                        bias: ArrayLike | None = None
                        ) -> tuple[Array, None, FloatArray]: ...
@overload
def group_norm_backward(dy: ArrayLike, x: ArrayLike, mean: ArrayLike, rstd: ArrayLike,
                        num_groups: SupportsIndex, weight: ArrayLike, *,
                        out: Array | None = None, activation: Activation = None,
                        bias: ArrayLike | None = None
                        ) -> tuple[Array, FloatArray, FloatArray]: ...
def group_norm_backward(dy: ArrayLike, x: ArrayLike, mean: ArrayLike, rstd: ArrayLike,
                        num_groups: SupportsIndex, weight: ArrayLike | None = None, *,
                        out: Array | None = None, activation: Activation = None,
                        bias: ArrayLike | None = None
                        ) -> tuple[Array, FloatArray | None, FloatArray]:
    """Gradients of group_norm: (dx, dweight, dbias).

    Takes the forward's input and its saved statistics and the gradient dy of the loss with
    respect to y.  With the forward's `activation` and `bias`, the pre-activation is recomputed
    from x and the statistics and its derivative is applied to dy first.

    Parameters
    ----------
    dy : array_like
        Gradient with respect to y: x's shape and dtype.
    x : array_like
        The forward's input, of shape (N, C, *), dtype float32, float64, float16 or bfloat16.
    mean : array_like
        The forward's saved mean, shape (N, num_groups); float32 or float64 (or x's
        float16/bfloat16 dtype), converted to the dtype of x's arithmetic.
    rstd : array_like
        The forward's saved ``1 / sqrt(var + eps)``; shape and dtypes as `mean`.
    num_groups : int
        The forward's number of groups.
    weight : array_like, optional
        The forward's weight, shape (C,); None: 1, and dweight is not computed.
    out : ndarray, optional
        Array to receive dx: x's shape and dtype, writable; it may be dy or x.
    activation : {None, 'relu', 'silu'}, default None
        The forward's activation.
    bias : array_like, optional
        The forward's bias, shape (C,); it matters only with an activation.

    Returns
    -------
    dx : ndarray
        Gradient with respect to x: x's shape and dtype (`out` when given).
    dweight : ndarray or None
        Shape (C,): ``sum(dy * x_hat)`` over the samples and spatial positions; None when
        weight is None.
    dbias : ndarray
        Shape (C,): ``sum(dy)`` over the samples and spatial positions, always returned.
        dweight and dbias have x's dtype (float32 for float16/bfloat16 x).

    Raises
    ------
    TypeError
        x or dy of another dtype than float32, float64, float16 and bfloat16, or dy of another
        dtype than x; num_groups not an integer; mean, rstd, weight or bias of a dtype other
        than float32, float64 (or x's float16/bfloat16 dtype); out not a numpy.ndarray.
    ValueError
        x with fewer than 2 dimensions; dy of another shape than x; num_groups < 1 or not
        dividing C; groups without values while N > 0; mean or rstd None or not of shape
        (N, num_groups); weight or bias not of shape (C,); out of another shape or dtype than
        x, or read-only; an activation other than None, 'relu' and 'silu'.

    See Also
    --------
    group_norm : The forward.

    Notes
    -----
    With ``x_hat = (x - mean) * rstd`` per group, ``g = dy * weight`` and means over the
    values of each group::

        dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat))
        dweight = sum(dy * x_hat),  dbias = sum(dy)      (per channel)

    With an activation, dy is first replaced by ``dy * act'(z)``, ``z = x_hat * weight + bias``.
    These are the gradients PyTorch's autograd gives for ``torch.nn.functional.group_norm``.
    float16 and bfloat16 inputs are computed in float32; dx is rounded back to x's dtype.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, dy = rng.standard_normal((2, 6, 5)), rng.standard_normal((2, 6, 5))
    >>> y, mean, rstd = cnorm.group_norm(x, 3)
    >>> dx, dw, db = cnorm.group_norm_backward(dy, x, mean, rstd, 3)
    >>> xhat, g = ((x.reshape(2, 3, -1) - mean[..., None]) * rstd[..., None]), dy.reshape(2, 3, -1)
    >>> ref = g - g.mean(-1, keepdims=True) - xhat * (g * xhat).mean(-1, keepdims=True)
    >>> np.allclose(dx, (rstd[..., None] * ref).reshape(x.shape))
    True
    >>> dw is None, db.shape
    (True, (6,))
    """
    if _row_backward_in_float32(x, dy, activation):
        return run_in_float32(group_norm_backward, locals(), ("x", "dy"))
    x, dtype = _data_input(x)
    dy = _dy_like(dy, x)
    N, C, S, G = _group_view(x, num_groups)
    weight = _param_for(weight, "weight", (C,), x, dtype)
    return _row_backward(dy, x, N * G, C // G * S, G, S, (N, G), (C,), mean, rstd, weight, out,
                         True, activation=activation, bias=bias, dtype=dtype)


def _instance_view(x: Array) -> tuple[int, int, int]:
    check_ndim(x, 3)
    N, C, S, _ = _group_view(x, x.shape[1] or 1)
    if S < 2:
        raise ValueError(f"instance norm needs more than one spatial element per channel, "
                         f"got input of shape {x.shape}")
    return N, C, S


def instance_norm(x: ArrayLike, weight: ArrayLike | None = None, bias: ArrayLike | None = None,
                  *, eps: float = 1e-5, out: Array | None = None, activation: Activation = None
                  ) -> tuple[Array, FloatArray, FloatArray]:
    """Instance norm of x (N, C, *): each (n, c) plane normalized on its own, then activation.

    Every channel of every sample is normalized with the mean and biased variance of its
    spatial values, then scaled and shifted per channel and passed through `activation`.  No
    running statistics are kept (InstanceNorm keeps them when asked).

    Parameters
    ----------
    x : array_like
        Input of shape (N, C, *) with at least 3 dimensions and at least 2 spatial values per
        plane, dtype float32, float64, float16 or bfloat16.
    weight : array_like, optional
        Per-channel scale of shape (C,); None: 1.  float32 or float64 (or, for
        float16/bfloat16 x, a 2-byte float dtype), converted to the dtype of x's arithmetic.
    bias : array_like, optional
        Per-channel shift of shape (C,); None: 0.  Dtypes as `weight`.
    eps : float, default 1e-5
        Added to the variance; finite and >= 0.
    out : ndarray, optional
        Array to receive y: x's shape and dtype, writable; it may be x itself.
    activation : {None, 'relu', 'silu'}, default None
        Applied to the affine output in the same pass.

    Returns
    -------
    y : ndarray
        x's shape and dtype (`out` when given).
    mean : ndarray
        Shape (N, C): the mean of each plane, in x's dtype (float32 for float16/bfloat16 x).
    rstd : ndarray
        Shape (N, C): ``1 / sqrt(var + eps)`` with the biased variance; mean's dtype.

    Raises
    ------
    TypeError
        x of another dtype (integer, bool, complex, int16/uint16, ...); weight or bias of a
        dtype other than float32 and float64 (float16 and bfloat16 are accepted only with
        float16/bfloat16 x); eps not a real number; out not a numpy.ndarray.
    ValueError
        x with fewer than 3 dimensions, or with fewer than 2 spatial values per plane; weight or
        bias not of shape (C,); eps negative, NaN or infinite; out of another shape or dtype
        than x, or read-only; an activation other than None, 'relu' and 'silu'.

    See Also
    --------
    instance_norm_backward : The gradients of this function.
    InstanceNorm : The layer, with optional running statistics.

    Notes
    -----
    Over the S = prod(x.shape[2:]) values of each plane::

        y[n, c] = act((x[n, c] - mean[n, c]) * rstd[n, c] * weight[c] + bias[c])

    with the biased variance, ``rstd = 1 / sqrt(var + eps)``.  This is group norm with one
    group per channel, and PyTorch's ``torch.nn.functional.instance_norm(x, weight=weight,
    bias=bias, use_input_stats=True, eps=eps)``.  float16 and bfloat16 x are loaded and stored
    as 2-byte values and computed in float32.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 3, 4, 4), dtype=np.float32)
    >>> y, mean, rstd = cnorm.instance_norm(x)
    >>> y.shape, mean.shape
    ((2, 3, 4, 4), (2, 3))
    >>> m, v = x.mean((2, 3), keepdims=True), x.var((2, 3), keepdims=True)
    >>> np.allclose(y, (x - m) / np.sqrt(v + 1e-5), atol=1e-5)
    True
    """
    act = 0 if activation is None else activation_code(activation)   # None: no call
    x, dtype = _data_input(x)
    N, C, S = _instance_view(x)
    weight = _param_for(weight, "weight", (C,), x, dtype)
    bias = _param_for(bias, "bias", (C,), x, dtype)
    eps = check_eps(eps)
    return _row_forward(x, N * C, S, max(C, 1), S, (N, C), weight, bias, eps, out, True, act,
                        dtype)


@overload
def instance_norm_backward(dy: ArrayLike, x: ArrayLike, mean: ArrayLike, rstd: ArrayLike,
                           weight: None = None, *, out: Array | None = None,
                           activation: Activation = None, bias: ArrayLike | None = None
                           ) -> tuple[Array, None, FloatArray]: ...
@overload
def instance_norm_backward(dy: ArrayLike, x: ArrayLike, mean: ArrayLike, rstd: ArrayLike,
                           weight: ArrayLike, *, out: Array | None = None,
                           activation: Activation = None, bias: ArrayLike | None = None
                           ) -> tuple[Array, FloatArray, FloatArray]: ...
def instance_norm_backward(dy: ArrayLike, x: ArrayLike, mean: ArrayLike, rstd: ArrayLike,
                           weight: ArrayLike | None = None, *, out: Array | None = None,
                           activation: Activation = None, bias: ArrayLike | None = None
                           ) -> tuple[Array, FloatArray | None, FloatArray]:
    """Gradients of instance_norm: (dx, dweight, dbias).

    Takes the forward's input and its saved statistics and the gradient dy of the loss with
    respect to y.  With the forward's `activation` and `bias`, the pre-activation is recomputed
    from x and the statistics and its derivative is applied to dy first.

    Parameters
    ----------
    dy : array_like
        Gradient with respect to y: x's shape and dtype.
    x : array_like
        The forward's input, of shape (N, C, *), dtype float32, float64, float16 or bfloat16.
    mean : array_like
        The forward's saved mean, shape (N, C); float32 or float64 (or x's float16/bfloat16
        dtype), converted to the dtype of x's arithmetic.
    rstd : array_like
        The forward's saved ``1 / sqrt(var + eps)``; shape and dtypes as `mean`.
    weight : array_like, optional
        The forward's weight, shape (C,); None: 1, and dweight is not computed.
    out : ndarray, optional
        Array to receive dx: x's shape and dtype, writable; it may be dy or x.
    activation : {None, 'relu', 'silu'}, default None
        The forward's activation.
    bias : array_like, optional
        The forward's bias, shape (C,); it matters only with an activation.

    Returns
    -------
    dx : ndarray
        Gradient with respect to x: x's shape and dtype (`out` when given).
    dweight : ndarray or None
        Shape (C,): ``sum(dy * x_hat)`` over the samples and spatial positions; None when
        weight is None.
    dbias : ndarray
        Shape (C,): ``sum(dy)`` over the samples and spatial positions, always returned.
        dweight and dbias have x's dtype (float32 for float16/bfloat16 x).

    Raises
    ------
    TypeError
        x or dy of another dtype than float32, float64, float16 and bfloat16, or dy of another
        dtype than x; mean, rstd, weight or bias of a dtype other than float32, float64 (or
        x's float16/bfloat16 dtype); out not a numpy.ndarray.
    ValueError
        x with fewer than 3 dimensions or fewer than 2 spatial values per plane; dy of another
        shape than x; mean or rstd None or not of shape (N, C); weight or bias not of shape
        (C,); out of another shape or dtype than x, or read-only; an activation other than
        None, 'relu' and 'silu'.

    See Also
    --------
    instance_norm : The forward.

    Notes
    -----
    With ``x_hat = (x - mean) * rstd`` per plane, ``g = dy * weight`` and means over the
    spatial values of each plane::

        dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat))
        dweight = sum(dy * x_hat),  dbias = sum(dy)      (per channel)

    With an activation, dy is first replaced by ``dy * act'(z)``, ``z = x_hat * weight + bias``.
    These are the gradients PyTorch's autograd gives for ``torch.nn.functional.instance_norm``.
    float16 and bfloat16 inputs are computed in float32; dx is rounded back to x's dtype.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, dy = rng.standard_normal((2, 3, 8)), rng.standard_normal((2, 3, 8))
    >>> y, mean, rstd = cnorm.instance_norm(x)
    >>> dx, dw, db = cnorm.instance_norm_backward(dy, x, mean, rstd)
    >>> xhat = (x - mean[..., None]) * rstd[..., None]
    >>> ref = dy - dy.mean(-1, keepdims=True) - xhat * (dy * xhat).mean(-1, keepdims=True)
    >>> np.allclose(dx, rstd[..., None] * ref)
    True
    >>> dw is None, np.allclose(db, dy.sum((0, 2)))
    (True, True)
    """
    if _row_backward_in_float32(x, dy, activation):
        return run_in_float32(instance_norm_backward, locals(), ("x", "dy"))
    x, dtype = _data_input(x)
    dy = _dy_like(dy, x)
    N, C, S = _instance_view(x)
    weight = _param_for(weight, "weight", (C,), x, dtype)
    return _row_backward(dy, x, N * C, S, max(C, 1), S, (N, C), (C,), mean, rstd, weight, out,
                         True, activation=activation, bias=bias, dtype=dtype)


def _rms_eps(eps: float | None, dtype: np.dtype[Any]) -> float:
    """eps=None: the machine epsilon of x's dtype (PyTorch's rule)."""
    return float(np.finfo(dtype).eps) if eps is None else check_eps(eps)


def rms_norm(x: ArrayLike, normalized_shape: ShapeLike, weight: ArrayLike | None = None, *,
             eps: float | None = None, out: Array | None = None, activation: Activation = None
             ) -> tuple[Array, FloatArray]:
    """RMS norm over the trailing dimensions: y = act(x / sqrt(mean(x**2) + eps) * weight).

    Each row (the trailing dimensions given by `normalized_shape`) is divided by its root mean
    square, without centring, then scaled and passed through `activation` while it is in
    cache.  There is no bias.

    Parameters
    ----------
    x : array_like
        Input whose trailing dimensions are `normalized_shape`, dtype float32, float64, float16
        or bfloat16 (big-endian data is converted).
    normalized_shape : int or tuple of int
        The trailing dimensions to normalize over: ``x.shape[-D:]`` for D of them.
    weight : array_like, optional
        Elementwise scale of shape `normalized_shape`; None: 1.  float32 or float64 (or, for
        float16/bfloat16 x, a 2-byte float dtype), converted to the dtype of x's arithmetic.
    eps : float or None, default None
        Added to the mean square; finite and >= 0.  None: the machine epsilon of x's dtype
        (``np.finfo(x.dtype).eps``; float32's for float16/bfloat16 x), as PyTorch.
    out : ndarray, optional
        Array to receive y: x's shape and dtype, writable; it may be x itself.
    activation : {None, 'relu', 'silu'}, default None
        Applied to the scaled output in the same pass.

    Returns
    -------
    y : ndarray
        x's shape and dtype (`out` when given).
    rstd : ndarray
        ``1 / sqrt(mean(x**2) + eps)`` of each row, of x's leading shape ``x.shape[:-D]``, in
        x's dtype (float32 for float16/bfloat16 x).

    Raises
    ------
    TypeError
        x of another dtype (integer, bool, complex, int16/uint16, ...); normalized_shape
        holding something other than integers; weight of a dtype other than float32 and
        float64 (float16 and bfloat16 are accepted only with float16/bfloat16 x); eps neither
        None nor a real number; out not a numpy.ndarray.
    ValueError
        normalized_shape empty, holding a 0, or not equal to x's trailing dimensions; weight
        not of shape normalized_shape; eps negative, NaN or infinite; out of another shape or
        dtype than x, or read-only; an activation other than None, 'relu' and 'silu'.

    See Also
    --------
    rms_norm_backward : The gradients of this function.
    add_rms_norm : Residual add and RMS norm in one pass.
    RMSNorm : The layer.

    Notes
    -----
    Over the K values of each row::

        rstd = 1 / sqrt(sum(x**2) / K + eps)
        y = act(x * rstd * weight)

    This is ``torch.nn.functional.rms_norm(x, normalized_shape, weight, eps)``, including the
    default eps.  float16 and bfloat16 x are loaded and stored as 2-byte values and computed
    in float32.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 5, 8), dtype=np.float32)
    >>> w = rng.standard_normal(8, dtype=np.float32)
    >>> y, rstd = cnorm.rms_norm(x, 8, w, eps=1e-6)
    >>> y.shape, rstd.shape
    ((2, 5, 8), (2, 5))
    >>> np.allclose(y, x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-6) * w, atol=1e-5)
    True
    >>> y, rstd = cnorm.rms_norm(x, 8)                 # eps: float32's machine epsilon
    >>> np.allclose(rstd, 1 / np.sqrt((x**2).mean(-1) + np.finfo(np.float32).eps))
    True
    """
    act = 0 if activation is None else activation_code(activation)   # None: no call
    result = _kernels.row_norm_fast(x, normalized_shape, weight, None, eps, out, False, act)
    if result is not None:
        return result[0], result[2]
    x, dtype = _data_input(x)
    lead, norm = _normalized_shape(normalized_shape, x)
    weight = _param_for(weight, "weight", norm, x, dtype)
    eps = _rms_eps(eps, dtype)
    y, _, rstd = _row_forward(x, math.prod(lead), math.prod(norm), 1, 1, lead, weight, None, eps,
                              out, False, act, dtype)
    return y, rstd


@overload
def rms_norm_backward(dy: ArrayLike, x: ArrayLike, rstd: ArrayLike, normalized_shape: ShapeLike,
                      weight: None = None, *, out: Array | None = None,
                      activation: Activation = None) -> tuple[Array, None]: ...
@overload
def rms_norm_backward(dy: ArrayLike, x: ArrayLike, rstd: ArrayLike, normalized_shape: ShapeLike,
                      weight: ArrayLike, *, out: Array | None = None,
                      activation: Activation = None) -> tuple[Array, FloatArray]: ...
def rms_norm_backward(dy: ArrayLike, x: ArrayLike, rstd: ArrayLike, normalized_shape: ShapeLike,
                      weight: ArrayLike | None = None, *, out: Array | None = None,
                      activation: Activation = None) -> tuple[Array, FloatArray | None]:
    """Gradients of rms_norm: (dx, dweight).

    Takes the forward's input and its saved rstd and the gradient dy of the loss with respect
    to y.  With the forward's `activation`, the pre-activation is recomputed from x and rstd
    and its derivative is applied to dy first.

    Parameters
    ----------
    dy : array_like
        Gradient with respect to y: x's shape and dtype.
    x : array_like
        The forward's input, dtype float32, float64, float16 or bfloat16.
    rstd : array_like
        The forward's saved rstd, of x's leading shape ``x.shape[:-D]``; float32 or float64 (or
        x's float16/bfloat16 dtype), converted to the dtype of x's arithmetic.
    normalized_shape : int or tuple of int
        The forward's normalized trailing dimensions.
    weight : array_like, optional
        The forward's weight, of shape `normalized_shape`; None: 1, and dweight is not
        computed.
    out : ndarray, optional
        Array to receive dx: x's shape and dtype, writable; it may be dy or x.
    activation : {None, 'relu', 'silu'}, default None
        The forward's activation.

    Returns
    -------
    dx : ndarray
        Gradient with respect to x: x's shape and dtype (`out` when given).
    dweight : ndarray or None
        ``sum(dy * x_hat)`` over the leading dimensions, of shape `normalized_shape`, in x's
        dtype (float32 for float16/bfloat16 x); None when weight is None.

    Raises
    ------
    TypeError
        x or dy of another dtype than float32, float64, float16 and bfloat16, or dy of another
        dtype than x; normalized_shape holding something other than integers; rstd or weight
        of a dtype other than float32, float64 (or x's float16/bfloat16 dtype); out not a
        numpy.ndarray.
    ValueError
        dy of another shape than x; normalized_shape empty, holding a 0, or not equal to x's
        trailing dimensions; rstd None or not of x's leading shape; weight not of shape
        normalized_shape; out of another shape or dtype than x, or read-only; an activation
        other than None, 'relu' and 'silu'.

    See Also
    --------
    rms_norm : The forward.

    Notes
    -----
    With ``x_hat = x * rstd``, ``g = dy * weight`` and means over the K values of each row::

        dx = rstd * (g - x_hat * mean(g * x_hat))
        dweight = sum(dy * x_hat)                         (over the leading dimensions)

    With an activation, dy is first replaced by ``dy * act'(z)``, ``z = x_hat * weight``.
    These are the gradients PyTorch's autograd gives for ``torch.nn.functional.rms_norm``.
    For add_rms_norm, dx is the gradient of both x and residual (call this function with s).
    float16 and bfloat16 inputs are computed in float32; dx is rounded back to x's dtype.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, dy, w = rng.standard_normal((3, 8)), rng.standard_normal((3, 8)), np.arange(8.0)
    >>> y, rstd = cnorm.rms_norm(x, 8, w)
    >>> dx, dw = cnorm.rms_norm_backward(dy, x, rstd, 8, w)
    >>> xhat, g = x * rstd[:, None], dy * w
    >>> np.allclose(dx, rstd[:, None] * (g - xhat * (g * xhat).mean(-1, keepdims=True)))
    True
    >>> np.allclose(dw, (dy * xhat).sum(0)), cnorm.rms_norm_backward(dy, x, rstd, 8)[1]
    (True, None)
    """
    if activation is None:
        result = _kernels.row_backward_fast(dy, x, None, rstd, normalized_shape, weight, None,
                                            out, False)
        if result is not None:
            return result[0], result[1]
    if _row_backward_in_float32(x, dy, activation):
        return run_in_float32(rms_norm_backward, locals(), ("x", "dy"))
    x, dtype = _data_input(x)
    dy = _dy_like(dy, x)
    lead, norm = _normalized_shape(normalized_shape, x)
    weight = _param_for(weight, "weight", norm, x, dtype)
    dx, dweight, _ = _row_backward(dy, x, math.prod(lead), math.prod(norm), 1, 1, lead, norm,
                                   None, rstd, weight, out, False, want_dbias=False,
                                   activation=activation, dtype=dtype)
    return dx, dweight


# ---- fused residual add + row norm ------------------------------------------


@overload
def _add_norm(x: ArrayLike, residual: ArrayLike, normalized_shape: ShapeLike,
              weight: ArrayLike | None, bias: ArrayLike | None, eps: float | None,
              out: Array | None, sum_out: Array | None, center: Literal[True]
              ) -> tuple[Array, Array, FloatArray, FloatArray]: ...
@overload
def _add_norm(x: ArrayLike, residual: ArrayLike, normalized_shape: ShapeLike,
              weight: ArrayLike | None, bias: ArrayLike | None, eps: float | None,
              out: Array | None, sum_out: Array | None, center: bool
              ) -> tuple[Array, Array, FloatArray | None, FloatArray]: ...
def _add_norm(x: ArrayLike, residual: ArrayLike, normalized_shape: ShapeLike,
              weight: ArrayLike | None, bias: ArrayLike | None, eps: float | None,
              out: Array | None, sum_out: Array | None, center: bool
              ) -> tuple[Array, Array, FloatArray | None, FloatArray]:
    """(y, s, mean or None, rstd) of s = x + residual normalized per row."""
    x = as_float_array(x, "x")
    residual = as_float_array(residual, "residual")
    same_shape(residual, x, "residual")
    lead, norm = _normalized_shape(normalized_shape, x)
    weight = param(weight, "weight", norm, x.dtype)
    bias = param(bias, "bias", norm, x.dtype)
    eps = _rms_eps(eps, x.dtype) if not center else check_eps(eps)
    M, K = math.prod(lead), math.prod(norm)
    _check_row_sizes(M, K)
    check_out(out, x)
    if sum_out is not None:
        check_out(sum_out, x, "sum_out")
        if out is not None and np.may_share_memory(out, sum_out):
            raise ValueError("out and sum_out must not share memory")
    xc, rc = as_contiguous(x), as_contiguous(residual)
    s = kernel_output(sum_out, xc, rc, params=(weight, bias))
    y = kernel_output(out, xc, rc, params=(weight, bias))
    mean = np.empty(lead, x.dtype) if center else None
    rstd = np.empty(lead, x.dtype)
    if M > 0:
        _kernels.row_add_forward(xc, rc, M, K, center, eps, weight, bias, y, s, mean, rstd)
    return finish_output(y, out), finish_output(s, sum_out), mean, rstd


def _low_precision_sum(x: ArrayLike, residual: ArrayLike, normalized_shape: ShapeLike,
                       params: tuple[ArrayLike | None, ...], out: Array | None,
                       sum_out: Array | None) -> Array:
    """s = x + residual rounded to their float16/bfloat16 dtype, in a new
    array (the caller copies it into sum_out once the norm of s has passed
    its own checks, so a refused call writes nothing)."""
    x, residual = np.asarray(x), np.asarray(residual)
    if residual.dtype != x.dtype:
        raise TypeError(f"residual must have the dtype of x ({x.dtype}), got {residual.dtype}")
    same_shape(residual, x, "residual")
    _, norm = _normalized_shape(normalized_shape, x)
    for name, p in zip(("weight", "bias"), params):
        param(widen_param(p, name, x.dtype), name, norm, np.float32)
    for name, target in (("out", out), ("sum_out", sum_out)):
        if target is not None:
            check_out(target, x, name)
    if out is not None and sum_out is not None and np.may_share_memory(out, sum_out):
        raise ValueError("out and sum_out must not share memory")
    return downcast(upcast(x) + upcast(residual), x.dtype)


def _sum_into(s: Array, sum_out: Array | None) -> Array:
    """The low-precision sum s in the caller's sum_out (checked), or s."""
    if sum_out is None:
        return s
    np.copyto(sum_out, s)
    return sum_out


def add_layer_norm(x: ArrayLike, residual: ArrayLike, normalized_shape: ShapeLike,
                   weight: ArrayLike | None = None, bias: ArrayLike | None = None, *,
                   eps: float = 1e-5, out: Array | None = None, sum_out: Array | None = None
                   ) -> tuple[Array, Array, FloatArray, FloatArray]:
    """Residual add and layer norm in one pass: s = x + residual, then (y, s, mean, rstd).

    The sum s, the next block's residual in a transformer, is written a block of rows at a
    time and each row is normalized from cache, so s and y cost one pass instead of an add and
    a layer_norm.

    Parameters
    ----------
    x : array_like
        Input whose trailing dimensions are `normalized_shape`, dtype float32, float64, float16
        or bfloat16.
    residual : array_like
        Added to x: x's shape and dtype.
    normalized_shape : int or tuple of int
        The trailing dimensions to normalize over: ``x.shape[-D:]`` for D of them.
    weight : array_like, optional
        Elementwise scale of shape `normalized_shape`; None: 1.  float32 or float64 (or, for
        float16/bfloat16 x, a 2-byte float dtype), converted to the dtype of x's arithmetic.
    bias : array_like, optional
        Elementwise shift of shape `normalized_shape`; None: 0.  Dtypes as `weight`.
    eps : float, default 1e-5
        Added to the variance; finite and >= 0.
    out : ndarray, optional
        Array to receive y: x's shape and dtype, writable; it may be x or residual.
    sum_out : ndarray, optional
        Array to receive s: x's shape and dtype, writable; it may be x or residual (in place).
        out and sum_out must not share memory.

    Returns
    -------
    y : ndarray
        ``layer_norm(s)``: x's shape and dtype (`out` when given).
    s : ndarray
        ``x + residual`` rounded to x's dtype (`sum_out` when given).
    mean : ndarray
        The mean of each row of s, of x's leading shape ``x.shape[:-D]``, in x's dtype
        (float32 for float16/bfloat16 x).
    rstd : ndarray
        ``1 / sqrt(var + eps)`` of each row of s with the biased variance; mean's shape and
        dtype.

    Raises
    ------
    TypeError
        x or residual of another dtype than float32, float64, float16 and bfloat16, or
        residual of another dtype than x; normalized_shape holding something other than
        integers; weight or bias of a dtype other than float32 and float64 (float16 and
        bfloat16 are accepted only with float16/bfloat16 x); eps not a real number; out or
        sum_out not a numpy.ndarray.
    ValueError
        residual of another shape than x; normalized_shape empty, holding a 0, or not equal to
        x's trailing dimensions; weight or bias not of shape normalized_shape; eps negative,
        NaN or infinite; out or sum_out of another shape or dtype than x, or read-only; out
        and sum_out sharing memory.

    See Also
    --------
    layer_norm : The same normalization without the add.
    layer_norm_backward : The backward, applied to s.
    add_rms_norm : The same with RMS norm.

    Notes
    -----
    ::

        s = x + residual
        y = (s - mean(s)) / sqrt(var(s) + eps) * weight + bias      (per row, biased var)

    y is the layer norm of the s returned (after its rounding to x's dtype), the same as
    ``torch.nn.functional.layer_norm(x + residual, normalized_shape, weight, bias, eps)``.  The
    gradient of y with respect to s, which is also that of x and of residual, is
    ``layer_norm_backward(dy, s, mean, rstd, normalized_shape, weight)``.  float16 and bfloat16
    inputs: s is rounded to x's dtype first, then normalized as layer_norm does.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 4, 8), dtype=np.float32)
    >>> residual = rng.standard_normal((2, 4, 8), dtype=np.float32)
    >>> y, s, mean, rstd = cnorm.add_layer_norm(x, residual, 8)
    >>> np.array_equal(s, x + residual), mean.shape
    (True, (2, 4))
    >>> np.allclose(y, cnorm.layer_norm(x + residual, 8)[0], atol=1e-6)
    True
    >>> y, s, mean, rstd = cnorm.add_layer_norm(x, residual, 8, sum_out=residual)
    >>> s is residual
    True
    """
    if is_low_precision(x) or is_low_precision(residual):
        # s rounded to x's dtype first: y is the norm of the s returned
        s = _low_precision_sum(x, residual, normalized_shape, (weight, bias), out, sum_out)
        y, mean, rstd = layer_norm(s, normalized_shape, weight, bias, eps=eps, out=out)
        return y, _sum_into(s, sum_out), mean, rstd
    y, s, mean, rstd = _add_norm(x, residual, normalized_shape, weight, bias, eps, out, sum_out,
                                 True)
    return y, s, mean, rstd


def add_rms_norm(x: ArrayLike, residual: ArrayLike, normalized_shape: ShapeLike,
                 weight: ArrayLike | None = None, *, eps: float | None = None,
                 out: Array | None = None, sum_out: Array | None = None
                 ) -> tuple[Array, Array, FloatArray]:
    """Residual add and RMS norm in one pass: s = x + residual, then (y, s, rstd).

    As add_layer_norm, with rms_norm in place of layer_norm: s is written a block of rows at a
    time and each row is normalized from cache.

    Parameters
    ----------
    x : array_like
        Input whose trailing dimensions are `normalized_shape`, dtype float32, float64, float16
        or bfloat16.
    residual : array_like
        Added to x: x's shape and dtype.
    normalized_shape : int or tuple of int
        The trailing dimensions to normalize over: ``x.shape[-D:]`` for D of them.
    weight : array_like, optional
        Elementwise scale of shape `normalized_shape`; None: 1.  float32 or float64 (or, for
        float16/bfloat16 x, a 2-byte float dtype), converted to the dtype of x's arithmetic.
    eps : float or None, default None
        Added to the mean square; finite and >= 0.  None: the machine epsilon of x's dtype
        (float32's for float16/bfloat16 x), as rms_norm.
    out : ndarray, optional
        Array to receive y: x's shape and dtype, writable; it may be x or residual.
    sum_out : ndarray, optional
        Array to receive s: x's shape and dtype, writable; it may be x or residual (in place).
        out and sum_out must not share memory.

    Returns
    -------
    y : ndarray
        ``rms_norm(s)``: x's shape and dtype (`out` when given).
    s : ndarray
        ``x + residual`` rounded to x's dtype (`sum_out` when given).
    rstd : ndarray
        ``1 / sqrt(mean(s**2) + eps)`` of each row of s, of x's leading shape
        ``x.shape[:-D]``, in x's dtype (float32 for float16/bfloat16 x).

    Raises
    ------
    TypeError
        x or residual of another dtype than float32, float64, float16 and bfloat16, or
        residual of another dtype than x; normalized_shape holding something other than
        integers; weight of a dtype other than float32 and float64 (float16 and bfloat16 are
        accepted only with float16/bfloat16 x); eps neither None nor a real number; out or
        sum_out not a numpy.ndarray.
    ValueError
        residual of another shape than x; normalized_shape empty, holding a 0, or not equal to
        x's trailing dimensions; weight not of shape normalized_shape; eps negative, NaN or
        infinite; out or sum_out of another shape or dtype than x, or read-only; out and
        sum_out sharing memory.

    See Also
    --------
    rms_norm : The same normalization without the add.
    rms_norm_backward : The backward, applied to s.
    add_layer_norm : The same with layer norm.

    Notes
    -----
    ::

        s = x + residual
        y = s / sqrt(mean(s**2) + eps) * weight          (per row)

    y is the RMS norm of the s returned, the same as ``torch.nn.functional.rms_norm(x +
    residual, normalized_shape, weight, eps)``.  The gradient with respect to s (and so to x
    and to residual) is ``rms_norm_backward(dy, s, rstd, normalized_shape, weight)``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((2, 4, 8), dtype=np.float32)
    >>> residual = rng.standard_normal((2, 4, 8), dtype=np.float32)
    >>> y, s, rstd = cnorm.add_rms_norm(x, residual, 8, eps=1e-6)
    >>> np.array_equal(s, x + residual), rstd.shape
    (True, (2, 4))
    >>> np.allclose(y, s / np.sqrt((s**2).mean(-1, keepdims=True) + 1e-6), atol=1e-6)
    True
    """
    if is_low_precision(x) or is_low_precision(residual):
        s = _low_precision_sum(x, residual, normalized_shape, (weight,), out, sum_out)
        y, rstd = rms_norm(s, normalized_shape, weight, eps=eps, out=out)
        return y, _sum_into(s, sum_out), rstd
    y, s, _, rstd = _add_norm(x, residual, normalized_shape, weight, None, eps, out, sum_out,
                              False)
    return y, s, rstd

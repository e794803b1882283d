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
from cnorm.lowp import downcast, is_low_precision, run_in_float32, upcast
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
        x = np.asarray(x)
        return x.astype(x.dtype.newbyteorder("="), copy=False), np.dtype(np.float32)
    x = as_float_array(x, "x")
    return x, x.dtype


def _param_for(p: ArrayLike | None, name: str, shape: tuple[int, ...], x: Array,
               dtype: np.dtype[Any], optional: bool = True) -> Any:
    """param() in the arithmetic dtype; for float16/bfloat16 x the array may
    also have x's dtype."""
    if dtype != x.dtype and is_low_precision(p):
        p = upcast(p)
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
    x = as_float_array(x, "x")
    N, C, S = channel_view(x, axis)
    if N * S < 2:
        raise ValueError(
            f"training needs more than one value per channel, got input of shape {x.shape} "
            f"with channel axis {axis}"
        )
    weight = param(weight, "weight", (C,), x.dtype)
    bias = param(bias, "bias", (C,), x.dtype)
    eps = check_eps(eps)
    if eps == 0.0:  # as PyTorch: a constant channel would give 0 * inf
        raise ValueError("eps must be > 0 for batch-norm training, got 0")
    check_out(out, x)
    xc = as_contiguous(x)
    y = kernel_output(out, xc, params=(weight, bias))
    mean = np.empty(C, np.float64)
    var = np.empty(C, np.float64)
    if renorm is None:
        _kernels.bn_forward_train(xc, N, C, S, weight, bias, eps, y, mean, var, None, act)
        return finish_output(y, out), mean, var, None
    r = np.empty(C, np.float64)
    d = np.empty(C, np.float64)
    _kernels.bn_forward_train(xc, N, C, S, weight, bias, eps, y, mean, var, (*renorm, r, d),
                              act)
    return finish_output(y, out), mean, var, (r, d)


def batch_norm_train(x: ArrayLike, weight: ArrayLike | None = None, bias: ArrayLike | None = None,
                     *, eps: float = 1e-5, axis: SupportsIndex = 1, out: Array | None = None,
                     mask: ArrayLike | None = None, activation: Activation = None
                     ) -> tuple[Array, FloatArray, FloatArray]:
    """Batch-norm training forward with the batch's own statistics.

    Returns (y, mean, invstd): mean and invstd = 1/sqrt(biased_var + eps) per
    channel, shape (C,), in x's dtype (float32 for float16/bfloat16 x: see
    cnorm.lowp), what batch_norm_backward needs.
    mask (bool, broadcastable to x, size 1 on the channel axis): only the
    positions where it is True enter the statistics; every position is
    normalized (padded sequences).  activation (None, "relu", "silu"):
    y = act(x_hat * weight + bias), in the same pass."""
    act = activation_code(activation)
    if mask is None:
        result = None if act else _kernels.bn_train_fast(x, weight, bias, eps, axis, out)
        if result is not None:
            return result
    if is_low_precision(x):
        return run_in_float32(batch_norm_train, locals(), ("x",))
    if mask is None:
        y, mean, var = batch_statistics(x, weight, bias, eps, axis, out, act)
    else:
        y, mean, var, _ = masked_batch_statistics(x, weight, bias, eps, axis, out, mask, act)
    return (y, *saved_statistics(mean, var, float(eps), y.dtype))


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
    shift = np.zeros(C, x.dtype) if bias is None else bias
    _kernels.channel_standardize(xc, N, C, S, mean, scale.astype(x.dtype), shift, y, act)
    return finish_output(y, out), moments.mean, var, count


def channel_preactivation_grad(dy: Array, x: Array, view: tuple[int, int, int], mean: FloatArray,
                               invstd: FloatArray, weight: FloatArray | None,
                               bias: FloatArray | None, activation: str | None) -> Array:
    """dy * act'(z) with z = (x - mean) * invstd * weight + bias recomputed
    (one kernel pass), in a new array."""
    N, C, S = view
    z = np.empty_like(x)
    scale = invstd.astype(np.float64) * (1.0 if weight is None else weight)
    shift = np.zeros(C, x.dtype) if bias is None else bias
    _kernels.channel_standardize(x, N, C, S, mean, scale.astype(x.dtype), shift, z)
    return activation_grad(dy, z, activation)


def masked_input_gradient(dy: Array, x: Array, view: tuple[int, int, int], mean: FloatArray,
                          invstd: FloatArray, weight: FloatArray | None,
                          sum_dy: NDArray[np.float64], sum_dy_xhat: NDArray[np.float64],
                          count: int, dx: Array, mask: NDArray[np.bool_]) -> Array:
    """dx = weight * invstd * (dy - mask * (sum_dy + x_hat * sum_dy_xhat) / count)
    in x's dtype, into dx (C-contiguous, x's shape): masked batch norm's
    input gradient (mask: x's shape with size 1 on the channel axis)."""
    N, C, S = view
    if N * S == 0:
        return dx
    inv = invstd.astype(np.float64)
    k1 = inv if weight is None else weight.astype(np.float64) * inv
    col = (C, 1)
    t = x.dtype
    d = dx.reshape(N, C, S)
    np.subtract(x.reshape(N, C, S), mean.reshape(col), out=d)
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
    """Batch-norm inference: y = act((x - running_mean) / sqrt(running_var + eps) * weight
    + bias)."""
    act = activation_code(activation)
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

    dweight = sum(dy * x_hat) is None when weight is None; dbias = sum(dy) is
    always returned.  out= receives dx and may be dy or x.  mask: the one
    the forward took (the statistics' positions).  activation and bias: the
    forward's; the pre-activation is recomputed from x and the statistics."""
    act = activation_code(activation)
    if mask is None and not act:
        result = _kernels.bn_backward_fast(dy, x, mean, invstd, weight, axis, out)
        if result is not None:
            return result
    if is_low_precision(x) or is_low_precision(dy):
        return run_in_float32(batch_norm_backward, locals(), ("x", "dy"))
    x = as_float_array(x, "x")
    dy = as_float_array(dy, "dy")
    same_shape(dy, x, "dy")
    N, C, S = channel_view(x, axis)
    mean = param(mean, "mean", (C,), x.dtype, optional=False)
    invstd = param(invstd, "invstd", (C,), x.dtype, optional=False)
    weight = param(weight, "weight", (C,), x.dtype)
    bias = param(bias, "bias", (C,), x.dtype)
    check_out(out, x)
    xc, dyc = as_contiguous(x), as_contiguous(dy)
    if act:
        dyc = channel_preactivation_grad(dyc, xc, (N, C, S), mean, invstd, weight, bias,
                                         activation)
    if mask is not None:
        m, count = channel_mask(mask, x, axis)
        if count == 0:
            raise ValueError("mask selects no position: the forward had no statistics")
    # Masked: the kernel's sums are the masked gradient's too, its dx (which
    # counts every position) is replaced; a fresh buffer, as dx may be dy.
    dx = (kernel_output(out, dyc, params=(xc, mean, invstd, weight)) if mask is None
          else np.empty_like(xc))
    sum_dy = np.empty(C, np.float64)
    sum_dy_xhat = np.empty(C, np.float64)
    _kernels.bn_backward(dyc, xc, N, C, S, mean, invstd, weight, dx, sum_dy, sum_dy_xhat)
    if mask is not None:
        masked_input_gradient(dyc, xc, (N, C, S), mean, invstd, weight, sum_dy, sum_dy_xhat,
                              count, dx, m)
    dweight = None if weight is None else sum_dy_xhat.astype(x.dtype)
    return finish_output(dx, out), dweight, sum_dy.astype(x.dtype)


# ---- row family: layer, group, instance and RMS norm ----------------------


def _normalized_shape(normalized_shape: Any, x: Array) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(leading shape, normalized shape) of x; the trailing dims must match
    (normalized_shape: unchecked, as the caller got it)."""
    shape = (normalized_shape,) if np.ndim(normalized_shape) == 0 else tuple(normalized_shape)
    try:  # operator.index: 16.7 and "16" are not sizes
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
                  activation: Activation = None, bias: ArrayLike | None = None
                  ) -> tuple[Array, FloatArray | None, FloatArray]: ...
@overload
def _row_backward(dy: Array, x: Array, M: int, K: int, G: int, S: int,
                  stat_shape: tuple[int, ...], param_shape: tuple[int, ...],
                  mean: ArrayLike | None, rstd: ArrayLike, weight: FloatArray | None,
                  out: Array | None, center: bool, want_dbias: bool = True,
                  activation: Activation = None, bias: ArrayLike | None = None
                  ) -> tuple[Array, FloatArray | None, FloatArray | None]: ...
def _row_backward(dy: Array, x: Array, M: int, K: int, G: int, S: int,
                  stat_shape: tuple[int, ...], param_shape: tuple[int, ...],
                  mean: ArrayLike | None, rstd: ArrayLike, weight: FloatArray | None,
                  out: Array | None, center: bool, want_dbias: bool = True,
                  activation: Activation = None, bias: ArrayLike | None = None
                  ) -> tuple[Array, FloatArray | None, FloatArray | None]:
    act = activation_code(activation)
    mean = param(mean, "mean", stat_shape, x.dtype, optional=not center)
    rstd = param(rstd, "rstd", stat_shape, x.dtype, optional=False)
    bias = param(bias, "bias", param_shape, x.dtype)
    _check_row_sizes(M, K)
    check_out(out, x)
    xc, dyc = as_contiguous(x), as_contiguous(dy)
    if act and M > 0:
        dyc = _row_dz(dyc, xc, (M, K, G, S), mean, rstd, weight, bias, activation)
    dx = kernel_output(out, dyc, params=(xc, mean, rstd, weight))   # dx may be dy, not x
    dweight = None if weight is None else np.zeros(param_shape, np.float64)
    dbias = np.zeros(param_shape, np.float64) if want_dbias else None
    if M > 0:
        _kernels.row_backward(dyc, xc, M, K, G, S, center, mean, rstd, weight, dx, dweight,
                              dbias)
    return finish_output(dx, out), _cast(dweight, x.dtype), _cast(dbias, x.dtype)


def _row_dz(dy: Array, x: Array, view: tuple[int, int, int, int], mean: FloatArray | None,
            rstd: FloatArray, weight: FloatArray | None, bias: FloatArray | None,
            activation: str | None) -> Array:
    """dy * act'(z) with z = x_hat * weight + bias recomputed per row (row m
    uses parameter row m % G, each parameter repeated over S values), in a
    new array."""
    M, K, G, S = view
    z = x.reshape(M, K).copy() if mean is None else x.reshape(M, K) - mean.reshape(M, 1)
    z *= rstd.reshape(M, 1)
    rows = z.reshape(M // G, G, K)
    if weight is not None:
        rows *= np.repeat(weight.reshape(G, K // S), S, axis=1)
    if bias is not None:
        rows += np.repeat(bias.reshape(G, K // S), S, axis=1)
    return activation_grad(dy.reshape(M, K), z, activation).reshape(x.shape)


def _cast(a: NDArray[np.float64] | None, dtype: np.dtype[Any]) -> FloatArray | None:
    return None if a is None else a.astype(dtype)


def _dy_like(dy: ArrayLike, x: Array) -> Array:
    dy = as_float_array(dy, "dy")
    same_shape(dy, x, "dy")
    return dy


def layer_norm(x: ArrayLike, normalized_shape: ShapeLike, weight: ArrayLike | None = None,
               bias: ArrayLike | None = None, *, eps: float = 1e-5, out: Array | None = None,
               activation: Activation = None) -> tuple[Array, FloatArray, FloatArray]:
    """Layer norm over the trailing dims given by normalized_shape, then
    activation (None, "relu", "silu") in the same pass.

    Returns (y, mean, rstd); mean and rstd have x's leading shape."""
    act = activation_code(activation)
    if not act:
        result = _kernels.layer_norm_fast(x, normalized_shape, weight, bias, eps, out)
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
    """Gradients of layer_norm: (dx, dweight, dbias); dweight is None when
    weight is.  activation and bias: the forward's (the pre-activation is
    recomputed from x and the saved statistics)."""
    if is_low_precision(x) or is_low_precision(dy):
        return run_in_float32(layer_norm_backward, locals(), ("x", "dy"))
    x = as_float_array(x, "x")
    dy = _dy_like(dy, x)
    lead, norm = _normalized_shape(normalized_shape, x)
    weight = param(weight, "weight", norm, x.dtype)
    return _row_backward(dy, x, math.prod(lead), math.prod(norm), 1, 1, lead, norm, mean, rstd,
                         weight, out, True, activation=activation, bias=bias)


def group_norm(x: ArrayLike, num_groups: SupportsIndex, weight: ArrayLike | None = None,
               bias: ArrayLike | None = None, *, eps: float = 1e-5, out: Array | None = None,
               activation: Activation = None) -> tuple[Array, FloatArray, FloatArray]:
    """Group norm of x (N, C, *) over groups of C/num_groups channels, then
    activation.

    Returns (y, mean, rstd) with mean and rstd of shape (N, num_groups)."""
    act = activation_code(activation)
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
    """Gradients of group_norm: (dx, dweight, dbias); dweight is None when weight is."""
    if is_low_precision(x) or is_low_precision(dy):
        return run_in_float32(group_norm_backward, locals(), ("x", "dy"))
    x = as_float_array(x, "x")
    dy = _dy_like(dy, x)
    N, C, S, G = _group_view(x, num_groups)
    weight = param(weight, "weight", (C,), x.dtype)
    return _row_backward(dy, x, N * G, C // G * S, G, S, (N, G), (C,), mean, rstd, weight, out,
                         True, activation=activation, bias=bias)


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
    """Instance norm of x (N, C, *): each (n, c) plane normalized on its own,
    then activation.

    Returns (y, mean, rstd) with mean and rstd of shape (N, C)."""
    act = activation_code(activation)
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
    """Gradients of instance_norm: (dx, dweight, dbias); dweight is None when weight is."""
    if is_low_precision(x) or is_low_precision(dy):
        return run_in_float32(instance_norm_backward, locals(), ("x", "dy"))
    x = as_float_array(x, "x")
    dy = _dy_like(dy, x)
    N, C, S = _instance_view(x)
    weight = param(weight, "weight", (C,), x.dtype)
    return _row_backward(dy, x, N * C, S, max(C, 1), S, (N, C), (C,), mean, rstd, weight, out,
                         True, activation=activation, bias=bias)


def _rms_eps(eps: float | None, dtype: np.dtype[Any]) -> float:
    """eps=None: the machine epsilon of x's dtype (PyTorch's rule)."""
    return float(np.finfo(dtype).eps) if eps is None else check_eps(eps)


def rms_norm(x: ArrayLike, normalized_shape: ShapeLike, weight: ArrayLike | None = None, *,
             eps: float | None = None, out: Array | None = None, activation: Activation = None
             ) -> tuple[Array, FloatArray]:
    """RMS norm over the trailing dims: y = act(x / sqrt(mean(x**2) + eps) * weight).

    eps=None uses the machine epsilon of x's dtype (as PyTorch).  Returns
    (y, rstd) with rstd of x's leading shape."""
    act = activation_code(activation)
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
    """Gradients of rms_norm: (dx, dweight); dweight is None when weight is."""
    if is_low_precision(x) or is_low_precision(dy):
        return run_in_float32(rms_norm_backward, locals(), ("x", "dy"))
    x = as_float_array(x, "x")
    dy = _dy_like(dy, x)
    lead, norm = _normalized_shape(normalized_shape, x)
    weight = param(weight, "weight", norm, x.dtype)
    dx, dweight, _ = _row_backward(dy, x, math.prod(lead), math.prod(norm), 1, 1, lead, norm,
                                   None, rstd, weight, out, False, want_dbias=False,
                                   activation=activation)
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
    """s = x + residual rounded to their float16/bfloat16 dtype (into sum_out),
    after every check, so that the norm of s is the norm of what is returned."""
    x, residual = np.asarray(x), np.asarray(residual)
    if residual.dtype != x.dtype:
        raise TypeError(f"residual must have the dtype of x ({x.dtype}), got {residual.dtype}")
    same_shape(residual, x, "residual")
    _, norm = _normalized_shape(normalized_shape, x)
    for name, p in zip(("weight", "bias"), params):
        param(upcast(p) if is_low_precision(p) else p, name, norm, np.float32)
    for name, target in (("out", out), ("sum_out", sum_out)):
        if target is not None:
            check_out(target, x, name)
    if out is not None and sum_out is not None and np.may_share_memory(out, sum_out):
        raise ValueError("out and sum_out must not share memory")
    return downcast(upcast(x) + upcast(residual), x.dtype, sum_out)


def add_layer_norm(x: ArrayLike, residual: ArrayLike, normalized_shape: ShapeLike,
                   weight: ArrayLike | None = None, bias: ArrayLike | None = None, *,
                   eps: float = 1e-5, out: Array | None = None, sum_out: Array | None = None
                   ) -> tuple[Array, Array, FloatArray, FloatArray]:
    """s = x + residual and layer_norm(s) in one pass: (y, s, mean, rstd).

    s is the next residual; sum_out may be x or residual (in place).  The
    backward is layer_norm_backward applied to s."""
    if is_low_precision(x) or is_low_precision(residual):
        # s rounded to x's dtype first: y is the norm of the s returned
        s = _low_precision_sum(x, residual, normalized_shape, (weight, bias), out, sum_out)
        y, mean, rstd = layer_norm(s, normalized_shape, weight, bias, eps=eps, out=out)
        return y, s, mean, rstd
    y, s, mean, rstd = _add_norm(x, residual, normalized_shape, weight, bias, eps, out, sum_out,
                                 True)
    return y, s, mean, rstd


def add_rms_norm(x: ArrayLike, residual: ArrayLike, normalized_shape: ShapeLike,
                 weight: ArrayLike | None = None, *, eps: float | None = None,
                 out: Array | None = None, sum_out: Array | None = None
                 ) -> tuple[Array, Array, FloatArray]:
    """s = x + residual and rms_norm(s) in one pass: (y, s, rstd); as add_layer_norm."""
    if is_low_precision(x) or is_low_precision(residual):
        s = _low_precision_sum(x, residual, normalized_shape, (weight,), out, sum_out)
        y, rstd = rms_norm(s, normalized_shape, weight, eps=eps, out=out)
        return y, s, rstd
    y, s, _, rstd = _add_norm(x, residual, normalized_shape, weight, None, eps, out, sum_out,
                              False)
    return y, s, rstd

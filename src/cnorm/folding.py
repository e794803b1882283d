"""Folding an inference batch norm into the preceding Linear/Conv layer.

BN(W x + b) = (W x + b - mean) * s + beta with s = gamma / sqrt(var + eps),
so the folded layer is W' = W * s (per output channel) and
b' = (b - mean) * s + beta: one layer instead of two at inference.
"""
from __future__ import annotations

from typing import SupportsIndex

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cnorm._typing import FloatArray
from cnorm._validate import check_eps, normalize_axis
from cnorm.lowp import downcast, is_low_dtype

__all__ = ["fold_batch_norm"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def fold_batch_norm(
    weight: ArrayLike,
    bias: ArrayLike | None,
    running_mean: ArrayLike,
    running_var: ArrayLike,
    bn_weight: ArrayLike | None = None,
    bn_bias: ArrayLike | None = None,
    *,
    eps: float = 1e-5,
    axis: SupportsIndex = 0,
) -> tuple[FloatArray, FloatArray]:
    """Fold an eval-mode batch norm into the preceding Linear or convolution layer.

    Returns the weight and bias of one layer that computes the preceding layer followed by
    ``batch_norm_infer`` with the given statistics and parameters, so that inference runs one
    layer instead of two.

    Parameters
    ----------
    weight : array_like
        The layer's weight, of at least 1 dimension, dtype float16, bfloat16, float32 or
        float64: (out, in) for a Linear, (O, I, kh, kw) for a convolution, (I, O, kh, kw) for a
        transposed convolution.
    bias : array_like or None
        The layer's bias, shape (C,) with C = ``weight.shape[axis]``; None: no bias (0).
    running_mean : array_like
        The batch norm's mean, shape (C,).
    running_var : array_like
        The batch norm's variance, shape (C,).
    bn_weight : array_like, optional
        The batch norm's scale (gamma), shape (C,); None: 1.
    bn_bias : array_like, optional
        The batch norm's shift (beta), shape (C,); None: 0.
    eps : float, default 1e-5
        The batch norm's eps; finite and >= 0.
    axis : int, default 0
        The output-channel axis of weight: 0 for a Linear or a convolution, 1 for a transposed
        convolution.

    Returns
    -------
    folded_weight : ndarray
        weight's shape and dtype: ``weight * scale`` along `axis`.
    folded_bias : ndarray
        Shape (C,), in bias's dtype (weight's when bias is None):
        ``(bias - running_mean) * scale + bn_bias``.

    Raises
    ------
    TypeError
        weight, bias, running_mean, running_var, bn_weight or bn_bias of a dtype other than
        float16, bfloat16, float32 and float64; eps not a real number; axis not an integer.
    ValueError
        weight with 0 dimensions; axis out of range; bias, running_mean, running_var,
        bn_weight or bn_bias not of shape (C,); eps negative, NaN or infinite;
        ``running_var + eps`` not > 0 in some channel (NaN included).

    See Also
    --------
    batch_norm_infer : The batch norm folded in.
    BatchNorm.fold_into : The same with a BatchNorm's own statistics and parameters.

    Notes
    -----
    With ``scale = bn_weight / sqrt(running_var + eps)`` per output channel::

        BN(W x + b) = (W x + b - running_mean) * scale + bn_bias = W' x + b'
        W' = W * scale,  b' = (b - running_mean) * scale + bn_bias

    The arithmetic is float64; only the results are rounded to their dtypes.  This is what
    ``torch.nn.utils.fusion.fuse_conv_bn_weights`` and ``fuse_linear_bn_weights`` compute.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> W, b = rng.standard_normal((4, 3)), rng.standard_normal(4)     # Linear(3, 4)
    >>> mean, var = rng.standard_normal(4), rng.uniform(0.5, 2.0, 4)
    >>> gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    >>> W2, b2 = cnorm.fold_batch_norm(W, b, mean, var, gamma, beta)
    >>> x = rng.standard_normal((5, 3))
    >>> np.allclose(x @ W2.T + b2, cnorm.batch_norm_infer(x @ W.T + b, mean, var, gamma, beta))
    True
    >>> W2.shape, b2.shape
    ((4, 3), (4,))
    """
    weight = _floats(weight, "weight")
    if weight.ndim == 0:
        raise ValueError("weight must have at least 1 dimension (its output channels)")
    a = normalize_axis(axis, weight.ndim)
    C = weight.shape[a]
    mean = _per_channel(running_mean, "running_mean", C)
    var = _per_channel(running_var, "running_var", C)
    eps = check_eps(eps)
    if not np.all(var + eps > 0):
        raise ValueError("running_var + eps must be > 0 in every channel")
    gamma = 1.0 if bn_weight is None else _per_channel(bn_weight, "bn_weight", C)
    beta = 0.0 if bn_bias is None else _per_channel(bn_bias, "bn_bias", C)
    b = 0.0 if bias is None else _per_channel(bias, "bias", C)
    scale = gamma / np.sqrt(var + eps)
    shape = [1] * weight.ndim
    shape[a] = C
    folded_weight = _rounded(weight.astype(np.float64) * scale.reshape(shape), weight.dtype)
    bias_dtype = weight.dtype if bias is None else _floats(bias, "bias").dtype
    folded_bias = _rounded((b - mean) * scale + beta, bias_dtype)
    return folded_weight, folded_bias


def _floats(a: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(a)
    native = arr.dtype.newbyteorder("=")
    if native not in _FLOATS and not is_low_dtype(native):
        raise TypeError(f"{name} must have dtype float16, bfloat16, float32 or float64, got "
                        f"{arr.dtype}")
    return arr.astype(native, copy=False)


def _rounded(values: NDArray[np.float64], dtype: np.dtype) -> FloatArray:
    """float64 values rounded to nearest even in dtype.  bfloat16 goes through
    float32 (NumPy has no direct cast): within 1 ulp of bfloat16, as the
    low-precision kernels are."""
    if dtype.name == "bfloat16":
        return downcast(values.astype(np.float32), dtype)
    return values.astype(dtype)


def _per_channel(a: ArrayLike, name: str, C: int) -> NDArray[np.float64]:
    arr = _floats(a, name)
    if arr.shape != (C,):
        raise ValueError(f"{name} must have shape ({C},) (the output channels of weight on "
                         f"axis), got {arr.shape}")
    return arr.astype(np.float64)

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

__all__ = ["fold_batch_norm"]

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


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
    """(weight', bias') of the preceding layer with an eval-mode batch norm
    folded in.

    axis is the output-channel axis of weight: 0 for a Linear (out, in) or a
    Conv (O, I, kh, kw), 1 for a transposed convolution (I, O, kh, kw).  bias,
    bn_weight (gamma) and bn_bias (beta) may be None.  Arithmetic in float64;
    weight' keeps weight's dtype, bias' keeps bias's (weight's when None)."""
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
    folded_weight = (weight.astype(np.float64) * scale.reshape(shape)).astype(weight.dtype)
    bias_dtype = weight.dtype if bias is None else _floats(bias, "bias").dtype
    folded_bias = ((b - mean) * scale + beta).astype(bias_dtype)
    return folded_weight, folded_bias


def _floats(a: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(a)
    if arr.dtype.newbyteorder("=") not in _FLOATS:
        raise TypeError(f"{name} must have dtype float16, float32 or float64, got {arr.dtype}")
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def _per_channel(a: ArrayLike, name: str, C: int) -> NDArray[np.float64]:
    arr = _floats(a, name)
    if arr.shape != (C,):
        raise ValueError(f"{name} must have shape ({C},) (the output channels of weight on "
                         f"axis), got {arr.shape}")
    return arr.astype(np.float64)

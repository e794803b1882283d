"""The activations fused into the forward kernels (y = act(normalized *
weight + bias)) and their derivatives for the backward functions, which
recompute the pre-activation from x and the saved statistics."""
from __future__ import annotations

import numpy as np

from cnorm._typing import Array

__all__ = ["ACTIVATIONS", "activation_code", "activation_grad"]

# Names accepted by activation= and the kernels' CNORM_ACT_* codes.
ACTIVATIONS: dict[str | None, int] = {None: 0, "relu": 1, "silu": 2}


def activation_code(activation: object) -> int:
    """The kernel code of activation=; ValueError naming the accepted values."""
    if isinstance(activation, str) or activation is None:
        code = ACTIVATIONS.get(activation)
        if code is not None:
            return code
    raise ValueError(f"activation must be None, 'relu' or 'silu', got {activation!r}")


def activation_grad(dy: Array, z: Array, activation: str | None) -> Array:
    """dL/dz = dy * act'(z), in z's buffer (z: the recomputed pre-activation,
    a scratch array of x's dtype and shape).  relu' is 0 where z <= 0 and
    1 elsewhere, NaN included (PyTorch's threshold_backward: the gradient
    passes where the output, max(z, 0), is not <= 0); silu'(z) = s * (1 + z
    * (1 - s)), s = sigmoid(z)."""
    if activation == "relu":
        np.less_equal(z, 0, out=z)  # 1.0 / 0.0 in z's dtype, then 0.0 / 1.0
        np.subtract(1, z, out=z)
        z *= dy
        return z
    with np.errstate(over="ignore"):
        s = np.exp(-z)              # sigmoid without overflow warnings: 1 / (1 + e^-z)
    s += 1
    np.reciprocal(s, out=s)
    # s * (1 + z * (1 - s)) = s + z * s * (1 - s)
    t = 1 - s
    t *= s
    z *= t
    z += s
    z *= dy
    return z

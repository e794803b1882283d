"""Argument checks shared by the functional API.

Every check runs before any kernel writes, so a failing call leaves out= and
running statistics untouched.  Messages name the argument, what was expected
and what was given.
"""
import math
import operator

import numpy as np

from cnorm._kernels import same_buffer

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# Largest size a layer's parameters may have: beyond it no array can exist
# (and int64 element counts would overflow), so it is a ValueError, not NumPy's.
MAX_SIZE = 2**62


def as_float_array(a, name):
    """Data array a (x, dy, residual) as an ndarray of float32/float64 in
    native byte order (no copy when it already is one; big-endian data from
    files is converted)."""
    arr = np.asarray(a)
    if not arr.dtype.isnative and arr.dtype.newbyteorder("=") in FLOAT_DTYPES:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype not in FLOAT_DTYPES:   # float16 and bfloat16 took the low-precision path
        raise TypeError(f"{name} must have dtype float32, float64, float16 or bfloat16, "
                        f"got {arr.dtype}")
    return arr


def as_contiguous(a, dtype=None):
    """a as the kernels read it: C-contiguous and aligned (a float32 view at
    an odd byte offset of a buffer is not), of dtype when given; copies only
    when a is not already such an array."""
    if (dtype is None or a.dtype == dtype) and a.flags.c_contiguous and a.flags.aligned:
        return a
    return np.require(a, dtype, ("C_CONTIGUOUS", "ALIGNED"))


def check_eps(eps, name="eps", minimum=0.0):
    """eps (or another real argument: BatchRenorm's rmax, dmax) as a finite
    float >= minimum."""
    if isinstance(eps, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, got {eps!r}")
    try:
        value = float(eps)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {eps!r}") from None
    except OverflowError:
        raise ValueError(f"{name} must be finite and >= {minimum:g}, got an integer beyond "
                         "float's range") from None
    if not math.isfinite(value) or value < minimum:
        raise ValueError(f"{name} must be finite and >= {minimum:g}, got {eps!r}")
    return value


def check_momentum(momentum):
    if momentum is None:
        return None
    if isinstance(momentum, (str, bytes, bool, np.bool_)):
        raise TypeError(f"momentum must be a number in [0, 1] or None, got {momentum!r}")
    try:
        value = float(momentum)
    except (TypeError, ValueError):
        raise TypeError(f"momentum must be a number in [0, 1] or None, got {momentum!r}") from None
    except OverflowError:
        raise ValueError("momentum must be in [0, 1] or None, got an integer beyond float's "
                         "range") from None
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"momentum must be in [0, 1] or None, got {momentum!r}")
    return value


def check_positive_int(value, name, maximum=None):
    """value as an int in [1, maximum]; a bool is not a count (TypeError), as
    in PyTorch."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if n < 1:
        raise ValueError(f"{name} must be >= 1, got {n}")
    if maximum is not None and n > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {n}")
    return n


def check_ndim(x, minimum, name="x"):
    if x.ndim < minimum:
        raise ValueError(f"{name} must have at least {minimum} dimensions, got shape {x.shape}")


def normalize_axis(axis, ndim):
    # A bool is not an axis (NumPy and PyTorch refuse it): axis=True would
    # silently be axis 1.
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    try:
        a = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an integer, got {axis!r}") from None
    if not -ndim <= a < ndim:
        raise ValueError(f"axis {axis} is out of range for an input with {ndim} dimensions")
    return a % ndim


def param(p, name, shape, dtype, *, optional=True):
    """Parameter array of exactly `shape`, C-contiguous, converted to dtype."""
    if p is None:
        if optional:
            return None
        raise ValueError(f"{name} is required")
    arr = np.asarray(p)
    if arr.dtype.newbyteorder("=") not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {arr.dtype}")
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    return as_contiguous(arr, dtype)


def same_shape(a, x, name):
    if a.shape != x.shape:
        raise ValueError(f"{name} must have the shape of x {x.shape}, got {a.shape}")
    if a.dtype != x.dtype:
        raise TypeError(f"{name} must have the dtype of x ({x.dtype}), got {a.dtype}")


def check_out(out, x, name="out"):
    """Validate an output array against x (shape, dtype, writable); None passes."""
    if out is None:
        return
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError(
            f"{name} must have shape {x.shape} and dtype {x.dtype}, "
            f"got shape {out.shape} and dtype {out.dtype}"
        )
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writable, got a read-only array")


def kernel_output(out, *inputs, params=()):
    """Array the kernel writes into: out itself when the kernel can write it
    directly (C-contiguous and aligned, either exactly one of the inputs or sharing no
    memory with them, and sharing none with the parameters it reads, which
    may be None), else a fresh array that finish_output copies into out."""
    like = inputs[0]
    if out is None:
        return np.empty(like.shape, like.dtype)
    if out.flags.c_contiguous and out.flags.aligned and all(
        same_buffer(out, a) or not np.may_share_memory(out, a) for a in inputs
    ) and not any(p is not None and np.may_share_memory(out, p) for p in params):
        return out
    return np.empty(like.shape, like.dtype)


def finish_output(result, out):
    if out is None or result is out:
        return result
    np.copyto(out, result)
    return out

"""float16 and bfloat16 inputs: float32 arithmetic, outputs rounded back.

Every function of cnorm.functional and every layer accepts x (and dy,
residual) of numpy.float16 or ml_dtypes.bfloat16.  bfloat16 is recognised by
its dtype name, so ml_dtypes stays optional.  The data is converted to
float32 (exact), the float32 kernels run, and every output shaped like x is
rounded to x's dtype, to nearest even (NaN stays NaN); saved statistics and
parameter gradients stay float32.  Parameters and running statistics may be
float32 or x's dtype.
"""
import functools
import inspect

import numpy as np

from cnorm import _kernels
from cnorm._validate import as_contiguous, check_out

__all__ = ["downcast", "is_low_dtype", "is_low_precision", "run_in_float32", "upcast"]


def is_low_dtype(dt):
    """True for float16 and bfloat16 (by name: ml_dtypes need not be imported)."""
    return isinstance(dt, np.dtype) and dt.itemsize == 2 and (
        dt.kind == "f" or dt.name == "bfloat16")


def is_low_precision(a):
    """True for an array (or array-like with a dtype) of float16 or bfloat16."""
    return is_low_dtype(getattr(a, "dtype", None))


def arithmetic_dtype(dt):
    """The dtype of arithmetic and statistics for data of dtype dt: float32
    for float16/bfloat16, else dt."""
    return np.dtype(np.float32) if is_low_dtype(dt) else dt


def native_low(a):
    """A float16/bfloat16 array-like as an array in native byte order (a
    itself when it already is one)."""
    arr = np.asarray(a)
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def upcast(a):
    """a as a new float32 array (exact for float16 and bfloat16: the C
    conversion; anything else through NumPy)."""
    arr = np.asarray(a)
    if not is_low_dtype(arr.dtype) or not arr.dtype.isnative:
        return arr.astype(np.float32)
    bits = as_contiguous(arr).view(np.uint16)
    out = np.empty(arr.shape, np.float32)
    _kernels.low_to_float32(bits, out, arr.dtype.kind != "f")
    return out


def widen_param(p, name, low):
    """A parameter or statistic of float16/bfloat16 data: in the data's dtype
    `low`, float32 (exact); another 2-byte float, TypeError naming it; anything
    else as it is (float32/float64 are checked by the caller).  Byte order
    does not matter."""
    if not is_low_precision(p):
        return p
    if p.dtype.newbyteorder("=") != low.newbyteorder("="):
        raise TypeError(f"{name} must have dtype float32, float64 or that of x ({low}), "
                        f"got {p.dtype}")
    return upcast(p)


def downcast(a, dtype, out=None):
    """float32 a rounded to nearest even into float16/bfloat16 `dtype` (into
    out, C-contiguous or not, when given)."""
    src = as_contiguous(np.asarray(a), np.float32)
    direct = out is not None and out.flags.c_contiguous and out.flags.aligned
    target = out if direct else np.empty(src.shape, dtype)
    _kernels.float32_to_low(src, target.view(np.uint16), dtype.kind != "f")
    if out is not None and target is not out:
        out[...] = target
    return out if out is not None else target


def run_in_float32(fn, arguments, data):
    """fn called again with the low-precision arrays in float32.

    arguments: fn's parameters by name (the caller's locals(); extra names
    are ignored); data: the names of the array arguments of x's dtype
    (x first); the first result is shaped like x and returns in x's dtype.
    Called from inside fn once it knows its input is
    low-precision, so float32/float64 calls pay nothing."""
    names = _parameters(fn)
    arguments = {name: arguments[name] for name in names}
    first = np.asarray(arguments[data[0]])
    low = first.dtype
    for name in data:
        value = np.asarray(arguments[name])
        if value.dtype != low:
            raise TypeError(f"{name} must have the dtype of {data[0]} ({low}), got {value.dtype}")
        arguments[name] = upcast(value)
    for name, value in arguments.items():   # parameters and statistics in x's dtype
        if name not in data and name not in ("out", "mask"):   # a mask is checked as it is
            arguments[name] = widen_param(value, name, low)
    target = arguments.get("out")
    if target is not None:
        check_out(target, first)
        arguments["out"] = None
    return _round_first(fn(**arguments), low, target)


@functools.cache
def _parameters(fn):
    return tuple(inspect.signature(fn).parameters)


def _round_first(result, low, target):
    """The result shaped like x (the first) back to x's dtype, into out= when given."""
    single = not isinstance(result, tuple)
    items = [result] if single else list(result)
    items[0] = downcast(items[0], low, target)
    return items[0] if single else tuple(items)

"""State objects: parameters, running statistics and the train/eval protocol.

Every layer follows one protocol (docs/design.md): created in training
mode; ``layer(x)`` runs the forward for the current mode; ``train()`` /
``eval()``; ``layer.backward(dy)`` after a training-mode forward sets
``grad_weight`` / ``grad_bias``; parameters and buffers are NumPy arrays under
PyTorch's names, and ``state_dict()`` / ``load_state_dict()`` use PyTorch's
keys.

Concurrency: eval-mode calls only read the object.  A training step (kernel,
running-statistics update, saved tensors for backward) runs under a
per-object lock, so concurrent training calls never interleave half-updates.
"""
from __future__ import annotations

import math
import operator
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Optional, SupportsIndex, cast

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from cnorm import _kernels
from cnorm import functional as F
from cnorm._typing import Activation, Array, FloatArray, ShapeLike
from cnorm._validate import (
    FLOAT_DTYPES,
    as_contiguous,
    as_float_array,
    check_eps,
    check_momentum,
    check_positive_int,
    normalize_axis,
    param,
    same_shape,
)
from cnorm.activation import activation_code
from cnorm.folding import fold_batch_norm
from cnorm.lowp import (
    arithmetic_dtype,
    downcast,
    is_low_dtype,
    is_low_precision,
    native_low,
    upcast,
)
from cnorm.statistics import Moments

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["BatchNorm", "BatchRenorm", "GroupNorm", "InstanceNorm", "LayerNorm", "RMSNorm"]

# (dx, grad_weight, grad_bias) of a backward
_Grads = tuple[Array, Optional[FloatArray], Optional[FloatArray]]


# Saved inputs from this size up are reused (see _Layer._private_copy);
# below it glibc serves the allocation from its heap without page faults
# (its default mmap threshold is 128 KiB) and the checks would cost more.
_REUSE_BYTES = 1 << 17


class _Layer:
    """Shared protocol; subclasses define _forward_train/_forward_eval/_backward."""

    _state_names: ClassVar[tuple[str, ...]] = ("weight", "bias")
    # Whether float16/bfloat16 x goes to the functional API as it is (its
    # 2-byte kernels), or is converted to float32 around the layer's own
    # arithmetic in x's dtype (BatchRenorm, SyncBatchNorm; and every call
    # with a mask).
    _low_precision_kernels: ClassVar[bool] = True

    weight: FloatArray | None
    bias: FloatArray | None
    grad_weight: FloatArray | None
    grad_bias: FloatArray | None

    def __init__(self, dtype: DTypeLike, activation: Activation = None) -> None:
        activation_code(activation)   # ValueError for an unknown name
        self.activation = activation
        self.dtype = _layer_dtype(dtype)
        # float16/bfloat16 layers keep parameters and running statistics in
        # float32 (PyTorch's mixed mode); inputs and outputs have their dtype.
        self._param_dtype: np.dtype[Any] = (np.dtype(np.float32) if is_low_dtype(self.dtype)
                                            else self.dtype)
        self.training = True
        self.grad_weight = None
        self.grad_bias = None
        # (what _forward_train saved for _backward, the input's float16/bfloat16 dtype or None)
        self._saved: tuple[Any, np.dtype[Any] | None] | None = None
        self._lock = threading.Lock()

    def train(self, mode: bool = True) -> Self:
        """Set training mode, or eval mode with ``mode=False``.

        In training mode ``layer(x)`` normalizes with the statistics of x,
        updates the running statistics (layers that track them) and saves
        what backward() needs.  In eval mode it normalizes with the running
        statistics where the layer tracks them, with x's own otherwise, and
        changes nothing on the layer.  LayerNorm, GroupNorm and RMSNorm
        compute the same y in both modes.

        Parameters
        ----------
        mode : bool, default True
            True for training mode, False for eval mode; ``training`` becomes
            ``bool(mode)``.

        Returns
        -------
        Self
            The layer itself, so that ``layer.train()(x)`` chains.

        Examples
        --------
        >>> bn = cnorm.BatchNorm(3)
        >>> bn.training                 # layers are created in training mode
        True
        >>> bn.train(False) is bn, bn.training
        (True, False)
        >>> bn.train().training
        True
        """
        self.training = bool(mode)
        return self

    def eval(self) -> Self:
        """Set eval mode: the same as ``train(False)``.

        Returns
        -------
        Self
            The layer itself, so that ``layer.eval()(x)`` chains.

        Examples
        --------
        >>> bn = cnorm.BatchNorm(3).eval()
        >>> bn.training
        False
        """
        return self.train(False)

    # Whether __call__ takes mask= (statistics over the masked-in positions).
    _accepts_mask: ClassVar[bool] = False

    def __call__(self, x: ArrayLike, mask: ArrayLike | None = None) -> Array:
        """Normalize x with the forward of the current mode.

        In training mode the forward also saves, for backward(), a private
        copy of x and the statistics, and the step (kernel, running-statistics
        update, saved tensors) runs under the layer's lock; in eval mode the
        call only reads the layer.  A float16/bfloat16 x is computed in float32 and y
        is rounded back to x's dtype.

        Parameters
        ----------
        x : array_like
            Input of dtype float32, float64, float16 or bfloat16, of a shape
            the layer takes (see its class docstring).  The parameters are
            used in x's dtype (float32 for float16/bfloat16 x), whatever the
            layer's ``dtype``.
        mask : array_like of bool, optional
            BatchNorm only: the positions that enter the statistics,
            broadcastable to x with size 1 on the channel axis; backward()
            uses the same mask.  It is checked in every mode as in training;
            in eval mode with running statistics it selects nothing (every
            position is normalized with the running statistics).

        Returns
        -------
        ndarray
            y, of x's shape and dtype.

        Raises
        ------
        TypeError
            x of another dtype (integer, bool, complex, ...); a mask given to a
            layer that takes none; in training, BatchRenorm's rmax or dmax
            (reassigned) not a real number.
        ValueError
            x of a shape the layer does not take (channels, trailing
            dimensions, too few dimensions); in training, one value per
            channel (batch norm) or per plane (instance norm), eps=0 (batch
            norm), BatchRenorm's rmax < 1 or dmax < 0 (or not finite); a
            mask that is not bool or does not broadcast (in every mode).

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> x = rng.standard_normal((4, 3), dtype=np.float32)
        >>> bn = cnorm.BatchNorm(3)
        >>> y = bn(x)                             # training: the batch's statistics
        >>> np.allclose(y, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), atol=1e-6)
        True
        >>> bn(x.astype(np.float16)).dtype
        dtype('float16')
        """
        low: np.dtype[Any] | None = None
        if type(x) is not np.ndarray or x.dtype not in FLOAT_DTYPES:   # else: as checked
            low = getattr(x, "dtype", None) if is_low_precision(x) else None
            if low is None:
                x = as_float_array(x, "x")
            elif self._low_precision_kernels and mask is None:   # masked: float32 arithmetic
                x = native_low(x)
            else:
                x = upcast(x)   # already a private copy
        converts = low is not None and not is_low_precision(x)
        options: dict[str, Any] = {}
        if mask is not None:
            if not self._accepts_mask:
                raise TypeError(f"{type(self).__name__} does not take a mask")
            options["mask"] = np.array(mask, copy=True)
        if self.training:
            with self._lock:
                # backward() must see this batch even if the caller refills
                # its buffer in between: keep a private copy (the functional
                # API is the zero-copy path; upcast made one already).
                if not converts:
                    x = self._private_copy(x)
                self._saved = None   # a step that fails leaves no saved batch
                y, saved = self._forward_train(x, **options)
                self._saved = (saved, low)
        else:
            y = self._forward_eval(x, **options)
        return downcast(y, low) if converts else y

    def _private_copy(self, x: Array) -> Array:
        """x copied for backward (caller holds the lock): into the previous
        step's copy when nothing but this layer holds it, else into a new
        array.  (Two new large arrays per step, y and this copy, make glibc
        hand the previous pair back to the kernel and page-fault the new one
        in: 6x the step's time at (8,256,14,14), benchmarks/RESULTS.md.)"""
        previous = self._reusable_saved_input(x) if x.nbytes >= _REUSE_BYTES else None
        if previous is None:
            return x.copy(order="K")
        self._saved = None   # its batch is overwritten now
        np.copyto(previous, x)
        return previous

    def _reusable_saved_input(self, x: Array) -> Array | None:
        """The saved x of the previous training step, when it has x's shape,
        dtype and C order and only this layer refers to it (no backward()
        running on it, no shallow copy of the layer sharing it); else None."""
        outer = self._saved
        if outer is None:
            return None
        inner = outer[0]
        previous = inner[0]
        if not (type(previous) is np.ndarray and previous.shape == x.shape
                and previous.dtype == x.dtype and previous.flags.c_contiguous
                and previous.flags.writeable and x.flags.c_contiguous):
            return None
        # each held here (a local, getrefcount's argument) and by its owner alone
        if sys.getrefcount(outer) > 3 or sys.getrefcount(inner) > 3 or \
                sys.getrefcount(previous) > 3:
            return None
        return previous

    def backward(self, dy: ArrayLike) -> Array:
        """Gradient of the most recent training-mode forward; sets grad_weight and grad_bias.

        The forward's input and statistics were saved by ``layer(x)`` in
        training mode; eval-mode calls do not replace them, so backward() may
        follow an eval() switch, and may run more than once.  grad_weight
        and grad_bias are replaced, not accumulated: None where the layer has
        no such parameter, else in the forward's x dtype (float32 after a
        float16/bfloat16 forward).  A fused activation's derivative is
        included.  The current weight and bias are used.

        Parameters
        ----------
        dy : array_like
            Gradient of the loss with respect to the forward's y: x's shape
            and dtype (after a float16/bfloat16 forward, that dtype).

        Returns
        -------
        ndarray
            dx, of x's shape and dtype.

        Raises
        ------
        RuntimeError
            No training-mode forward has run on this layer, or the most
            recent one raised (it leaves no saved batch).
        TypeError
            dy of another dtype than the forward's x.
        ValueError
            dy of another shape than the forward's x.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> ln = cnorm.LayerNorm(4)
        >>> y = ln(rng.standard_normal((2, 4), dtype=np.float32))
        >>> dy = rng.standard_normal((2, 4), dtype=np.float32)
        >>> dx = ln.backward(dy)
        >>> dx.shape, np.allclose(ln.grad_bias, dy.sum(axis=0))
        ((2, 4), True)
        >>> cnorm.LayerNorm(4).backward(dy)
        Traceback (most recent call last):
        ...
        RuntimeError: backward() needs a training-mode forward call first
        """
        with self._lock:
            saved, low = self._saved or (None, None)
        if saved is None:
            raise RuntimeError("backward() needs a training-mode forward call first")
        converts = low is not None and not is_low_precision(saved[0])   # x saved in float32
        if low is not None:
            dy = np.asarray(dy)
            if dy.dtype != low:
                raise TypeError(f"dy must have the dtype of the forward's x ({low}), "
                                f"got {dy.dtype}")
            dy = upcast(dy) if converts else native_low(dy)
        dx, self.grad_weight, self.grad_bias = self._backward(dy, saved)
        return downcast(dx, low) if converts else dx

    # ---- what subclasses define ------------------------------------------

    def _forward_train(self, x: Array, *args: Any, **kwargs: Any) -> tuple[Array, Any]:
        """(y, what _backward needs) of a training-mode forward; caller holds the lock."""
        raise NotImplementedError

    def _forward_eval(self, x: Array, *args: Any, **kwargs: Any) -> Array:
        raise NotImplementedError

    def _backward(self, dy: ArrayLike, saved: Any) -> _Grads:
        """(dx, grad_weight, grad_bias) from what _forward_train saved."""
        raise NotImplementedError

    # ---- pickling, copying, repr ----------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """Everything but the lock (pickle and copy.deepcopy go through here)."""
        with self._lock:
            state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _repr_args(self) -> tuple[tuple[Any, ...], list[tuple[str, Any]]]:
        """(positional values, [(keyword, value)]) for __repr__."""
        raise NotImplementedError

    def __repr__(self) -> str:
        positional, keywords = self._repr_args()
        if self.dtype != np.dtype(np.float32):
            keywords = [*keywords, ("dtype", self.dtype.name)]
        if self.activation is not None:
            keywords = [*keywords, ("activation", self.activation)]
        parts = [repr(v) for v in positional] + [f"{k}={v!r}" for k, v in keywords]
        return f"{type(self).__name__}({', '.join(parts)})"

    # ---- state ----------------------------------------------------------

    def _ones_zeros(self, shape: int | tuple[int, ...], affine: bool,
                    with_bias: bool = True) -> None:
        self.weight = np.ones(shape, self._param_dtype) if affine else None
        self.bias = np.zeros(shape, self._param_dtype) if affine and with_bias else None

    def state_dict(self) -> dict[str, NDArray[Any]]:
        """Copies of the parameters and buffers, under PyTorch's keys.

        Returns
        -------
        dict of str to ndarray
            ``weight`` and ``bias`` where the layer has them and, in layers
            that track running statistics, ``running_mean``, ``running_var``
            and ``num_batches_tracked`` (a 0-d int64 array).  The arrays are
            copies: changing them does not change the layer.

        Examples
        --------
        >>> cnorm.RMSNorm(4).state_dict()
        {'weight': array([1., 1., 1., 1.], dtype=float32)}
        >>> cnorm.LayerNorm(4, elementwise_affine=False).state_dict()
        {}
        """
        state: dict[str, NDArray[Any]] = {}
        for name in self._state_names:
            value = getattr(self, name)
            if value is not None:
                state[name] = np.array(value, copy=True)
        return state

    def load_state_dict(self, state_dict: Mapping[str, ArrayLike], strict: bool = True
                        ) -> IncompatibleKeys:
        """Load parameters and buffers from a state dict with PyTorch's keys.

        Every entry is checked before any is assigned, so a call that raises
        leaves the layer as it was.  Each value is converted to the dtype of
        the array it replaces and copied into that array in place (references
        to ``layer.weight`` and the like see the new values);
        ``num_batches_tracked`` becomes a Python int, and a state dict
        without it (saved before PyTorch had the counter) keeps the layer's,
        as PyTorch's batch norm does.

        Parameters
        ----------
        state_dict : mapping of str to array_like
            The keys of ``self.state_dict()`` (all of them, with `strict`),
            each value of the same shape and of a float or integer dtype:
            anything numpy.asarray takes, e.g. the state dict of the
            matching torch.nn module.
        strict : bool, default True
            Require exactly those keys.  If False, load the keys that match
            and report the others (as ``torch.nn.Module.load_state_dict``).

        Returns
        -------
        IncompatibleKeys
            ``(missing_keys, unexpected_keys)``: lists of the layer's keys the
            state dict lacks and of its keys the layer does not have, in
            PyTorch's order (both empty unless `strict` is False).

        Raises
        ------
        ValueError
            With `strict`, a key missing or unexpected; a value of another
            shape (whatever `strict`); a ``num_batches_tracked`` that is not
            an integer in [0, 2**63).
        TypeError
            state_dict not a mapping; a value that is not numeric (bool,
            complex, strings, objects).

        Examples
        --------
        >>> bn = cnorm.BatchNorm(3)
        >>> state = bn.state_dict()
        >>> state["running_mean"] = np.array([1.0, 2.0, 3.0])
        >>> bn.load_state_dict(state)
        IncompatibleKeys(missing_keys=[], unexpected_keys=[])
        >>> bn.running_mean
        array([1., 2., 3.], dtype=float32)
        >>> bn.load_state_dict({"weight": np.ones(3), "bias": np.zeros(3)})
        Traceback (most recent call last):
        ...
        ValueError: state_dict keys do not match: missing [...], unexpected []
        >>> bn.load_state_dict({"weight": np.ones(3), "extra": 0}, strict=False)
        IncompatibleKeys(missing_keys=['bias', 'running_mean', 'running_var'], \
unexpected_keys=['extra'])
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of names to arrays, got "
                            f"{type(state_dict).__name__}")
        expected = self.state_dict()
        optional = {"num_batches_tracked"} & set(expected)   # PyTorch fills it in when absent
        missing = [name for name in expected if name not in state_dict and name not in optional]
        unexpected = [name for name in state_dict if name not in expected]
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict keys do not match: missing {missing}, "
                             f"unexpected {unexpected}")
        converted: dict[str, Any] = {}
        for name, current in expected.items():
            if name not in state_dict:
                continue
            value = np.asarray(state_dict[name])
            if value.shape != current.shape:
                raise ValueError(f"state_dict[{name!r}] must have shape {current.shape}, "
                                 f"got {value.shape}")
            if value.dtype.kind not in "fiu" and not is_low_dtype(value.dtype):   # bfloat16: "V"
                raise TypeError(f"state_dict[{name!r}] must be numeric, got {value.dtype}")
            if name == "num_batches_tracked":
                converted[name] = _batch_counter(value)
            else:
                converted[name] = value.astype(current.dtype)
        with self._lock:
            for name, value in converted.items():
                if name == "num_batches_tracked":
                    self.num_batches_tracked = value
                else:
                    getattr(self, name)[...] = value
        return IncompatibleKeys(missing, unexpected)


class IncompatibleKeys(NamedTuple):
    """What `load_state_dict` did not load: the layer's keys the state dict
    lacks and the state dict's keys the layer does not have (PyTorch's
    ``_IncompatibleKeys``)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _layer_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    """float32, float64, float16 or bfloat16 (given as ml_dtypes.bfloat16 or
    the name "bfloat16", which needs ml_dtypes installed); None is the
    default, float32, as PyTorch's dtype=None (NumPy's np.dtype(None) would
    be float64)."""
    if dtype is None:
        return np.dtype(np.float32)
    if isinstance(dtype, str) and dtype == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise TypeError("dtype 'bfloat16' needs the ml_dtypes package") from None
        dtype = ml_dtypes.bfloat16
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"dtype must be float32, float64, float16 or bfloat16, got "
                        f"{dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)) and not is_low_dtype(dt):
        raise TypeError(f"dtype must be float32, float64, float16 or bfloat16, got {dt}")
    return dt


def _check_running_buffer(buffer: object, name: str, shape: tuple[int, ...]) -> None:
    """A reassigned running statistic must be a float array of the batch
    statistics' shape, so that the update is all or nothing (a wrong shape
    used to fail between the two stores)."""
    if not isinstance(buffer, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(buffer).__name__}")
    if buffer.dtype.kind != "f" and not is_low_dtype(buffer.dtype):
        raise TypeError(f"{name} must have a float dtype, got {buffer.dtype}")
    if buffer.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {buffer.shape}")


def _check_writable_running(buffer: NDArray[Any], name: str) -> None:
    if not buffer.flags.writeable:
        raise ValueError(f"{name} is read-only: the training forward updates it in place")


def _batch_counter(value: NDArray[Any]) -> int:
    """num_batches_tracked of a state dict as a Python int in int64's range."""
    v = value.item()
    if isinstance(v, float) and not (math.isfinite(v) and v == math.floor(v)):
        v = None
    if v is None or not 0 <= int(v) <= np.iinfo(np.int64).max:
        raise ValueError("state_dict['num_batches_tracked'] must be an integer in "
                         f"[0, 2**63), got {value}")
    return int(v)


# ---- constructor arguments -------------------------------------------------


def _int_text(n: int) -> str:
    """n for a message (an int of thousands of digits cannot even be printed)."""
    return str(n) if n.bit_length() <= 256 else f"an integer of {n.bit_length()} bits"


def _max_elements(param_dtype: np.dtype[Any]) -> int:
    """The most elements an array of param_dtype can have: NumPy refuses an
    array of more than ``numpy.iinfo(numpy.intp).max`` bytes."""
    return int(np.iinfo(np.intp).max) // param_dtype.itemsize


def _size(value: Any, name: str, param_dtype: np.dtype[Any] | None = None) -> int:
    """A size argument as an int >= 1 (bool is not a size: TypeError); with
    param_dtype, at most _max_elements(param_dtype), so that the layer's
    parameter arrays could exist (checked whether or not the layer has them)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    n = check_positive_int(value, name)
    if param_dtype is not None and n > _max_elements(param_dtype):
        raise ValueError(f"{name} must be <= {_max_elements(param_dtype)} (the most "
                         f"{param_dtype} values an array can hold), got {_int_text(n)}")
    return n


def _shape_tuple(normalized_shape: Any, param_dtype: np.dtype[Any]) -> tuple[int, ...]:
    """normalized_shape (an int or a sequence of ints, as the caller gave it)
    as a tuple of Python ints >= 1 whose product an array of param_dtype can hold."""
    def wrong_type() -> TypeError:
        return TypeError(f"normalized_shape must be an int or a sequence of ints, got "
                         f"{normalized_shape!r}")

    def as_int(d: Any) -> int:
        if isinstance(d, (bool, np.bool_, str, bytes)):
            raise wrong_type()
        try:
            return operator.index(d)
        except TypeError:
            raise wrong_type() from None

    if isinstance(normalized_shape, (str, bytes)):
        raise wrong_type()
    try:
        entries: tuple[Any, ...] = (as_int(normalized_shape),)
    except TypeError:
        try:
            entries = tuple(normalized_shape)
        except TypeError:
            raise wrong_type() from None
    shape = tuple(as_int(d) for d in entries)
    if not shape:
        raise ValueError(f"normalized_shape must have at least one dimension, got {shape}")
    if min(shape) < 1:
        raise ValueError(f"normalized_shape must hold sizes >= 1, got {shape}")
    if math.prod(shape) > _max_elements(param_dtype):
        raise ValueError(f"normalized_shape must have at most {_max_elements(param_dtype)} "
                         f"elements (the most {param_dtype} values an array can hold), got "
                         f"{shape}")
    return shape


def _axis(axis: Any) -> int:
    """A channel axis as an int (its range is checked against x at each call)."""
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    try:
        return operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an integer, got {axis!r}") from None


def _training_eps(eps: Any) -> float:
    """eps as a batch-norm training forward takes it: check_eps, and not 0
    (the functional API's check and message, as PyTorch refuses it)."""
    value = check_eps(eps)
    if value == 0.0:   # a constant channel would give 0 * inf
        raise ValueError("eps must be > 0 for batch-norm training, got 0")
    return value


class _RunningStats(_Layer):
    """Mixin: PyTorch's running_mean / running_var / num_batches_tracked."""

    _state_names = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

    num_features: int
    running_mean: FloatArray | None
    running_var: FloatArray | None
    num_batches_tracked: int | None

    def _init_running(self, num_features: int, momentum: float | None, track: bool) -> None:
        self.momentum = check_momentum(momentum)
        self.track_running_stats = bool(track)
        self.running_mean = np.zeros(num_features, self._param_dtype) if track else None
        self.running_var = np.ones(num_features, self._param_dtype) if track else None
        self.num_batches_tracked = 0 if track else None

    def state_dict(self) -> dict[str, NDArray[Any]]:
        """Copies of the parameters and buffers, under PyTorch's keys.

        Returns
        -------
        dict of str to ndarray
            ``weight`` and ``bias`` where the layer has them (``affine``),
            then, with ``track_running_stats``, ``running_mean``,
            ``running_var`` and ``num_batches_tracked`` (a 0-d int64 array).
            The arrays are copies: changing them does not change the layer.

        Examples
        --------
        >>> list(cnorm.BatchNorm(3).state_dict())
        ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
        >>> counter = cnorm.BatchNorm(3).state_dict()["num_batches_tracked"]
        >>> counter.dtype, counter.shape, int(counter)
        (dtype('int64'), (), 0)
        """
        state = super().state_dict()
        if self.track_running_stats:
            state["num_batches_tracked"] = np.array(self.num_batches_tracked, np.int64)
        return state

    def _check_running_buffers(self) -> None:
        """The running buffers (reassigned ones too) as a step updates them:
        float arrays of shape (num_features,), writable; for a caller that
        must refuse them before its own work (collectives, clipping)."""
        for name in ("running_mean", "running_var"):
            buffer = getattr(self, name)
            _check_running_buffer(buffer, name, (self.num_features,))
            _check_writable_running(buffer, name)

    def _update_running(self, mean: NDArray[np.float64], var: NDArray[np.float64],
                        var_scale: float = 1.0) -> None:
        """One step of the running averages (float64 arithmetic), running_var
        averaging var * var_scale; caller holds the lock."""
        if not self.track_running_stats:
            return
        # tracking: the buffers and the counter exist
        running_mean, running_var = cast(FloatArray, self.running_mean), cast(FloatArray,
                                                                              self.running_var)
        count = cast(int, self.num_batches_tracked) + 1
        momentum = check_momentum(self.momentum)   # reassignable: checked as the constructor
        f = 1.0 / count if momentum is None else momentum
        new = _kernels.running_average(running_mean, running_var, mean, var, f, var_scale)
        if new is None:   # buffers reassigned to other types or layouts, or f not a float
            for name, buffer in (("running_mean", running_mean), ("running_var", running_var)):
                _check_running_buffer(buffer, name, mean.shape)
            new = ((1.0 - f) * running_mean.astype(np.float64) + f * mean,
                   (1.0 - f) * running_var.astype(np.float64) + f * (var * var_scale))
        _check_writable_running(running_mean, "running_mean")
        _check_writable_running(running_var, "running_var")
        new_mean, new_var = new
        # Commit: stores only, no Python-level call between them, so a
        # KeyboardInterrupt lands before or after the whole update.
        running_mean[...] = new_mean
        running_var[...] = new_var
        self.num_batches_tracked = count


class BatchNorm(_RunningStats, _Layer):
    """Batch normalization over channel axis ``axis`` (1: NCHW, -1: channels-last).

    Per channel, ``y = (x - mean) / sqrt(var + eps) * weight + bias`` (then
    the activation, if any), the statistics taken over every axis of x but
    ``axis``.  The layer is created in training mode: ``layer(x)`` uses the
    batch's mean and biased variance, updates ``running_mean`` and
    ``running_var`` (``new = (1 - momentum) * old + momentum * batch``, the
    unbiased batch variance by default) and ``num_batches_tracked``, and
    saves x and the statistics; ``backward(dy)`` then returns dx and sets
    ``grad_weight`` and ``grad_bias``.  After ``eval()``, ``layer(x)``
    normalizes with the running statistics (with the batch's own when
    ``track_running_stats=False``) and changes nothing.

    ``layer(x, mask=m)`` (bool, broadcastable to x, size 1 on the channel
    axis) takes the statistics over the masked-in positions only (the
    running statistics use the masked count), normalizes every position
    with them, and backward() uses the same mask.  Eval mode checks a mask
    as training does; with running statistics it selects nothing, since no
    statistics are taken (without them it is training's).

    Concurrency: eval-mode calls only read the layer, so one eval-mode layer
    may serve many threads (the kernels release the GIL).  A training step
    (kernel, running-statistics update, saved tensors) runs under a
    per-layer lock, so concurrent training calls never interleave
    half-updates; backward() uses the training forward that finished last.

    Low precision: a layer built with ``dtype=np.float16`` or
    ``dtype="bfloat16"`` keeps weight, bias and the running statistics in
    float32 (PyTorch's mixed mode).  A float16/bfloat16 x (into any layer)
    is computed in float32: y and dx come back in x's dtype, grad_weight
    and grad_bias are float32.  A float32 layer also takes float64 x, and
    the reverse: the parameters are used in x's dtype.

    Parameters
    ----------
    num_features : int
        Number of channels C: the size of x on ``axis``.
    eps : float, default 1e-5
        Added to the variance.  0 is accepted here, but a forward with batch
        statistics (training, or eval without running statistics) refuses
        it, as PyTorch does.
    momentum : float or None, default 0.1
        Weight of the batch in the running averages, in [0, 1] (PyTorch's
        convention: Keras' ``momentum=0.99`` is 0.01 here).  None: a
        cumulative average, the batch weighing ``1 / num_batches_tracked``.
    affine : bool, default True
        Learn a per-channel weight (initially ones) and bias (zeros).
    track_running_stats : bool, default True
        Keep running_mean, running_var and num_batches_tracked.  Without
        them eval mode normalizes with the batch's statistics.
    axis : int, default 1
        The channel axis of x (negative: from the end); an integer, whose
        range is checked against x at each call.
    dtype : data-type, default numpy.float32
        float32, float64, float16 or bfloat16 (``ml_dtypes.bfloat16`` or the
        name ``"bfloat16"``, which needs ml_dtypes): the dtype of the
        parameters and running statistics, float32 for float16 and bfloat16.
    unbiased_running_var : bool, default True
        running_var averages the unbiased batch variance (``n / (n - 1)``,
        PyTorch); False: the population variance (ONNX, Keras, Flax).
    activation : {None, "relu", "silu"}, default None
        Applied to y in the same pass, in both modes; backward() includes
        its derivative.

    Attributes
    ----------
    weight, bias : ndarray of shape (num_features,) or None
        The learnable parameters (ones and zeros initially), in the
        parameter dtype; None when ``affine=False``.
    running_mean, running_var : ndarray of shape (num_features,) or None
        The running statistics (zeros and ones initially), in the parameter
        dtype; None when ``track_running_stats=False``.
    num_batches_tracked : int or None
        Training forwards that updated the running statistics; None when
        ``track_running_stats=False``.
    grad_weight, grad_bias : ndarray of shape (num_features,) or None
        Set by backward(), in x's dtype (float32 after a float16/bfloat16
        forward); None before it and when ``affine=False``.
    training : bool
        True in training mode (the initial mode), False after eval().
    dtype : numpy.dtype
        The layer's dtype as given (float16 stays float16 here).
    num_features, eps, momentum, affine, track_running_stats, axis
        The constructor's arguments (eps a float, momentum a float or None).
    unbiased_running_var, activation
        The constructor's arguments.

    Raises
    ------
    TypeError
        num_features or axis not an integer (a bool is not one); eps or
        momentum not a real number; dtype not float32, float64, float16 or
        bfloat16 (or ``"bfloat16"`` without ml_dtypes installed).
    ValueError
        num_features < 1, or more than an array of the
        parameter dtype can hold (``numpy.iinfo(numpy.intp).max`` bytes:
        2**61 - 1 float32 values), whether or not the layer has parameters;
        eps negative, NaN or infinite; momentum outside [0, 1]; activation
        not None, "relu" or "silu".

    See Also
    --------
    cnorm.batch_norm_train : The training forward as a function.
    cnorm.batch_norm_infer : The eval-mode forward with running statistics.
    cnorm.batch_norm_backward : The backward as a function.
    cnorm.SyncBatchNorm : Batch norm over every rank of an MPI communicator.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> bn = cnorm.BatchNorm(3)
    >>> bn
    BatchNorm(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True, axis=1)
    >>> x = rng.standard_normal((4, 3, 5), dtype=np.float32)
    >>> y = bn(x)                                # training: the batch's statistics
    >>> mean, var = x.mean(axis=(0, 2), keepdims=True), x.var(axis=(0, 2), keepdims=True)
    >>> np.allclose(y, (x - mean) / np.sqrt(var + 1e-5), atol=1e-6)
    True
    >>> np.allclose(bn.running_var, 0.9 + 0.1 * x.var(axis=(0, 2), ddof=1)), bn.num_batches_tracked
    (True, 1)
    >>> dx = bn.backward(np.ones_like(y))        # sets grad_weight and grad_bias
    >>> dx.shape, bn.grad_bias
    ((4, 3, 5), array([20., 20., 20.], dtype=float32))
    >>> m, v = bn.running_mean[:, None], bn.running_var[:, None]
    >>> np.allclose(bn.eval()(x), (x - m) / np.sqrt(v + 1e-5))   # eval: running statistics
    True
    >>> half = cnorm.BatchNorm(3, dtype=np.float16)
    >>> half.weight.dtype, half(x.astype(np.float16)).dtype
    (dtype('float32'), dtype('float16'))
    """

    _accepts_mask = True

    def __init__(self, num_features: SupportsIndex, *, eps: float = 1e-5,
                 momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, axis: SupportsIndex = 1,
                 dtype: DTypeLike = np.float32, unbiased_running_var: bool = True,
                 activation: Activation = None) -> None:
        """Create the layer in training mode; the class docstring describes the parameters.

        Parameters
        ----------
        num_features : int
        eps : float, default 1e-5
        momentum : float or None, default 0.1
        affine : bool, default True
        track_running_stats : bool, default True
        axis : int, default 1
        dtype : data-type, default numpy.float32
        unbiased_running_var : bool, default True
        activation : {None, "relu", "silu"}, default None
        """
        super().__init__(dtype, activation)
        self.num_features = _size(num_features, "num_features", self._param_dtype)
        self.eps = check_eps(eps)
        self.affine = bool(affine)
        self.axis = _axis(axis)
        self.unbiased_running_var = bool(unbiased_running_var)
        self._ones_zeros(self.num_features, self.affine)
        self._init_running(self.num_features, momentum, track_running_stats)

    def _repr_args(self) -> tuple[tuple[Any, ...], list[tuple[str, Any]]]:
        keywords: list[tuple[str, Any]] = [
            ("eps", self.eps), ("momentum", self.momentum), ("affine", self.affine),
            ("track_running_stats", self.track_running_stats), ("axis", self.axis)]
        if not self.unbiased_running_var:
            keywords.append(("unbiased_running_var", False))
        return (self.num_features,), keywords

    def fold_into(self, weight: ArrayLike, bias: ArrayLike | None = None, *,
                  axis: SupportsIndex = 0) -> tuple[FloatArray, FloatArray]:
        """Fold this layer's eval-mode normalization into the preceding Linear/Conv.

        Returns (weight', bias') with which the preceding layer alone
        computes itself followed by this layer in eval mode: per output
        channel, ``s = self.weight / sqrt(running_var + eps)``, ``weight' =
        weight * s`` and ``bias' = (bias - running_mean) * s + self.bias``,
        in float64 arithmetic.  The running statistics are used whatever
        the current mode.  The activation, if any, is not folded: apply it
        after the folded layer.

        Parameters
        ----------
        weight : array_like
            The preceding layer's weight (float16, float32 or float64), with
            ``num_features`` output channels on ``axis``.
        bias : array_like, optional
            Its bias, of shape (num_features,); None for a layer without one.
        axis : int, default 0
            The output-channel axis of ``weight``: 0 for a Linear (out, in)
            or a Conv (O, I, kh, kw), 1 for a transposed convolution.

        Returns
        -------
        weight : ndarray
            The folded weight, of weight's shape and dtype.
        bias : ndarray
            The folded bias, of shape (num_features,), in bias's dtype
            (weight's when bias is None).

        Raises
        ------
        ValueError
            The layer does not track running statistics; axis out of range;
            weight without ``num_features`` channels on axis, or bias of
            another shape; running_var + eps not > 0.
        TypeError
            weight or bias not of a float dtype; axis not an integer.

        See Also
        --------
        cnorm.fold_batch_norm : The same with statistics and parameters given.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> bn = cnorm.BatchNorm(3)
        >>> _ = bn(rng.standard_normal((8, 3)))      # running statistics of one batch
        >>> w, b = rng.standard_normal((3, 5)), rng.standard_normal(3)   # a Linear(5, 3)
        >>> w2, b2 = bn.fold_into(w, b)
        >>> x = rng.standard_normal((4, 5))
        >>> np.allclose(x @ w2.T + b2, bn.eval()(x @ w.T + b))
        True
        """
        if not self.track_running_stats:
            raise ValueError("fold_into needs running statistics (track_running_stats=True)")
        w = np.asarray(weight)
        if w.ndim > 0:   # else fold_batch_norm's own message
            a = normalize_axis(axis, w.ndim)
            if w.shape[a] != self.num_features:
                raise ValueError(f"weight must have this layer's {self.num_features} output "
                                 f"channels on axis {a}, got shape {w.shape}")
        return fold_batch_norm(weight, bias, cast(FloatArray, self.running_mean),
                               cast(FloatArray, self.running_var), self.weight, self.bias,
                               eps=self.eps, axis=axis)

    def _running_var_scale(self, count: float) -> float:
        """The biased batch variance's factor in the running average: n / (n - 1)
        (the unbiased variance) unless unbiased_running_var is False."""
        return count / (count - 1) if self.unbiased_running_var else 1.0

    def _channels(self, x: Array) -> int:
        if x.ndim < 2:
            raise ValueError(f"x must have at least 2 dimensions (a batch and {self.num_features} "
                             f"channels on axis {self.axis}), got shape {x.shape}")
        axis = normalize_axis(self.axis, x.ndim)
        if x.shape[axis] != self.num_features:
            raise ValueError(f"x must have {self.num_features} channels on axis {self.axis}, "
                             f"got shape {x.shape}")
        return x.size // self.num_features

    def _check_training_state(self, dtype: np.dtype[Any]) -> None:
        """What the functional training forward (batch_norm_train) checks on
        the layer's own state, in its order and with its messages: weight and
        bias (shape (num_features,), float: they may have been reassigned),
        then eps (> 0).  BatchNorm leaves these checks to that function;
        SyncBatchNorm runs them before its collectives.  dtype: the
        arithmetic dtype (x's; float32 for float16/bfloat16 x)."""
        self._check_parameters(dtype)
        _training_eps(self.eps)

    def _check_parameters(self, dtype: np.dtype[Any]) -> None:
        """weight and bias as the functional forward and backward check them."""
        param(self.weight, "weight", (self.num_features,), dtype)
        param(self.bias, "bias", (self.num_features,), dtype)

    def _forward_train(self, x: Array, mask: NDArray[np.bool_] | None = None
                       ) -> tuple[Array, tuple[Any, ...]]:
        count: float = self._channels(x)
        act = activation_code(self.activation)
        # The lean entry point computes the saved statistics too, with the bits
        # of F.saved_statistics (it takes eps only as a float).
        lean = None if mask is not None else _kernels.bn_train_fast(
            x, self.weight, self.bias, self.eps, self.axis, None, act, True)
        if lean is not None:
            y, *saved, mean, var = lean
        else:
            if mask is None:
                y, mean, var = F.batch_statistics(x, self.weight, self.bias, self.eps,
                                                  self.axis, None, act)
            else:
                y, mean, var, count = F.masked_batch_statistics(
                    x, self.weight, self.bias, self.eps, self.axis, None, mask, act)
            saved = F.saved_statistics(mean, var, self.eps, arithmetic_dtype(x.dtype))
        if count:
            self._update_running(mean, var, self._running_var_scale(count))
        elif self.track_running_stats:   # an empty batch: counted, statistics kept (PyTorch)
            self.num_batches_tracked = cast(int, self.num_batches_tracked) + 1
        return y, (x, *saved, mask)

    def _forward_eval(self, x: Array, mask: NDArray[np.bool_] | None = None) -> Array:
        self._channels(x)
        if not self.track_running_stats:
            return F.batch_norm_train(x, self.weight, self.bias, eps=self.eps, axis=self.axis,
                                      mask=mask, activation=self.activation)[0]
        if mask is not None:   # checked as in training; the running statistics need none
            F.channel_mask(mask, x, self.axis)
        return F.batch_norm_infer(x, cast(FloatArray, self.running_mean),
                                  cast(FloatArray, self.running_var), self.weight, self.bias,
                                  eps=self.eps, axis=self.axis, activation=self.activation)

    def _backward(self, dy: ArrayLike, saved: tuple[Any, ...]) -> _Grads:
        x, mean, invstd, mask = saved
        dx, dweight, dbias = F.batch_norm_backward(dy, x, mean, invstd, self.weight,
                                                   axis=self.axis, mask=mask,
                                                   activation=self.activation, bias=self.bias)
        return dx, dweight, dbias if self.affine else None


class BatchRenorm(BatchNorm):
    """Batch renormalization (Ioffe 2017, arXiv:1702.03275).

    Training: x_hat = (x - mean_B) / sigma_B * r + d with r = clip(sigma_B /
    sigma, 1/rmax, rmax), d = clip((mean_B - running_mean) / sigma, -dmax,
    dmax), sigma_B = sqrt(var_B + eps) and sigma = sqrt(running_var + eps)
    from the running statistics before this step's update; r and d are
    constants for the gradient.  ``y = x_hat * weight + bias`` (then the
    activation, if any).  ``rmax`` and ``dmax`` are plain attributes a
    training loop may ramp (rmax=1, dmax=0 is batch norm); they are checked
    by the constructor and again at each training forward.  Inference (eval
    mode) is batch norm with the running statistics.

    The protocol is BatchNorm's: created in training mode, ``layer(x)``
    updates running_mean, running_var (unbiased batch variance) and
    num_batches_tracked, which are always kept; ``backward(dy)`` returns dx
    and sets grad_weight (``sum(dy * x_hat)``) and grad_bias
    (``sum(dy)``).  No mask.  Concurrency and low precision are as in
    BatchNorm: eval-mode calls only read the layer, a training step runs
    under a per-layer lock; float16/bfloat16 layers keep parameters and
    running statistics in float32, and float16/bfloat16 x gives y and dx of
    x's dtype.

    Parameters
    ----------
    num_features : int
        Number of channels C: the size of x on ``axis``.
    eps : float, default 1e-5
        Added to the variances.  0 is accepted here, but a training forward
        refuses it.
    momentum : float or None, default 0.1
        Weight of the batch in the running averages, in [0, 1]; None: a
        cumulative average (see BatchNorm).
    rmax : float, default 3.0
        Bound of r, a real number, finite and >= 1.
    dmax : float, default 5.0
        Bound of d, a real number, finite and >= 0.
    affine : bool, default True
        Learn a per-channel weight (initially ones) and bias (zeros).
    axis : int, default 1
        The channel axis of x (negative: from the end); an integer, whose
        range is checked against x at each call.
    dtype : data-type, default numpy.float32
        float32, float64, float16 or bfloat16: the dtype of the parameters
        and running statistics, float32 for float16 and bfloat16.
    activation : {None, "relu", "silu"}, default None
        Applied to y in the same pass, in both modes; backward() includes
        its derivative.

    Attributes
    ----------
    rmax, dmax : float
        The clipping bounds (the constructor's, as floats); assign them to
        ramp them during training.
    weight, bias : ndarray of shape (num_features,) or None
        The learnable parameters, in the parameter dtype; None when
        ``affine=False``.
    running_mean, running_var : ndarray of shape (num_features,)
        The running statistics (zeros and ones initially), in the parameter
        dtype.
    num_batches_tracked : int
        Training forwards so far.
    grad_weight, grad_bias : ndarray of shape (num_features,) or None
        Set by backward(), in x's dtype (float32 after a float16/bfloat16
        forward); None before it and when ``affine=False``.
    training : bool
        True in training mode (the initial mode), False after eval().
    dtype : numpy.dtype
        The layer's dtype as given.
    track_running_stats : bool
        Always True.
    num_features, eps, momentum, affine, axis, activation
        The constructor's arguments.

    Raises
    ------
    TypeError
        num_features or axis not an integer (a bool is not one); eps,
        momentum, rmax or dmax not a real number; dtype not float32,
        float64, float16 or bfloat16.
    ValueError
        num_features < 1, or more than an array of the
        parameter dtype can hold (``numpy.iinfo(numpy.intp).max`` bytes:
        2**61 - 1 float32 values), whether or not the layer has parameters;
        eps negative, NaN or infinite; momentum outside [0, 1]; rmax < 1,
        dmax < 0 or either not finite; activation not None, "relu" or
        "silu".  (Reassigned rmax and dmax are checked at each training
        forward.)

    See Also
    --------
    cnorm.BatchNorm : Batch normalization.
    cnorm.batch_norm_infer : The eval-mode forward as a function.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> rn = cnorm.BatchRenorm(3)
    >>> rn
    BatchRenorm(3, eps=1e-05, momentum=0.1, rmax=3.0, dmax=5.0, affine=True, axis=1)
    >>> x = rng.standard_normal((8, 3, 4), dtype=np.float32)
    >>> y = rn(x)     # running mean 0, var 1, r and d unclipped: x_hat = x / sigma
    >>> np.allclose(y, x / np.sqrt(1 + 1e-5), atol=1e-6), rn.num_batches_tracked
    (True, 1)
    >>> dx = rn.backward(np.ones_like(y))
    >>> dx.shape, rn.grad_bias
    ((8, 3, 4), array([32., 32., 32.], dtype=float32))
    >>> rn.rmax, rn.dmax = 1.0, 0.0                  # ramped down to plain batch norm
    >>> np.allclose(rn(x), cnorm.batch_norm_train(x)[0], atol=1e-6)
    True
    """

    _low_precision_kernels = False   # its own arithmetic in x's dtype

    _accepts_mask = False

    def __init__(self, num_features: SupportsIndex, *, eps: float = 1e-5,
                 momentum: float | None = 0.1, rmax: float = 3.0, dmax: float = 5.0,
                 affine: bool = True, axis: SupportsIndex = 1, dtype: DTypeLike = np.float32,
                 activation: Activation = None) -> None:
        """Create the layer in training mode; the class docstring describes the parameters.

        Parameters
        ----------
        num_features : int
        eps : float, default 1e-5
        momentum : float or None, default 0.1
        rmax : float, default 3.0
        dmax : float, default 5.0
        affine : bool, default True
        axis : int, default 1
        dtype : data-type, default numpy.float32
        activation : {None, "relu", "silu"}, default None
        """
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=True, axis=axis, dtype=dtype, activation=activation)
        self.rmax = check_eps(rmax, "rmax", 1.0)
        self.dmax = check_eps(dmax, "dmax", 0.0)

    def _repr_args(self) -> tuple[tuple[Any, ...], list[tuple[str, Any]]]:
        return (self.num_features,), [
            ("eps", self.eps), ("momentum", self.momentum), ("rmax", self.rmax),
            ("dmax", self.dmax), ("affine", self.affine), ("axis", self.axis)]

    def _clip_limits(self) -> tuple[float, float]:
        """The attributes rmax and dmax (a training loop may have reassigned
        them), checked as the constructor checks them."""
        return check_eps(self.rmax, "rmax", 1.0), check_eps(self.dmax, "dmax", 0.0)

    # No mask= (BatchNorm's takes one): __call__ refuses a mask here (_accepts_mask).
    def _forward_train(self, x: Array) -> tuple[  # type: ignore[override]
            Array, tuple[Array, FloatArray, FloatArray, NDArray[np.float64], NDArray[np.float64]]]:
        count = self._channels(x)
        rmax, dmax = self._clip_limits()
        self._check_running_buffers()   # read before the update: checked first
        y, mean, var, r, d = F.batch_renorm_statistics(
            x, self.weight, self.bias, self.eps, self.axis, None,
            cast(FloatArray, self.running_mean).astype(np.float64),
            cast(FloatArray, self.running_var).astype(np.float64), rmax, dmax,
            activation_code(self.activation))
        self._update_running(mean, var, self._running_var_scale(count))
        return y, (x, *F.saved_statistics(mean, var, self.eps, x.dtype), r, d)

    def _backward(self, dy: ArrayLike, saved: tuple[Array, FloatArray, FloatArray,
                                                  NDArray[np.float64], NDArray[np.float64]]
                  ) -> _Grads:
        # dx is batch norm's dx with weight * r; dweight = sum(dy * x_hat) with
        # x_hat = x_hat_bn * r + d.
        x, mean, invstd, r, d = saved
        weight = np.ones_like(mean) if self.weight is None else self.weight
        if self.activation is not None:   # z = x_hat * weight + bias, x_hat as above
            dy = as_float_array(dy, "dy")
            same_shape(dy, x, "dy")
            bias = 0.0 if self.bias is None else self.bias
            view = F.channel_view(x, self.axis)
            dy = F.channel_preactivation_grad(
                as_contiguous(dy), x, view, mean, invstd, (weight * r).astype(x.dtype),
                (d * weight + bias).astype(x.dtype), self.activation,
                F.channel_mean_residual(x, view, mean, invstd))
        dx, dweight_bn, dbias = F.batch_norm_backward(dy, x, mean, invstd,
                                                      (weight * r).astype(x.dtype),
                                                      axis=self.axis)
        if not self.affine:
            return dx, None, None
        grad_weight = (r * dweight_bn + d * dbias).astype(x.dtype)
        return dx, grad_weight, dbias


class LayerNorm(_Layer):
    """Layer normalization over the trailing ``normalized_shape`` dims.

    Per row (each index of x's leading dims), ``y = (x - mean) / sqrt(var +
    eps) * weight + bias`` (then the activation, if any), with the mean and
    biased variance over the trailing dims.  There are no running
    statistics: training and eval mode compute the same y.  The layer is
    created in training mode, where ``layer(x)`` also saves x and the
    statistics for ``backward(dy)``, which returns dx and sets
    ``grad_weight`` and ``grad_bias``.

    Concurrency: eval-mode calls only read the layer and may run from many
    threads; a training forward stores its saved tensors under a per-layer
    lock.  Low precision: a layer built with ``dtype=np.float16`` or
    ``dtype="bfloat16"`` keeps weight and bias in float32 (PyTorch's mixed
    mode); a float16/bfloat16 x is computed in float32, y and dx come back
    in x's dtype and grad_weight/grad_bias are float32.

    Parameters
    ----------
    normalized_shape : int or sequence of int
        The trailing dims of x that each row spans (an int n means (n,)).
    eps : float, default 1e-5
        Added to the variance.
    elementwise_affine : bool, default True
        Learn a weight (initially ones) of shape ``normalized_shape``, and
        a bias if ``bias``.
    bias : bool, default True
        With ``elementwise_affine``, learn a bias (initially zeros) too.
    dtype : data-type, default numpy.float32
        float32, float64, float16 or bfloat16 (``ml_dtypes.bfloat16`` or the
        name ``"bfloat16"``, which needs ml_dtypes): the dtype of the
        parameters, float32 for float16 and bfloat16.
    activation : {None, "relu", "silu"}, default None
        Applied to y in the same pass, in both modes; backward() includes
        its derivative.

    Attributes
    ----------
    normalized_shape : tuple of int
        The normalized trailing shape.
    weight : ndarray of shape normalized_shape or None
        In the parameter dtype; None when ``elementwise_affine=False``.
    bias : ndarray of shape normalized_shape or None
        In the parameter dtype; None when ``elementwise_affine=False`` or
        ``bias=False``.
    grad_weight, grad_bias : ndarray of shape normalized_shape or None
        Set by backward(), in x's dtype (float32 after a float16/bfloat16
        forward); None before it and for a parameter the layer lacks.
    training : bool
        True in training mode (the initial mode), False after eval().
    dtype : numpy.dtype
        The layer's dtype as given.
    eps, elementwise_affine, activation
        The constructor's arguments (eps a float).

    Raises
    ------
    TypeError
        normalized_shape not an int or a sequence of ints (a float, string,
        bool or None in it); eps not a real number; dtype not float32,
        float64, float16 or bfloat16.
    ValueError
        normalized_shape empty, holding a size < 1, or of more elements
        than an array of the parameter dtype can hold
        (``numpy.iinfo(numpy.intp).max`` bytes: 2**61 - 1 float32 values),
        whether or not the layer has parameters; eps negative, NaN or
        infinite; activation not None, "relu" or "silu".

    See Also
    --------
    cnorm.layer_norm : The forward as a function.
    cnorm.layer_norm_backward : The backward as a function.
    cnorm.add_layer_norm : Residual add and layer norm in one pass.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ln = cnorm.LayerNorm(4)
    >>> ln
    LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)
    >>> x = rng.standard_normal((2, 3, 4), dtype=np.float32)
    >>> y = ln(x)
    >>> x_hat = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    >>> np.allclose(y, x_hat, atol=1e-5)
    True
    >>> dy = rng.standard_normal(x.shape, dtype=np.float32)
    >>> dx = ln.backward(dy)
    >>> dx.shape, np.allclose(ln.grad_weight, (dy * x_hat).sum(axis=(0, 1)), atol=1e-5)
    ((2, 3, 4), True)
    >>> np.array_equal(ln.eval()(x), y)          # eval mode: the same y
    True
    """

    def __init__(self, normalized_shape: ShapeLike, *, eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True,
                 dtype: DTypeLike = np.float32, activation: Activation = None) -> None:
        """Create the layer in training mode; the class docstring describes the parameters.

        Parameters
        ----------
        normalized_shape : int or sequence of int
        eps : float, default 1e-5
        elementwise_affine : bool, default True
        bias : bool, default True
        dtype : data-type, default numpy.float32
        activation : {None, "relu", "silu"}, default None
        """
        super().__init__(dtype, activation)
        self.normalized_shape = _shape_tuple(normalized_shape, self._param_dtype)
        self.eps = check_eps(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self._ones_zeros(self.normalized_shape, self.elementwise_affine, bias)

    def _repr_args(self) -> tuple[tuple[Any, ...], list[tuple[str, Any]]]:
        return (self.normalized_shape,), [
            ("eps", self.eps), ("elementwise_affine", self.elementwise_affine),
            ("bias", self.bias is not None)]   # torch's bias=: whether there is one

    def _forward_eval(self, x: Array) -> Array:
        return self._forward_train(x)[0]

    def _forward_train(self, x: Array) -> tuple[Array, tuple[Array, FloatArray, FloatArray]]:
        y, mean, rstd = F.layer_norm(x, self.normalized_shape, self.weight, self.bias,
                                     eps=self.eps, activation=self.activation)
        return y, (x, mean, rstd)

    def _backward(self, dy: ArrayLike, saved: tuple[Array, FloatArray, FloatArray]) -> _Grads:
        x, mean, rstd = saved
        dx, dweight, dbias = F.layer_norm_backward(dy, x, mean, rstd, self.normalized_shape,
                                                   self.weight, activation=self.activation,
                                                   bias=self.bias)
        return dx, dweight, dbias if self.bias is not None else None


class GroupNorm(_Layer):
    """Group normalization of (N, C, *) inputs over groups of channels.

    The C channels are split into ``num_groups`` groups of consecutive
    channels; per sample and group, ``y = (x - mean) / sqrt(var + eps)``
    with the mean and biased variance over the group's channels and
    positions, then ``* weight + bias`` per channel (and the activation, if
    any).  There are no running statistics: training and eval mode compute
    the same y.  The layer is created in training mode, where ``layer(x)``
    also saves x and the statistics for ``backward(dy)``, which returns dx
    and sets ``grad_weight`` and ``grad_bias``.

    Concurrency: eval-mode calls only read the layer and may run from many
    threads; a training forward stores its saved tensors under a per-layer
    lock.  Low precision: a layer built with ``dtype=np.float16`` or
    ``dtype="bfloat16"`` keeps weight and bias in float32 (PyTorch's mixed
    mode); a float16/bfloat16 x is computed in float32, y and dx come back
    in x's dtype and grad_weight/grad_bias are float32.

    Parameters
    ----------
    num_groups : int
        Number of groups G; it must divide num_channels.
    num_channels : int
        Number of channels C: x has shape (N, C, *).
    eps : float, default 1e-5
        Added to the variance.
    affine : bool, default True
        Learn a per-channel weight (initially ones) and bias (zeros).
    dtype : data-type, default numpy.float32
        float32, float64, float16 or bfloat16 (``ml_dtypes.bfloat16`` or the
        name ``"bfloat16"``, which needs ml_dtypes): the dtype of the
        parameters, float32 for float16 and bfloat16.
    activation : {None, "relu", "silu"}, default None
        Applied to y in the same pass, in both modes; backward() includes
        its derivative.

    Attributes
    ----------
    weight, bias : ndarray of shape (num_channels,) or None
        In the parameter dtype; None when ``affine=False``.
    grad_weight, grad_bias : ndarray of shape (num_channels,) or None
        Set by backward(), in x's dtype (float32 after a float16/bfloat16
        forward); None before it and when ``affine=False``.
    training : bool
        True in training mode (the initial mode), False after eval().
    dtype : numpy.dtype
        The layer's dtype as given.
    num_groups, num_channels, eps, affine, activation
        The constructor's arguments (eps a float).

    Raises
    ------
    TypeError
        num_groups or num_channels not an integer (a bool is not one); eps
        not a real number; dtype not float32, float64, float16 or bfloat16.
    ValueError
        num_groups or num_channels < 1; num_channels more than an array
        of the parameter dtype can hold (``numpy.iinfo(numpy.intp).max``
        bytes: 2**61 - 1 float32 values), whether or not the layer has
        parameters; num_groups not dividing num_channels; eps negative, NaN
        or infinite; activation not None, "relu" or "silu".

    See Also
    --------
    cnorm.group_norm : The forward as a function.
    cnorm.group_norm_backward : The backward as a function.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> gn = cnorm.GroupNorm(2, 4)
    >>> gn
    GroupNorm(2, 4, eps=1e-05, affine=True)
    >>> x = rng.standard_normal((2, 4, 3), dtype=np.float32)
    >>> y = gn(x)
    >>> g = x.reshape(2, 2, 6)                   # (N, groups, values per group)
    >>> x_hat = (g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + 1e-5)
    >>> np.allclose(y, x_hat.reshape(x.shape), atol=1e-5)
    True
    >>> dx = gn.backward(np.ones_like(y))
    >>> dx.shape, gn.grad_bias
    ((2, 4, 3), array([6., 6., 6., 6.], dtype=float32))
    >>> np.array_equal(gn.eval()(x), y)          # eval mode: the same y
    True
    """

    def __init__(self, num_groups: SupportsIndex, num_channels: SupportsIndex, *,
                 eps: float = 1e-5, affine: bool = True, dtype: DTypeLike = np.float32,
                 activation: Activation = None) -> None:
        """Create the layer in training mode; the class docstring describes the parameters.

        Parameters
        ----------
        num_groups : int
        num_channels : int
        eps : float, default 1e-5
        affine : bool, default True
        dtype : data-type, default numpy.float32
        activation : {None, "relu", "silu"}, default None
        """
        super().__init__(dtype, activation)
        self.num_groups = _size(num_groups, "num_groups")
        self.num_channels = _size(num_channels, "num_channels", self._param_dtype)
        if self.num_channels % self.num_groups:
            raise ValueError(f"num_groups must divide num_channels {self.num_channels}, "
                             f"got {self.num_groups}")
        self.eps = check_eps(eps)
        self.affine = bool(affine)
        self._ones_zeros(self.num_channels, self.affine)

    def _repr_args(self) -> tuple[tuple[Any, ...], list[tuple[str, Any]]]:
        return (self.num_groups, self.num_channels), [("eps", self.eps),
                                                      ("affine", self.affine)]

    def _check_channels(self, x: Array) -> None:
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"x must have shape (N, {self.num_channels}, ...), got {x.shape}")

    def _forward_eval(self, x: Array) -> Array:
        return self._forward_train(x)[0]

    def _forward_train(self, x: Array) -> tuple[Array, tuple[Array, FloatArray, FloatArray]]:
        self._check_channels(x)
        y, mean, rstd = F.group_norm(x, self.num_groups, self.weight, self.bias, eps=self.eps,
                                     activation=self.activation)
        return y, (x, mean, rstd)

    def _backward(self, dy: ArrayLike, saved: tuple[Array, FloatArray, FloatArray]) -> _Grads:
        x, mean, rstd = saved
        dx, dweight, dbias = F.group_norm_backward(dy, x, mean, rstd, self.num_groups,
                                                   self.weight, activation=self.activation,
                                                   bias=self.bias)
        return dx, dweight, dbias if self.affine else None


class InstanceNorm(_RunningStats, _Layer):
    """Instance normalization of (N, C, *) inputs; optional running statistics
    are averaged over the batch, as PyTorch's InstanceNorm does.

    Per (sample, channel) plane, ``y = (x - mean) / sqrt(var + eps)`` with
    the plane's mean and biased variance, then ``* weight + bias`` per
    channel when ``affine`` (and the activation, if any).  x has at least
    one spatial dim, (N, C, L) or more.  The layer is created in training
    mode: ``layer(x)`` uses each plane's statistics and saves x and them for
    ``backward(dy)``, which returns dx and sets ``grad_weight`` and
    ``grad_bias``.  With ``track_running_stats=True`` a training forward
    also updates running_mean and running_var with the batch averages of
    the planes' means and unbiased variances (an empty batch updates
    nothing), and eval mode normalizes with them; otherwise eval mode
    computes the same y as training.

    Concurrency: eval-mode calls only read the layer and may run from many
    threads; a training step (kernel, running-statistics update, saved
    tensors) runs under a per-layer lock.  Low precision: a layer built with
    ``dtype=np.float16`` or ``dtype="bfloat16"`` keeps weight, bias and the
    running statistics in float32 (PyTorch's mixed mode); a float16/bfloat16
    x is computed in float32, y and dx come back in x's dtype and
    grad_weight/grad_bias are float32.

    Parameters
    ----------
    num_features : int
        Number of channels C: x has shape (N, C, *).
    eps : float, default 1e-5
        Added to the variance.
    momentum : float or None, default 0.1
        Weight of the batch in the running averages, in [0, 1]; None: a
        cumulative average, the batch weighing ``1 / num_batches_tracked``.
    affine : bool, default False
        Learn a per-channel weight (initially ones) and bias (zeros).
    track_running_stats : bool, default False
        Keep running_mean, running_var and num_batches_tracked, and use
        them in eval mode.
    dtype : data-type, default numpy.float32
        float32, float64, float16 or bfloat16 (``ml_dtypes.bfloat16`` or the
        name ``"bfloat16"``, which needs ml_dtypes): the dtype of the
        parameters and running statistics, float32 for float16 and bfloat16.
    activation : {None, "relu", "silu"}, default None
        Applied to y in the same pass, in both modes; backward() includes
        its derivative.

    Attributes
    ----------
    weight, bias : ndarray of shape (num_features,) or None
        In the parameter dtype; None unless ``affine=True``.
    running_mean, running_var : ndarray of shape (num_features,) or None
        The running statistics (zeros and ones initially), in the parameter
        dtype; None unless ``track_running_stats=True``.
    num_batches_tracked : int or None
        Training forwards that updated the running statistics; None unless
        ``track_running_stats=True``.
    grad_weight, grad_bias : ndarray of shape (num_features,) or None
        Set by backward(), in x's dtype (float32 after a float16/bfloat16
        forward); None before it and unless ``affine=True``.
    training : bool
        True in training mode (the initial mode), False after eval().
    dtype : numpy.dtype
        The layer's dtype as given.
    num_features, eps, momentum, affine, track_running_stats, activation
        The constructor's arguments (eps a float, momentum a float or None).

    Raises
    ------
    TypeError
        num_features not an integer (a bool is not one); eps or momentum not
        a real number; dtype not float32, float64, float16 or bfloat16.
    ValueError
        num_features < 1, or more than an array of the
        parameter dtype can hold (``numpy.iinfo(numpy.intp).max`` bytes:
        2**61 - 1 float32 values), whether or not the layer has parameters;
        eps negative, NaN or infinite; momentum outside [0, 1]; activation
        not None, "relu" or "silu".

    See Also
    --------
    cnorm.instance_norm : The forward as a function.
    cnorm.instance_norm_backward : The backward as a function.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> inorm = cnorm.InstanceNorm(3, track_running_stats=True)
    >>> inorm
    InstanceNorm(3, eps=1e-05, momentum=0.1, affine=False, track_running_stats=True)
    >>> x = rng.standard_normal((2, 3, 4), dtype=np.float32)
    >>> y = inorm(x)
    >>> x_hat = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    >>> np.allclose(y, x_hat, atol=1e-5)
    True
    >>> np.allclose(inorm.running_mean, 0.1 * x.mean(-1).mean(0))
    True
    >>> dx = inorm.backward(np.ones_like(y))
    >>> dx.shape, inorm.grad_weight              # affine=False: no parameters
    ((2, 3, 4), None)
    >>> m, v = inorm.running_mean[:, None], inorm.running_var[:, None]
    >>> np.allclose(inorm.eval()(x), (x - m) / np.sqrt(v + 1e-5))   # eval: running statistics
    True
    """

    def __init__(self, num_features: SupportsIndex, *, eps: float = 1e-5,
                 momentum: float | None = 0.1, affine: bool = False,
                 track_running_stats: bool = False, dtype: DTypeLike = np.float32,
                 activation: Activation = None) -> None:
        """Create the layer in training mode; the class docstring describes the parameters.

        Parameters
        ----------
        num_features : int
        eps : float, default 1e-5
        momentum : float or None, default 0.1
        affine : bool, default False
        track_running_stats : bool, default False
        dtype : data-type, default numpy.float32
        activation : {None, "relu", "silu"}, default None
        """
        super().__init__(dtype, activation)
        self.num_features = _size(num_features, "num_features", self._param_dtype)
        self.eps = check_eps(eps)
        self.affine = bool(affine)
        self._ones_zeros(self.num_features, self.affine)
        self._init_running(self.num_features, momentum, track_running_stats)

    def _repr_args(self) -> tuple[tuple[Any, ...], list[tuple[str, Any]]]:
        return (self.num_features,), [
            ("eps", self.eps), ("momentum", self.momentum), ("affine", self.affine),
            ("track_running_stats", self.track_running_stats)]

    def _check_channels(self, x: Array) -> None:
        if x.ndim < 3 or x.shape[1] != self.num_features:
            raise ValueError(f"x must have shape (N, {self.num_features}, ...), got {x.shape}")

    def _forward_train(self, x: Array) -> tuple[Array, tuple[Array, FloatArray, FloatArray]]:
        self._check_channels(x)
        y, mean, rstd = F.instance_norm(x, self.weight, self.bias, eps=self.eps,
                                        activation=self.activation)
        if self.track_running_stats and x.shape[0] > 0:  # an empty batch observes nothing
            # Each plane's moments in float64 from x itself: 1 / rstd**2 - eps
            # would lose every digit of a variance far below eps (rstd is
            # rounded to x's dtype).
            planes = Moments.of(np.reshape(x, (x.shape[0] * x.shape[1], -1)), axis=0)
            self._update_running(planes.mean.reshape(x.shape[:2]).mean(axis=0),
                                 planes.var(ddof=1).reshape(x.shape[:2]).mean(axis=0))
        return y, (x, mean, rstd)

    def _forward_eval(self, x: Array) -> Array:
        if not self.track_running_stats:
            return self._forward_train(x)[0]
        self._check_channels(x)
        return F.batch_norm_infer(x, cast(FloatArray, self.running_mean),
                                  cast(FloatArray, self.running_var), self.weight, self.bias,
                                  eps=self.eps, axis=1, activation=self.activation)

    def _backward(self, dy: ArrayLike, saved: tuple[Array, FloatArray, FloatArray]) -> _Grads:
        x, mean, rstd = saved
        dx, dweight, dbias = F.instance_norm_backward(dy, x, mean, rstd, self.weight,
                                                      activation=self.activation, bias=self.bias)
        return dx, dweight, dbias if self.affine else None


class RMSNorm(_Layer):
    """RMS normalization over the trailing ``normalized_shape`` dims
    (eps=None: machine epsilon of the input's dtype).

    Per row (each index of x's leading dims), ``y = x / sqrt(mean(x**2) +
    eps) * weight`` (then the activation, if any), the mean over the
    trailing dims; there is no bias and no centring.  There are no running
    statistics: training and eval mode compute the same y.  The layer is
    created in training mode, where ``layer(x)`` also saves x and the
    statistics for ``backward(dy)``, which returns dx and sets
    ``grad_weight`` (``grad_bias`` stays None).

    Concurrency: eval-mode calls only read the layer and may run from many
    threads; a training forward stores its saved tensors under a per-layer
    lock.  Low precision: a layer built with ``dtype=np.float16`` or
    ``dtype="bfloat16"`` keeps weight in float32 (PyTorch's mixed mode); a
    float16/bfloat16 x is computed in float32 (eps=None: float32's machine
    epsilon), y and dx come back in x's dtype and grad_weight is float32.

    Parameters
    ----------
    normalized_shape : int or sequence of int
        The trailing dims of x that each row spans (an int n means (n,)).
    eps : float or None, default None
        Added to the mean square; None: ``numpy.finfo(x.dtype).eps`` of each
        input (float32's for float16/bfloat16 x).
    elementwise_affine : bool, default True
        Learn a weight (initially ones) of shape ``normalized_shape``.
    dtype : data-type, default numpy.float32
        float32, float64, float16 or bfloat16 (``ml_dtypes.bfloat16`` or the
        name ``"bfloat16"``, which needs ml_dtypes): the dtype of the
        weight, float32 for float16 and bfloat16.
    activation : {None, "relu", "silu"}, default None
        Applied to y in the same pass, in both modes; backward() includes
        its derivative.

    Attributes
    ----------
    normalized_shape : tuple of int
        The normalized trailing shape.
    weight : ndarray of shape normalized_shape or None
        In the parameter dtype; None when ``elementwise_affine=False``.
    bias : None
        Always None (RMSNorm has no bias).
    grad_weight : ndarray of shape normalized_shape or None
        Set by backward(), in x's dtype (float32 after a float16/bfloat16
        forward); None before it and when ``elementwise_affine=False``.
    grad_bias : None
        Always None.
    training : bool
        True in training mode (the initial mode), False after eval().
    dtype : numpy.dtype
        The layer's dtype as given.
    eps, elementwise_affine, activation
        The constructor's arguments (eps a float or None).

    Raises
    ------
    TypeError
        normalized_shape not an int or a sequence of ints (a float, string,
        bool or None in it); eps not a real number or None; dtype not
        float32, float64, float16 or bfloat16.
    ValueError
        normalized_shape empty, holding a size < 1, or of more elements
        than an array of the parameter dtype can hold
        (``numpy.iinfo(numpy.intp).max`` bytes: 2**61 - 1 float32 values),
        whether or not the layer has parameters; eps negative, NaN or
        infinite; activation not None, "relu" or "silu".

    See Also
    --------
    cnorm.rms_norm : The forward as a function.
    cnorm.rms_norm_backward : The backward as a function.
    cnorm.add_rms_norm : Residual add and RMS norm in one pass.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> rms = cnorm.RMSNorm(4)
    >>> rms
    RMSNorm((4,), eps=None, elementwise_affine=True)
    >>> x = rng.standard_normal((2, 3, 4), dtype=np.float32)
    >>> y = rms(x)
    >>> eps = np.finfo(np.float32).eps
    >>> np.allclose(y, x / np.sqrt((x**2).mean(-1, keepdims=True) + eps))
    True
    >>> dx = rms.backward(np.ones_like(y))
    >>> dx.shape, rms.grad_weight.shape, rms.grad_bias
    ((2, 3, 4), (4,), None)
    >>> np.array_equal(rms.eval()(x), y)         # eval mode: the same y
    True
    """

    _state_names = ("weight",)

    def __init__(self, normalized_shape: ShapeLike, *, eps: float | None = None,
                 elementwise_affine: bool = True, dtype: DTypeLike = np.float32,
                 activation: Activation = None) -> None:
        """Create the layer in training mode; the class docstring describes the parameters.

        Parameters
        ----------
        normalized_shape : int or sequence of int
        eps : float or None, default None
        elementwise_affine : bool, default True
        dtype : data-type, default numpy.float32
        activation : {None, "relu", "silu"}, default None
        """
        super().__init__(dtype, activation)
        self.normalized_shape = _shape_tuple(normalized_shape, self._param_dtype)
        self.eps = None if eps is None else check_eps(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self._ones_zeros(self.normalized_shape, self.elementwise_affine, with_bias=False)

    def _repr_args(self) -> tuple[tuple[Any, ...], list[tuple[str, Any]]]:
        return (self.normalized_shape,), [("eps", self.eps),
                                          ("elementwise_affine", self.elementwise_affine)]

    def _forward_eval(self, x: Array) -> Array:
        return self._forward_train(x)[0]

    def _forward_train(self, x: Array) -> tuple[Array, tuple[Array, FloatArray]]:
        y, rstd = F.rms_norm(x, self.normalized_shape, self.weight, eps=self.eps,
                             activation=self.activation)
        return y, (x, rstd)

    def _backward(self, dy: ArrayLike, saved: tuple[Array, FloatArray]) -> _Grads:
        x, rstd = saved
        dx, dweight = F.rms_norm_backward(dy, x, rstd, self.normalized_shape, self.weight,
                                          activation=self.activation)
        return dx, dweight, None


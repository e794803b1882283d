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
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Optional, SupportsIndex, cast

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from cnorm import functional as F
from cnorm._typing import Activation, Array, FloatArray, ShapeLike
from cnorm._validate import (
    MAX_SIZE,
    as_contiguous,
    as_float_array,
    check_eps,
    check_momentum,
    check_positive_int,
    normalize_axis,
    same_shape,
)
from cnorm.activation import activation_code
from cnorm.folding import fold_batch_norm
from cnorm.lowp import downcast, is_low_dtype, is_low_precision, upcast
from cnorm.statistics import Moments

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["BatchNorm", "BatchRenorm", "GroupNorm", "InstanceNorm", "LayerNorm", "RMSNorm"]

# (dx, grad_weight, grad_bias) of a backward
_Grads = tuple[Array, Optional[FloatArray], Optional[FloatArray]]


class _Layer:
    """Shared protocol; subclasses define _forward_train/_forward_eval/_backward."""

    _state_names: ClassVar[tuple[str, ...]] = ("weight", "bias")

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
        self.training = bool(mode)
        return self

    def eval(self) -> Self:
        return self.train(False)

    # Whether __call__ takes mask= (statistics over the masked-in positions).
    _accepts_mask: ClassVar[bool] = False

    def __call__(self, x: ArrayLike, mask: ArrayLike | None = None) -> Array:
        low: np.dtype[Any] | None = getattr(x, "dtype", None) if is_low_precision(x) else None
        x = upcast(x) if low else as_float_array(x, "x")   # upcast: already a private copy
        options: dict[str, Any] = {}
        if mask is not None:
            if not self._accepts_mask:
                raise TypeError(f"{type(self).__name__} does not take a mask")
            options["mask"] = np.array(mask, copy=True)
        if self.training:
            # backward() must see this batch even if the caller refills its
            # buffer in between: keep a private copy (the functional API is
            # the zero-copy path).
            if low is None:
                x = np.array(x, copy=True)
            with self._lock:
                y, saved = self._forward_train(x, **options)
                self._saved = (saved, low)
        else:
            y = self._forward_eval(x, **options)
        return y if low is None else downcast(y, low)

    def backward(self, dy: ArrayLike) -> Array:
        """dx for the most recent training-mode forward; sets grad_weight/grad_bias.
        After a float16/bfloat16 forward, dy has that dtype and so has dx."""
        with self._lock:
            saved, low = self._saved or (None, None)
        if saved is None:
            raise RuntimeError("backward() needs a training-mode forward call first")
        if low is not None:
            dy = np.asarray(dy)
            if dy.dtype != low:
                raise TypeError(f"dy must have the dtype of the forward's x ({low}), "
                                f"got {dy.dtype}")
            dy = upcast(dy)
        dx, self.grad_weight, self.grad_bias = self._backward(dy, saved)
        return dx if low is None else downcast(dx, low)

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
        """Copies of the parameters and buffers under PyTorch's keys."""
        state: dict[str, NDArray[Any]] = {}
        for name in self._state_names:
            value = getattr(self, name)
            if value is not None:
                state[name] = np.array(value, copy=True)
        return state

    def load_state_dict(self, state_dict: Mapping[str, ArrayLike]) -> None:
        """Load parameters and buffers (anything numpy.asarray takes, e.g. a
        torch state dict).  All entries are checked before any is assigned."""
        expected = self.state_dict()
        missing = sorted(set(expected) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(expected))
        if missing or unexpected:
            raise ValueError(f"state_dict keys do not match: missing {missing}, "
                             f"unexpected {unexpected}")
        converted: dict[str, Any] = {}
        for name, current in expected.items():
            value = np.asarray(state_dict[name])
            if value.shape != current.shape:
                raise ValueError(f"state_dict[{name!r}] must have shape {current.shape}, "
                                 f"got {value.shape}")
            if value.dtype.kind not in "fiu":
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


def _layer_dtype(dtype: DTypeLike) -> np.dtype[Any]:
    """float32, float64, float16 or bfloat16 (given as ml_dtypes.bfloat16 or
    the name "bfloat16", which needs ml_dtypes installed)."""
    if isinstance(dtype, str) and dtype == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:
            raise TypeError("dtype 'bfloat16' needs the ml_dtypes package") from None
        dtype = ml_dtypes.bfloat16
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)) and not is_low_dtype(dt):
        raise TypeError(f"dtype must be float32, float64, float16 or bfloat16, got {dt}")
    return dt


def _batch_counter(value: NDArray[Any]) -> int:
    """num_batches_tracked of a state dict as a Python int in int64's range."""
    v = value.item()
    if isinstance(v, float) and not (math.isfinite(v) and v == math.floor(v)):
        v = None
    if v is None or not 0 <= int(v) <= np.iinfo(np.int64).max:
        raise ValueError("state_dict['num_batches_tracked'] must be an integer in "
                         f"[0, 2**63), got {value}")
    return int(v)


class _RunningStats(_Layer):
    """Mixin: PyTorch's running_mean / running_var / num_batches_tracked."""

    _state_names = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

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
        state = super().state_dict()
        if self.track_running_stats:
            state["num_batches_tracked"] = np.array(self.num_batches_tracked, np.int64)
        return state

    def _update_running(self, mean: NDArray[np.float64], unbiased_var: NDArray[np.float64]
                        ) -> None:
        """One step of the running averages (float64 arithmetic); caller holds the lock."""
        if not self.track_running_stats:
            return
        # tracking: the buffers and the counter exist
        running_mean, running_var = cast(FloatArray, self.running_mean), cast(FloatArray,
                                                                              self.running_var)
        count = cast(int, self.num_batches_tracked) + 1
        f = 1.0 / count if self.momentum is None else self.momentum
        new_mean = (1.0 - f) * running_mean.astype(np.float64) + f * mean
        new_var = (1.0 - f) * running_var.astype(np.float64) + f * unbiased_var
        # Commit: stores only, no Python-level call between them, so a
        # KeyboardInterrupt lands before or after the whole update.
        running_mean[...] = new_mean
        running_var[...] = new_var
        self.num_batches_tracked = count


def _unbiased(var: NDArray[np.float64], count: float) -> NDArray[np.float64]:
    return var * (count / (count - 1))


class BatchNorm(_RunningStats, _Layer):
    """Batch normalization over channel axis ``axis`` (1: NCHW, -1: channels-last).

    ``layer(x, mask=m)`` (bool, broadcastable to x, size 1 on the channel
    axis) takes the statistics over the masked-in positions only, and
    backward() uses the same mask.  ``unbiased_running_var=False`` keeps the
    population variance in running_var (ONNX, Keras, Flax) instead of
    PyTorch's unbiased one."""

    _accepts_mask = True

    def __init__(self, num_features: SupportsIndex, *, eps: float = 1e-5,
                 momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, axis: SupportsIndex = 1,
                 dtype: DTypeLike = np.float32, unbiased_running_var: bool = True,
                 activation: Activation = None) -> None:
        super().__init__(dtype, activation)
        self.num_features = check_positive_int(num_features, "num_features", MAX_SIZE)
        self.eps = check_eps(eps)
        self.affine = bool(affine)
        self.axis: SupportsIndex = axis
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
        """(weight', bias') of the preceding Linear/Conv with this layer's
        eval-mode normalization folded in (see cnorm.fold_batch_norm)."""
        if not self.track_running_stats:
            raise ValueError("fold_into needs running statistics (track_running_stats=True)")
        return fold_batch_norm(weight, bias, cast(FloatArray, self.running_mean),
                               cast(FloatArray, self.running_var), self.weight, self.bias,
                               eps=self.eps, axis=axis)

    def _running_var_of(self, var: NDArray[np.float64], count: float) -> NDArray[np.float64]:
        """The batch variance the running average takes."""
        return _unbiased(var, count) if self.unbiased_running_var else var

    def _channels(self, x: Array) -> int:
        if x.ndim < 2:
            raise ValueError(f"x must have at least 2 dimensions (a batch and {self.num_features} "
                             f"channels on axis {self.axis}), got shape {x.shape}")
        axis = normalize_axis(self.axis, x.ndim)
        if x.shape[axis] != self.num_features:
            raise ValueError(f"x must have {self.num_features} channels on axis {self.axis}, "
                             f"got shape {x.shape}")
        return x.size // self.num_features

    def _forward_train(self, x: Array, mask: NDArray[np.bool_] | None = None
                       ) -> tuple[Array, tuple[Any, ...]]:
        count: float = self._channels(x)
        act = activation_code(self.activation)
        if mask is None:
            y, mean, var = F.batch_statistics(x, self.weight, self.bias, self.eps, self.axis,
                                              None, act)
        else:
            y, mean, var, count = F.masked_batch_statistics(x, self.weight, self.bias, self.eps,
                                                            self.axis, None, mask, act)
        self._update_running(mean, self._running_var_of(var, count))
        return y, (x, *F.saved_statistics(mean, var, self.eps, x.dtype), mask)

    def _forward_eval(self, x: Array, mask: NDArray[np.bool_] | None = None) -> Array:
        self._channels(x)
        if not self.track_running_stats:
            return F.batch_norm_train(x, self.weight, self.bias, eps=self.eps, axis=self.axis,
                                      mask=mask, activation=self.activation)[0]
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
    dmax), from the running statistics before this step's update; r and d
    are constants for the gradient.  ``rmax`` and ``dmax`` are plain
    attributes a training loop may ramp.  Inference is batch norm with the
    running statistics."""

    _accepts_mask = False

    def __init__(self, num_features: SupportsIndex, *, eps: float = 1e-5,
                 momentum: float | None = 0.1, rmax: float = 3.0, dmax: float = 5.0,
                 affine: bool = True, axis: SupportsIndex = 1, dtype: DTypeLike = np.float32,
                 activation: Activation = None) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=True, axis=axis, dtype=dtype, activation=activation)
        self.rmax = rmax
        self.dmax = dmax

    def _repr_args(self) -> tuple[tuple[Any, ...], list[tuple[str, Any]]]:
        return (self.num_features,), [
            ("eps", self.eps), ("momentum", self.momentum), ("rmax", self.rmax),
            ("dmax", self.dmax), ("affine", self.affine), ("axis", self.axis)]

    def _clip_limits(self) -> tuple[float, float]:
        rmax, dmax = float(self.rmax), float(self.dmax)
        if not (math.isfinite(rmax) and rmax >= 1.0):
            raise ValueError(f"rmax must be finite and >= 1, got {self.rmax!r}")
        if not (math.isfinite(dmax) and dmax >= 0.0):
            raise ValueError(f"dmax must be finite and >= 0, got {self.dmax!r}")
        return rmax, dmax

    # No mask= (BatchNorm's takes one): __call__ refuses a mask here (_accepts_mask).
    def _forward_train(self, x: Array) -> tuple[  # type: ignore[override]
            Array, tuple[Array, FloatArray, FloatArray, NDArray[np.float64], NDArray[np.float64]]]:
        count = self._channels(x)
        rmax, dmax = self._clip_limits()
        y, mean, var, r, d = F.batch_renorm_statistics(
            x, self.weight, self.bias, self.eps, self.axis, None,
            cast(FloatArray, self.running_mean).astype(np.float64),
            cast(FloatArray, self.running_var).astype(np.float64), rmax, dmax,
            activation_code(self.activation))
        self._update_running(mean, self._running_var_of(var, count))
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
            dy = F.channel_preactivation_grad(
                as_contiguous(dy), x, F.channel_view(x, self.axis), mean, invstd,
                (weight * r).astype(x.dtype), (d * weight + bias).astype(x.dtype),
                self.activation)
        dx, dweight_bn, dbias = F.batch_norm_backward(dy, x, mean, invstd,
                                                      (weight * r).astype(x.dtype),
                                                      axis=self.axis)
        if not self.affine:
            return dx, None, None
        grad_weight = (r * dweight_bn + d * dbias).astype(x.dtype)
        return dx, grad_weight, dbias


class LayerNorm(_Layer):
    """Layer normalization over the trailing ``normalized_shape`` dims."""

    def __init__(self, normalized_shape: ShapeLike, *, eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True,
                 dtype: DTypeLike = np.float32, activation: Activation = None) -> None:
        super().__init__(dtype, activation)
        self.normalized_shape = _shape_tuple(normalized_shape)
        self.eps = check_eps(eps)
        self.elementwise_affine = bool(elementwise_affine)
        self._ones_zeros(self.normalized_shape, self.elementwise_affine, bias)

    def _repr_args(self) -> tuple[tuple[Any, ...], list[tuple[str, Any]]]:
        return (self.normalized_shape,), [
            ("eps", self.eps), ("elementwise_affine", self.elementwise_affine),
            ("bias", self.bias is not None or not self.elementwise_affine)]

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
    """Group normalization of (N, C, *) inputs over groups of channels."""

    def __init__(self, num_groups: SupportsIndex, num_channels: SupportsIndex, *,
                 eps: float = 1e-5, affine: bool = True, dtype: DTypeLike = np.float32,
                 activation: Activation = None) -> None:
        super().__init__(dtype, activation)
        self.num_groups = check_positive_int(num_groups, "num_groups")
        self.num_channels = check_positive_int(num_channels, "num_channels")
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
    are averaged over the batch, as PyTorch's InstanceNorm does."""

    def __init__(self, num_features: SupportsIndex, *, eps: float = 1e-5,
                 momentum: float | None = 0.1, affine: bool = False,
                 track_running_stats: bool = False, dtype: DTypeLike = np.float32,
                 activation: Activation = None) -> None:
        super().__init__(dtype, activation)
        self.num_features = check_positive_int(num_features, "num_features", MAX_SIZE)
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
    (eps=None: machine epsilon of the input's dtype)."""

    _state_names = ("weight",)

    def __init__(self, normalized_shape: ShapeLike, *, eps: float | None = None,
                 elementwise_affine: bool = True, dtype: DTypeLike = np.float32,
                 activation: Activation = None) -> None:
        super().__init__(dtype, activation)
        self.normalized_shape = _shape_tuple(normalized_shape)
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


def _shape_tuple(normalized_shape: Any) -> tuple[int, ...]:
    """normalized_shape (unchecked, as the caller gave it) as a tuple of sizes."""
    shape = (normalized_shape,) if np.ndim(normalized_shape) == 0 else tuple(normalized_shape)
    return tuple(check_positive_int(d, "normalized_shape", MAX_SIZE) for d in shape)

"""SyncBatchNorm: batch norm whose training statistics span every rank of an
MPI communicator (data-parallel training on CPUs).

Forward: each rank computes its per-channel (count, mean, m2) with the
channel kernel; one all-gather shares them and every rank merges them in
rank order with Chan's formula, so all ranks hold the same bits whatever the
arrival order.  Backward: one all-gather of the per-channel (sum(dy),
sum(dy * x_hat)), summed in rank order.  Before either, a small all-gather of
each rank's shape check turns a rank's bad input into the same error on every
rank instead of a hang.

mpi4py is imported only when a SyncBatchNorm is built.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn, SupportsIndex, cast

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from cnorm import _kernels
from cnorm import functional as F
from cnorm._typing import Activation, Array, FloatArray
from cnorm._validate import as_contiguous, as_float_array, same_shape
from cnorm.activation import activation_code
from cnorm.layers import BatchNorm
from cnorm.lowp import is_low_precision
from cnorm.statistics import Moments

if TYPE_CHECKING:
    from mpi4py import MPI

__all__ = ["SyncBatchNorm"]


class SyncBatchNorm(BatchNorm):
    """BatchNorm over the union of every rank's batch (see the module doc).

    Training on P ranks equals BatchNorm on the concatenation of their
    batches: outputs, saved statistics, running statistics (unbiased with
    the global count), dx per rank, and grad_weight/grad_bias (the global
    sums) on every rank.  A rank may hold an empty batch.  Eval mode
    normalizes locally with the running statistics, without communication.
    """

    def __init__(self, num_features: SupportsIndex, *, comm: MPI.Comm | None = None,
                 eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, axis: SupportsIndex = 1,
                 dtype: DTypeLike = np.float32, activation: Activation = None) -> None:
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats, axis=axis, dtype=dtype,
                         activation=activation)
        try:
            from mpi4py import MPI
        except ImportError as error:
            raise ImportError("SyncBatchNorm needs mpi4py and an MPI library: "
                              'pip install "cnorm[mpi]"') from error
        if comm is None:
            comm = MPI.COMM_WORLD
        if not isinstance(comm, MPI.Comm):
            raise TypeError(f"comm must be an mpi4py communicator (mpi4py.MPI.Comm), got "
                            f"{type(comm).__name__}")
        self.comm: MPI.Comm = comm

    _accepts_mask = False

    def _repr_args(self) -> tuple[tuple[Any, ...], list[tuple[str, Any]]]:
        positional, keywords = super()._repr_args()
        return positional, [("comm", self.comm), *keywords]

    def __getstate__(self) -> NoReturn:
        raise TypeError("a SyncBatchNorm holds an MPI communicator and cannot be pickled; "
                        "pickle its state_dict() instead")

    # ---- collectives ----------------------------------------------------

    def _agree(self, problem: str | None, x_dtype: str | None) -> None:
        """All-gather every rank's (problem or None, layer configuration, x's
        dtype) and raise the same error on every rank when any rank has a
        problem or the ranks disagree.  It runs before the other collectives
        of a step, so no rank waits in one that another never enters."""
        mine = (problem, self.num_features, self.dtype.str, self.axis, x_dtype)
        views = self.comm.allgather(mine)
        for rank, (message, *_) in enumerate(views):
            if message is not None:
                raise ValueError(f"SyncBatchNorm: rank {rank} of {len(views)}: {message}")
        if len({tuple(v[1:]) for v in views}) > 1:
            listed = "; ".join(f"rank {r}: num_features={v[1]}, dtype={np.dtype(v[2])}, "
                               f"axis={v[3]}, x dtype={v[4]}" for r, v in enumerate(views))
            raise ValueError(f"SyncBatchNorm: ranks disagree on the layer or input ({listed})")

    def _gather_rows(self, rows: ArrayLike) -> NDArray[np.float64]:
        """(P, *rows.shape) float64: every rank's rows, in rank order."""
        rows = np.ascontiguousarray(rows, np.float64)
        everyone = np.empty((self.comm.Get_size(), *rows.shape), np.float64)
        self.comm.Allgather(rows, everyone)
        return everyone

    # ---- training -------------------------------------------------------

    # No mask= (BatchNorm's __call__ takes one): SyncBatchNorm refuses masks.
    def __call__(self, x: ArrayLike) -> Array:  # type: ignore[override]
        if not self.training:
            return super().__call__(x)
        problem, x_dtype = None, None
        try:
            # (a float16/bfloat16 x is an array: it has a dtype)
            checked = cast(Array, x) if is_low_precision(x) else as_float_array(x, "x")
            x_dtype = checked.dtype.name
            self._channels(checked)
        except (TypeError, ValueError) as error:
            problem = str(error)
        self._agree(problem, x_dtype)
        return super().__call__(x)

    def backward(self, dy: ArrayLike) -> Array:
        with self._lock:
            saved, low = self._saved or (None, None)
        problem, dy_dtype = None, None
        try:
            if saved is None:
                raise ValueError("backward() needs a training-mode forward call first")
            checked = np.asarray(dy) if low is not None else as_float_array(dy, "dy")
            dy_dtype = checked.dtype.name
            if low is not None and checked.dtype != low:
                raise TypeError(f"dy must have the dtype of the forward's x ({low}), got "
                                f"{checked.dtype}")
            if low is None:
                same_shape(checked, saved[0], "dy")
            elif checked.shape != saved[0].shape:
                raise ValueError(f"dy must have the shape of x {saved[0].shape}, got "
                                 f"{checked.shape}")
        except (TypeError, ValueError) as error:
            problem = str(error)
        self._agree(problem, dy_dtype)
        return super().backward(dy)

    # No mask= either: the statistics span the ranks' whole batches.
    def _forward_train(self, x: Array) -> tuple[  # type: ignore[override]
            Array, tuple[Array, FloatArray, FloatArray, float]]:
        N, C, S = F.channel_view(x, self.axis)
        mean_local = np.empty(C, np.float64)
        m2_local = np.empty(C, np.float64)
        _kernels.channel_moments(x, N, C, S, mean_local, m2_local)
        parts = self._gather_rows([np.full(C, float(N * S)), mean_local, m2_local])
        total = Moments.empty(C)
        for part in parts:   # rank order: the same bits on every rank
            total = total.merge(Moments(*part))
        count = float(total.count[0])
        if count < 2:
            raise ValueError(f"training needs more than one value per channel over all ranks, "
                             f"got {count:.0f}")
        var = total.m2 / count
        mean, invstd = F.saved_statistics(total.mean, var, self.eps, x.dtype)
        self._update_running(total.mean, self._running_var_of(var, count))
        weight = np.ones(C) if self.weight is None else self.weight.astype(np.float64)
        bias = np.zeros(C) if self.bias is None else self.bias
        y = np.empty_like(x)
        _kernels.channel_standardize(x, N, C, S, mean, (weight * invstd).astype(x.dtype),
                                     bias.astype(x.dtype), y, activation_code(self.activation))
        return y, (x, mean, invstd, count)

    def _backward(self, dy: ArrayLike, saved: tuple[Any, ...]
                  ) -> tuple[Array, FloatArray | None, FloatArray | None]:
        x, mean, invstd, count = saved
        N, C, S = F.channel_view(x, self.axis)
        dyc = as_contiguous(dy)
        weight = None if self.weight is None else self.weight.astype(x.dtype)
        if self.activation is not None:
            bias = None if self.bias is None else self.bias.astype(x.dtype)
            dyc = F.channel_preactivation_grad(dyc, x, (N, C, S), mean, invstd, weight, bias,
                                               self.activation)
        sums = np.empty((2, C), np.float64)
        _kernels.bn_backward(dyc, x, N, C, S, mean, invstd, weight, None, sums[0], sums[1])
        sum_dy, sum_dy_xhat = self._gather_rows(sums).sum(axis=0)
        dx = np.empty_like(x)
        _kernels.bn_backward_dx(dyc, x, N, C, S, mean, invstd, weight, sum_dy, sum_dy_xhat,
                                count, dx)
        if not self.affine:
            return dx, None, None
        return dx, sum_dy_xhat.astype(x.dtype), sum_dy.astype(x.dtype)

"""SyncBatchNorm: batch norm whose training statistics span every rank of an
MPI communicator (data-parallel training on CPUs).

Forward: each rank computes its per-channel (count, mean, m2) with the
channel kernel; one all-gather shares them and every rank merges them in
rank order with Chan's formula, so all ranks hold the same bits whatever the
arrival order.  Backward: one all-gather of the per-channel (sum(dy),
sum(dy * x_hat)), summed in rank order.  Before either, a small all-gather of
each rank's checks turns a rank's bad input or state into the same error on
every rank instead of a hang.

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

# The error classes a rank's problem keeps on every rank (_agree).
_ERRORS: dict[str, type[Exception]] = {
    "RuntimeError": RuntimeError, "TypeError": TypeError, "ValueError": ValueError}



def _plain(value: Any) -> Any:
    """A NumPy scalar as its Python value (np.float64(1e-5) agrees with 1e-5)."""
    return value.item() if isinstance(value, np.generic) else value


class SyncBatchNorm(BatchNorm):
    """BatchNorm over the union of every rank's batch (see the module doc).

    Training on P ranks equals BatchNorm on the concatenation of their
    batches: outputs, saved statistics, running statistics (unbiased with
    the global count), dx per rank, and grad_weight/grad_bias (the global
    sums) on every rank.  A rank may hold an empty batch.  Eval mode
    normalizes locally with the running statistics, without communication
    (with ``track_running_stats=False``: with the local batch's statistics).

    The protocol is BatchNorm's (created in training mode, ``layer(x)``,
    ``train()`` / ``eval()``, ``backward(dy)`` sets grad_weight and
    grad_bias, ``state_dict()`` with PyTorch's keys).  A training forward
    all-gathers each rank's per-channel (count, mean, m2) and merges them
    in rank order; backward all-gathers the per-channel (sum(dy),
    sum(dy * x_hat)) and sums them in rank order, so every rank holds the
    same bits.  Both are collectives: every rank of ``comm`` makes the same
    sequence of training calls, one thread per rank.  Each first
    all-gathers every rank's checks (BatchNorm's checks of x or dy and of
    the layer's state: a forward to differentiate, weight, bias, eps) and
    layer configuration, so a problem on one rank raises the same error on
    every rank instead of a hang: the error BatchNorm raises for the first
    rank (in rank order) that has one, of the same class (RuntimeError for
    backward() before a training forward, TypeError, ValueError), its
    message naming that rank.  Ranks disagreeing on num_features, dtype,
    axis, eps, momentum, affine, activation or x's dtype raise ValueError.

    No mask, and running_var always averages the unbiased variance (no
    ``unbiased_running_var``).  A SyncBatchNorm cannot be pickled (it holds
    a communicator): pickle its state_dict().  Low precision is as in
    BatchNorm: a float16/bfloat16 layer keeps parameters and running
    statistics in float32, and float16/bfloat16 x gives y and dx of x's
    dtype.  mpi4py is imported when a SyncBatchNorm is built.

    Parameters
    ----------
    num_features : int
        Number of channels C: the size of x on ``axis``.
    comm : mpi4py.MPI.Comm, optional
        The communicator whose ranks share the batch; None: COMM_WORLD.
    eps : float, default 1e-5
        Added to the variance.
    momentum : float or None, default 0.1
        Weight of the batch in the running averages, in [0, 1]; None: a
        cumulative average (see BatchNorm).
    affine : bool, default True
        Learn a per-channel weight (initially ones) and bias (zeros).
    track_running_stats : bool, default True
        Keep running_mean, running_var and num_batches_tracked.
    axis : int, default 1
        The channel axis of x (negative: from the end).
    dtype : data-type, default numpy.float32
        float32, float64, float16 or bfloat16: the dtype of the parameters
        and running statistics, float32 for float16 and bfloat16.
    activation : {None, "relu", "silu"}, default None
        Applied to y in the same pass, in both modes; backward() includes
        its derivative.

    Attributes
    ----------
    comm : mpi4py.MPI.Comm
        The communicator.
    weight, bias : ndarray of shape (num_features,) or None
        The learnable parameters, in the parameter dtype; None when
        ``affine=False``.
    running_mean, running_var : ndarray of shape (num_features,) or None
        The running statistics (every rank applies the same update), in the
        parameter dtype; None when ``track_running_stats=False``.
    num_batches_tracked : int or None
        Training forwards that updated the running statistics; None when
        ``track_running_stats=False``.
    grad_weight, grad_bias : ndarray of shape (num_features,) or None
        Set by backward(): the sums over every rank's batch, in x's dtype
        (float32 after a float16/bfloat16 forward); None before it and when
        ``affine=False``.
    training : bool
        True in training mode (the initial mode), False after eval().
    dtype : numpy.dtype
        The layer's dtype as given.
    num_features, eps, momentum, affine, track_running_stats, axis
        The constructor's arguments (eps a float, momentum a float or None).
    activation : str or None
        The constructor's argument.

    Raises
    ------
    ImportError
        mpi4py is not installed.
    TypeError
        comm not an mpi4py communicator; the arguments BatchNorm refuses
        with TypeError, with its checks and messages: num_features or axis
        not an integer (a bool is not one); eps or momentum not a real
        number; dtype not float32, float64, float16 or bfloat16.
    ValueError
        comm is MPI.COMM_NULL; the arguments BatchNorm refuses with
        ValueError: num_features < 1 or
        more than an array of the parameter dtype can hold; eps negative,
        NaN or infinite; momentum outside [0, 1]; activation not None,
        "relu" or "silu".  (eps=0 is accepted, and refused by a training
        forward, as in BatchNorm.)

    See Also
    --------
    cnorm.BatchNorm : The same on one process.
    cnorm.batch_norm_train : The (single-process) training forward as a function.

    Examples
    --------
    Run by every rank (here a single process, where it is BatchNorm):

    >>> from mpi4py import MPI
    >>> rng = np.random.default_rng(0)
    >>> sbn = cnorm.SyncBatchNorm(3, comm=MPI.COMM_WORLD)
    >>> sbn                                      # as BatchNorm's: no communicator
    SyncBatchNorm(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True, axis=1)
    >>> x = rng.standard_normal((4, 3, 5), dtype=np.float32)   # this rank's part of the batch
    >>> y = sbn(x)                               # statistics of every rank's x
    >>> np.allclose(y, cnorm.BatchNorm(3)(x), atol=1e-6)
    True
    >>> dx = sbn.backward(np.ones_like(y))       # grad_weight, grad_bias: sums over all ranks
    >>> dx.shape, sbn.grad_bias
    ((4, 3, 5), array([20., 20., 20.], dtype=float32))
    >>> sbn.eval()(x).shape                      # eval: local, with the running statistics
    (4, 3, 5)
    """

    _low_precision_kernels = False   # its own arithmetic in x's dtype

    def __init__(self, num_features: SupportsIndex, *, comm: MPI.Comm | None = None,
                 eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, axis: SupportsIndex = 1,
                 dtype: DTypeLike = np.float32, activation: Activation = None) -> None:
        """Create the layer in training mode; the class docstring describes the parameters.

        Parameters
        ----------
        num_features : int
        comm : mpi4py.MPI.Comm, optional
        eps : float, default 1e-5
        momentum : float or None, default 0.1
        affine : bool, default True
        track_running_stats : bool, default True
        axis : int, default 1
        dtype : data-type, default numpy.float32
        activation : {None, "relu", "silu"}, default None
        """
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
        if comm == MPI.COMM_NULL:   # no ranks: the first collective would fail inside MPI
            raise ValueError("comm must be a communicator with ranks, got MPI.COMM_NULL")
        self.comm: MPI.Comm = comm

    _accepts_mask = False

    # repr: BatchNorm's (PyTorch's SyncBatchNorm shows no process group either).

    def __getstate__(self) -> NoReturn:
        raise TypeError("a SyncBatchNorm holds an MPI communicator and cannot be pickled; "
                        "pickle its state_dict() instead")

    # ---- collectives ----------------------------------------------------

    # The configuration the ranks must share: (name in messages, attribute).
    _AGREED = (("num_features", "num_features"), ("dtype", "dtype"), ("axis", "axis"),
               ("eps", "eps"), ("momentum", "momentum"), ("affine", "affine"),
               ("activation", "activation"))

    def _agree(self, problem: Exception | None, x_dtype: str | None) -> None:
        """All-gather every rank's (problem or None, layer configuration, x's
        dtype) and raise the same error on every rank when any rank has a
        problem or the ranks disagree.  It runs before the other collectives
        of a step, so no rank waits in one that another never enters.

        The first rank (in rank order) with a problem decides the error: its
        class (RuntimeError, TypeError or ValueError, as BatchNorm raises
        it) and its message, prefixed with the rank."""
        sent = None if problem is None else (type(problem).__name__, str(problem))
        config = tuple(f"{name}={_plain(getattr(self, attribute))!r}"
                       for name, attribute in self._AGREED)
        views = self.comm.allgather((sent, config + (f"x dtype={x_dtype}",)))
        for rank, (found, _) in enumerate(views):
            if found is not None:
                kind, message = found
                raise _ERRORS.get(kind, ValueError)(
                    f"SyncBatchNorm: rank {rank} of {len(views)}: {message}")
        if len({shared for _, shared in views}) > 1:
            listed = "; ".join(f"rank {r}: {', '.join(shared)}"
                               for r, (_, shared) in enumerate(views))
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
        """Normalize x with the forward of the current mode.

        In training mode this is a collective over ``comm``: every rank
        calls it with its part of the batch (possibly empty), and y is
        normalized with the statistics of all of them.  In eval mode x is
        normalized locally, as BatchNorm does, without communication.

        Parameters
        ----------
        x : array_like
            This rank's input, of dtype float32, float64, float16 or
            bfloat16, with ``num_features`` channels on ``axis``.

        Returns
        -------
        ndarray
            y, of x's shape and dtype.

        Raises
        ------
        TypeError
            x of a wrong dtype, or a weight or bias (reassigned) of one; in
            training mode on every rank when any rank has such a problem
            (the message names the first such rank).
        ValueError
            x of a wrong shape; in training mode, on every rank: any rank's
            x of a wrong shape, weight or bias of a wrong shape, or eps
            that batch-norm training refuses (0, negative, NaN), as
            BatchNorm (the message names the rank); ranks disagreeing on
            the layer or x's dtype; exactly one value per channel over all
            ranks (none: an empty y and the counter stepped, as BatchNorm).

        Examples
        --------
        >>> from mpi4py import MPI
        >>> sbn = cnorm.SyncBatchNorm(2, comm=MPI.COMM_WORLD)
        >>> sbn(np.zeros((3, 4), np.float32))
        Traceback (most recent call last):
        ...
        ValueError: SyncBatchNorm: rank 0 of 1: x must have 2 channels on axis 1, got shape (3, 4)
        """
        if not self.training:
            return super().__call__(x)
        problem: Exception | None = None
        x_dtype = None
        try:
            # (a float16/bfloat16 x is an array: it has a dtype)
            low = is_low_precision(x)
            checked = cast(Array, x) if low else as_float_array(x, "x")
            x_dtype = checked.dtype.name
            self._channels(checked)
            # BatchNorm's own checks of weight, bias and eps, which the
            # functional forward would otherwise make on this rank alone
            self._check_training_state(np.dtype(np.float32) if low else checked.dtype)
            if self.track_running_stats:   # reassigned buffers: refused before the collectives
                self._check_running_buffers()
        except (TypeError, ValueError) as error:
            problem = error
        self._agree(problem, x_dtype)
        return super().__call__(x)

    def backward(self, dy: ArrayLike) -> Array:
        """Gradient of the most recent training-mode forward; sets grad_weight and grad_bias.

        A collective over ``comm``, like the training forward: every rank
        calls it with the gradient of its own y.  dx is this rank's part of
        the gradient of the whole batch; grad_weight and grad_bias are the
        sums over every rank's batch, the same on every rank (replaced, not
        accumulated; float32 after a float16/bfloat16 forward).  The checks
        come first and are agreed: when a rank has a problem, every rank
        raises the error of the first such rank, of the class BatchNorm
        raises, its message naming that rank.

        Parameters
        ----------
        dy : array_like
            Gradient of the loss with respect to this rank's y: x's shape
            and dtype.

        Returns
        -------
        ndarray
            dx, of x's shape and dtype.

        Raises
        ------
        RuntimeError
            On every rank, when any rank has no training-mode forward to
            differentiate (BatchNorm's error).
        TypeError
            On every rank, when any rank's dy has another dtype than its x
            (or its weight or bias, reassigned, is not float).
        ValueError
            On every rank, when any rank's dy has another shape than its x
            (or its weight or bias another shape than (num_features,)); ranks
            disagreeing on the layer or dy's dtype.

        Examples
        --------
        >>> from mpi4py import MPI
        >>> sbn = cnorm.SyncBatchNorm(3, comm=MPI.COMM_WORLD)
        >>> x = np.random.default_rng(0).standard_normal((4, 3), dtype=np.float32)
        >>> dx = sbn.backward(np.ones_like(sbn(x)))
        >>> dx.shape, sbn.grad_bias
        ((4, 3), array([4., 4., 4.], dtype=float32))
        """
        with self._lock:
            saved, low = self._saved or (None, None)
        problem: Exception | None = None
        dy_dtype = None
        try:
            if saved is None:   # BatchNorm's error and message
                raise RuntimeError("backward() needs a training-mode forward call first")
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
            self._check_parameters(saved[0].dtype)   # as batch_norm_backward checks them
        except (RuntimeError, TypeError, ValueError) as error:
            problem = error
        self._agree(problem, dy_dtype)
        return super().backward(dy)

    # No mask= either: the statistics span the ranks' whole batches.
    def _forward_train(self, x: Array) -> tuple[  # type: ignore[override]
            Array, tuple[Array, FloatArray, FloatArray, float, NDArray[np.float64]]]:
        N, C, S = F.channel_view(x, self.axis)
        mean_local = np.empty(C, np.float64)
        m2_local = np.empty(C, np.float64)
        _kernels.channel_moments(x, N, C, S, mean_local, m2_local)
        parts = self._gather_rows([np.full(C, float(N * S)), mean_local, m2_local])
        total = Moments.empty(C)
        for part in parts:   # rank order: the same bits on every rank
            total = total.merge(Moments(*part))
        count = float(total.count[0])
        if count == 1:
            raise ValueError("training needs more than one value per channel over all ranks, "
                             "got 1")
        var = total.m2 / max(count, 1.0)   # no values anywhere: mean 0 and var 0, as BatchNorm
        mean, invstd = F.saved_statistics(total.mean, var, self.eps, x.dtype)
        if count:
            self._update_running(total.mean, var, self._running_var_scale(count))
        elif self.track_running_stats:   # an empty batch: counted, statistics kept (BatchNorm)
            self.num_batches_tracked = cast(int, self.num_batches_tracked) + 1
        weight = np.ones(C) if self.weight is None else self.weight.astype(np.float64)
        bias = np.zeros(C) if self.bias is None else self.bias.astype(np.float64)
        # centred on the merged float64 mean, as BatchNorm: what rounding it
        # to x's dtype lost (the same on every rank) goes into the shift and
        # is kept for backward
        delta = total.mean - mean
        scale = weight * invstd
        y = np.empty_like(x)
        _kernels.channel_standardize(x, N, C, S, mean, scale.astype(x.dtype),
                                     (bias - scale * delta).astype(x.dtype), y,
                                     activation_code(self.activation))
        return y, (x, mean, invstd, count, delta)

    def _backward(self, dy: ArrayLike, saved: tuple[Any, ...]
                  ) -> tuple[Array, FloatArray | None, FloatArray | None]:
        x, mean, invstd, count, delta = saved
        N, C, S = F.channel_view(x, self.axis)
        dyc = as_contiguous(dy)
        weight = None if self.weight is None else self.weight.astype(x.dtype)
        if self.activation is not None:
            bias = None if self.bias is None else self.bias.astype(x.dtype)
            dyc = F.channel_preactivation_grad(dyc, x, (N, C, S), mean, invstd, weight, bias,
                                               self.activation, delta)
        sums = np.empty((2, C), np.float64)
        _kernels.bn_backward(dyc, x, N, C, S, mean, invstd, weight, None, sums[0], sums[1])
        sum_dy, sum_dy_xhat = self._gather_rows(sums).sum(axis=0)
        dx_sum_dy = F.recentre_sums(sum_dy, sum_dy_xhat, invstd, delta)   # as the forward
        dx = np.empty_like(x)
        if count:   # else every rank's batch is empty, and so is dx
            _kernels.bn_backward_dx(dyc, x, N, C, S, mean, invstd, weight, dx_sum_dy,
                                    sum_dy_xhat, count, dx)
        if not self.affine:
            return dx, None, None
        return dx, sum_dy_xhat.astype(x.dtype), sum_dy.astype(x.dtype)

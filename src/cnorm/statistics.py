"""Per-feature moments (count, mean, m2) as a value that merges exactly.

``Moments.of`` runs the channel kernels' one-pass blocked Welford/Chan
reduction (threads, deterministic); with a mask or sample weights it falls
back to float64 NumPy in bounded chunks.  ``merge`` is Chan et al.'s pairwise
update, the formula the kernels use between blocks, so moments of parts
merge into the moments of the whole: out-of-core chunks, dask blocks, MPI
ranks.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, SupportsIndex

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cnorm import _kernels
from cnorm._validate import as_contiguous, normalize_axis
from cnorm.lowp import is_low_dtype

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Moments"]

# Elements per float64 temporary of the masked/weighted path (8 MiB).
_CHUNK_ELEMENTS = 1 << 20


class Moments:
    """count, mean and m2 = sum(w * (x - mean)**2) per feature, float64 arrays
    of shape (features,).  An empty part has count 0, mean 0 and m2 0."""

    __slots__ = ("count", "mean", "m2")

    count: NDArray[np.float64]
    mean: NDArray[np.float64]
    m2: NDArray[np.float64]

    def __init__(self, count: ArrayLike, mean: ArrayLike, m2: ArrayLike) -> None:
        arrays = [np.array(a, dtype=np.float64, ndmin=1) for a in (count, mean, m2)]
        for name, a in zip(("count", "mean", "m2"), arrays):
            if a.ndim != 1 or a.shape != arrays[0].shape:
                raise ValueError(f"count, mean and m2 must be 1-d arrays of one shape, got "
                                 f"{name} of shape {a.shape}")
        count = arrays[0]
        if not np.all(np.isfinite(count) & (count >= 0)):
            raise ValueError("count must be finite and >= 0")
        self.count, self.mean, self.m2 = arrays

    # ---- construction ---------------------------------------------------

    @classmethod
    def empty(cls, n_features: SupportsIndex) -> Self:
        """Moments of no data (the identity of merge)."""
        zeros = np.zeros(n_features, np.float64)
        return cls(zeros, zeros, zeros)

    @classmethod
    def of(cls, x: ArrayLike, axis: SupportsIndex = -1, *, sample_weight: ArrayLike | None = None,
           mask: ArrayLike | None = None) -> Moments:
        """Moments per feature on `axis`, over every other axis of x.

        sample_weight (shape (x.shape[0],), finite, >= 0) weights whole
        samples along axis 0; mask (bool, broadcastable to x) excludes the
        positions where it is False.  NaN in included positions propagates
        (StandardScaler masks NaN out)."""
        x = _as_data(x)
        a = normalize_axis(axis, x.ndim)
        if sample_weight is None and mask is None:
            return cls._of_dense(x, a)
        weights = _weights(x, a, sample_weight, mask)
        return cls._of_weighted(x, a, weights)

    @classmethod
    def _of_dense(cls, x: NDArray[np.floating[Any]], a: int) -> Self:
        if not x.flags.c_contiguous and x.T.flags.c_contiguous:
            x, a = x.T, x.ndim - 1 - a   # Fortran order: the transpose is the C view
        x = as_contiguous(x)
        N, C, S = math.prod(x.shape[:a]), x.shape[a], math.prod(x.shape[a + 1:])
        mean = np.empty(C, np.float64)
        m2 = np.empty(C, np.float64)
        _kernels.channel_moments(x, N, C, S, mean, m2)
        return cls(np.full(C, float(N * S)), mean, m2)

    @classmethod
    def _of_weighted(cls, x: NDArray[np.floating[Any]], a: int,
                     weights: Callable[[int, int], NDArray[np.float64]]) -> Moments:
        """Two-pass float64 moments per chunk of axis 0, merged in order."""
        others = tuple(i for i in range(x.ndim) if i != a)
        total = cls.empty(x.shape[a])
        if x.shape[0] == 0:
            return total
        step = max(1, _CHUNK_ELEMENTS // max(1, x[0].size))
        for i in range(0, x.shape[0], step):
            j = min(i + step, x.shape[0])
            w = weights(i, j)
            xc = np.where(w > 0, x[i:j], 0.0).astype(np.float64, copy=False)
            count = w.sum(axis=others)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(count > 0, (w * xc).sum(axis=others) / count, 0.0)
            centred = xc - np.expand_dims(mean, others)
            m2 = (w * centred * centred).sum(axis=others)
            total = total.merge(cls(count, mean, m2))
        return total

    # ---- use ------------------------------------------------------------

    @property
    def n_features(self) -> int:
        return self.count.shape[0]

    def var(self, ddof: float = 0) -> NDArray[np.float64]:
        """m2 / (count - ddof); NaN where count - ddof <= 0."""
        d = self.count - ddof
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(d > 0, self.m2 / d, np.nan)

    def std(self, ddof: float = 0) -> NDArray[np.float64]:
        return np.sqrt(self.var(ddof))

    def merge(self, other: Moments) -> Moments:
        """Moments of both parts' data (Chan et al.'s pairwise update)."""
        if not isinstance(other, Moments):
            raise TypeError(f"can only merge Moments, got {type(other).__name__}")
        if other.n_features != self.n_features:
            raise ValueError(f"cannot merge moments of {self.n_features} features with moments "
                             f"of {other.n_features}")
        na, nb = self.count, other.count
        n = na + nb
        with np.errstate(invalid="ignore", divide="ignore"):
            fb = np.where(n > 0, nb / n, 0.0)
            delta = other.mean - self.mean
            mean = np.where(nb == 0, self.mean, np.where(na == 0, other.mean,
                                                         self.mean + delta * fb))
            m2 = np.where(nb == 0, self.m2, np.where(na == 0, other.m2,
                                                     self.m2 + other.m2 + delta * delta * na * fb))
        return Moments(n, mean, m2)

    def __add__(self, other: object) -> Moments:
        if not isinstance(other, Moments):
            return NotImplemented
        return self.merge(other)

    # ---- plain-array round trip ------------------------------------------

    def to_array(self) -> NDArray[np.float64]:
        """(3, features) float64 array: rows count, mean, m2 (for saving or sending)."""
        return np.stack([self.count, self.mean, self.m2])

    @classmethod
    def from_array(cls, a: ArrayLike) -> Self:
        """Inverse of to_array."""
        a = np.asarray(a)
        if a.ndim != 2 or a.shape[0] != 3:
            raise ValueError(f"a must have shape (3, features), got {a.shape}")
        return cls(a[0], a[1], a[2])

    def __repr__(self) -> str:
        return f"Moments(count={self.count!r}, mean={self.mean!r}, m2={self.m2!r})"


def _as_data(x: ArrayLike) -> NDArray[np.floating[Any]]:
    """x as a float32/float64 array in native byte order (float16 and
    bfloat16 as float32, ints, bools and longdouble as float64)."""
    arr = np.asarray(x)
    if is_low_dtype(arr.dtype):   # float16, bfloat16: exact in float32
        return arr.astype(np.float32)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"x must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError("x must have at least 1 dimension (a feature axis), got a scalar")
    native = arr.dtype.newbyteorder("=")
    if native in (np.dtype(np.float32), np.dtype(np.float64)):
        return arr.astype(native, copy=False)
    return arr.astype(np.float64)


def _weights(x: NDArray[np.floating[Any]], a: int, sample_weight: ArrayLike | None,
             mask: ArrayLike | None) -> Callable[[int, int], NDArray[np.float64]]:
    """Per-position weights: a function of (start, stop) on axis 0 giving the
    float64 weights of that chunk, broadcast to its shape."""
    sw = None if sample_weight is None else _check_sample_weight(sample_weight, x, a)
    m = None if mask is None else _check_mask(mask, x.shape)

    def chunk(i: int, j: int) -> NDArray[np.float64]:
        shape = (j - i,) + x.shape[1:]
        w = np.ones(shape) if sw is None else np.broadcast_to(sw[i:j], shape).copy()
        if m is not None:
            w *= m[i:j]
        return w
    return chunk


def _check_sample_weight(sample_weight: ArrayLike, x: NDArray[Any], a: int
                         ) -> NDArray[np.float64]:
    if a == 0:
        raise ValueError("sample_weight weights axis 0, which is the feature axis here; "
                         "put the samples on axis 0 and the features on another axis")
    sw = np.asarray(sample_weight)
    if sw.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must hold real numbers, got dtype {sw.dtype}")
    if sw.shape != (x.shape[0],):
        raise ValueError(f"sample_weight must have shape ({x.shape[0]},), got {sw.shape}")
    sw = sw.astype(np.float64)
    if not np.all(np.isfinite(sw) & (sw >= 0)):
        raise ValueError("sample_weight must be finite and >= 0")
    return sw.reshape((-1,) + (1,) * (x.ndim - 1))


def _check_mask(mask: ArrayLike, shape: tuple[int, ...]) -> NDArray[np.bool_]:
    """mask as a bool view broadcast to shape."""
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise ValueError(f"mask must have dtype bool, got {m.dtype}")
    try:
        ok = np.broadcast_shapes(m.shape, shape) == tuple(shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"mask of shape {m.shape} does not broadcast to x's shape {tuple(shape)}")
    return np.broadcast_to(m, shape)

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
    """Per-feature count, mean and sum of squared deviations, mergeable exactly.

    A ``Moments`` holds, for each of ``n_features`` features, the (weighted)
    count of values, their mean and ``m2 = sum(w * (x - mean)**2)``, as float64
    arrays of shape ``(n_features,)``.  Moments of disjoint parts of the data
    merge (`merge`, or ``a + b``) into the moments of the whole, which is how
    chunks of an out-of-core array, dask blocks (`cnorm.dask.moments`) and MPI
    ranks combine.  An empty part has count 0, mean 0 and m2 0 (`empty`).

    Most code builds one with `of`; the constructor takes the three arrays
    as they are, for instance as received from another process.

    Parameters
    ----------
    count : array_like
        Count (sum of weights) per feature: finite and >= 0.  A scalar is a
        single feature.
    mean : array_like
        Mean per feature, of the shape of `count`.
    m2 : array_like
        Sum of squared deviations from the mean per feature, of the shape of
        `count`.  `mean` and `m2` are stored as given (they are not checked).

    Attributes
    ----------
    count : numpy.ndarray
        float64, shape ``(n_features,)``: the (weighted) number of values.
    mean : numpy.ndarray
        float64, shape ``(n_features,)``: the (weighted) mean.
    m2 : numpy.ndarray
        float64, shape ``(n_features,)``: ``sum(w * (x - mean)**2)``.

    Raises
    ------
    ValueError
        If `count`, `mean` and `m2` are not 1-d arrays (or scalars) of one
        shape, or if `count` holds a negative, infinite or NaN value.

    See Also
    --------
    cnorm.dask.moments : Moments of a dask array.
    StandardScaler : Feature standardization on these moments.

    Notes
    -----
    The arrays are copied to float64 on construction.  ``a + b`` is
    ``a.merge(b)``.  `to_array` and `from_array` convert to and from a single
    ``(3, n_features)`` float64 array for saving or sending.

    Examples
    --------
    >>> x = np.array([[1., 2.], [3., 6.], [5., 7.]])   # 3 samples, 2 features
    >>> m = cnorm.Moments.of(x)
    >>> m
    Moments(count=array([3., 3.]), mean=array([3., 5.]), m2=array([ 8., 14.]))
    >>> np.allclose(m.var(), x.var(axis=0))
    True
    >>> whole = cnorm.Moments.of(x[:1]) + cnorm.Moments.of(x[1:])
    >>> np.allclose(whole.to_array(), m.to_array())
    True
    """

    __slots__ = ("count", "mean", "m2")

    count: NDArray[np.float64]
    mean: NDArray[np.float64]
    m2: NDArray[np.float64]

    def __init__(self, count: ArrayLike, mean: ArrayLike, m2: ArrayLike) -> None:
        """Create moments from count, mean and m2 per feature; see the class docstring.

        Parameters
        ----------
        count : array_like
            Count (sum of weights) per feature, finite and >= 0.
        mean : array_like
            Mean per feature, of the shape of `count`.
        m2 : array_like
            Sum of squared deviations per feature, of the shape of `count`, >= 0
            (or NaN).
        """
        arrays = [np.array(a, dtype=np.float64, ndmin=1) for a in (count, mean, m2)]
        for name, a in zip(("count", "mean", "m2"), arrays):
            if a.ndim != 1 or a.shape != arrays[0].shape:
                raise ValueError(f"count, mean and m2 must be 1-d arrays of one shape, got "
                                 f"{name} of shape {a.shape}")
        count = arrays[0]
        if not np.all(np.isfinite(count) & (count >= 0)):
            raise ValueError("count must be finite and >= 0")
        if np.any(arrays[2] < 0):   # NaN passes: the moments of NaN data
            raise ValueError("m2 must be >= 0")
        self.count, self.mean, self.m2 = arrays

    # ---- construction ---------------------------------------------------

    @classmethod
    def empty(cls, n_features: SupportsIndex) -> Self:
        """Moments of no data: the identity of `merge`.

        Parameters
        ----------
        n_features : int
            Number of features.

        Returns
        -------
        Moments
            Count, mean and m2 all 0, of shape ``(n_features,)``.

        Raises
        ------
        ValueError
            If `n_features` is negative.
        TypeError
            If `n_features` is not an integer.

        Examples
        --------
        >>> e = cnorm.Moments.empty(2)
        >>> e
        Moments(count=array([0., 0.]), mean=array([0., 0.]), m2=array([0., 0.]))
        >>> m = cnorm.Moments.of(np.array([[1., 2.], [3., 6.]]))
        >>> np.array_equal((e + m).to_array(), m.to_array())
        True
        """
        zeros = np.zeros(n_features, np.float64)
        return cls(zeros, zeros, zeros)

    @classmethod
    def of(cls, x: ArrayLike, axis: SupportsIndex = -1, *, sample_weight: ArrayLike | None = None,
           mask: ArrayLike | None = None) -> Moments:
        r"""Compute the moments of `x` per feature on `axis`, over every other axis.

        Without `sample_weight` and `mask` this runs the channel-moments kernel
        (one blocked Welford/Chan pass over memory, threaded, bit-identical for
        any thread count): block statistics in x's precision, float32 or
        float64, merged in float64.  With either of them it computes in
        float64 NumPy, two passes per chunk of axis 0 (bounded temporaries),
        merging the chunks in order.

        Parameters
        ----------
        x : array_like
            Data of at least 1 dimension and a real dtype.  float32 and float64
            are used as they are (any memory layout; non-native byte order is
            converted), float16 and bfloat16 are converted to float32, integers,
            bools and longdouble to float64.
        axis : int, default -1
            The feature axis; every other axis is reduced.  For a 1-d `x` each
            element is its own feature (count 1, m2 0).
        sample_weight : array_like, optional
            Weight of each sample along axis 0, shape ``(x.shape[0],)``, real,
            finite and >= 0.  Axis 0 must not be the feature axis.
        mask : array_like of bool, optional
            Broadcastable to x's shape; positions where it is False are left
            out (NaN there included).

        Returns
        -------
        Moments
            float64 count, mean and m2 of shape ``(x.shape[axis],)``.  Without
            weights or a mask the count is the number of values per feature.

        Raises
        ------
        TypeError
            If `x` has a non-real dtype (complex, string, object), or `axis`
            is not an integer.
        ValueError
            If `x` is a scalar; if `axis` is out of range; if `sample_weight`
            is given while `axis` is 0, has the wrong shape, a non-real dtype,
            or a negative, infinite or NaN weight; if `mask` is not of dtype
            bool or does not broadcast to x's shape.

        See Also
        --------
        cnorm.dask.moments : The same for a dask array, block by block.

        Notes
        -----
        With weights :math:`w_i` (the sample weight times the mask, 0 or 1),
        per feature

        .. math::

            n = \sum_i w_i, \quad
            \bar x = \frac{1}{n} \sum_i w_i x_i, \quad
            M_2 = \sum_i w_i (x_i - \bar x)^2,

        and only positions with :math:`w_i > 0` are read, so NaN there does
        not matter.  A feature with :math:`n = 0` gets mean 0 and m2 0.  NaN
        or infinity in an included position propagates to its feature
        (`StandardScaler` masks NaN out).  Float32 data gives statistics
        accurate to float32 rounding (about 1e-7 relative), float64 data to
        float64's.

        Examples
        --------
        >>> x = np.array([[1., 2.], [3., np.nan], [5., 7.]])
        >>> cnorm.Moments.of(x[[0, 2]], axis=1)
        Moments(count=array([2., 2.]), mean=array([3. , 4.5]), m2=array([ 8. , 12.5]))
        >>> cnorm.Moments.of(x, mask=~np.isnan(x))
        Moments(count=array([3., 2.]), mean=array([3. , 4.5]), m2=array([ 8. , 12.5]))
        >>> cnorm.Moments.of(x[[0, 2]], sample_weight=[1, 3]).mean
        array([4.  , 5.75])
        """
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
        """Corrected two-pass float64 moments per chunk of axis 0, merged in
        order."""
        others = tuple(i for i in range(x.ndim) if i != a)
        total = cls.empty(x.shape[a])
        if x.shape[0] == 0:
            return total
        step = max(1, _CHUNK_ELEMENTS // max(1, x[0].size))
        for i in range(0, x.shape[0], step):
            j = min(i + step, x.shape[0])
            w = weights(i, j)
            xc = np.where(w > 0, x[i:j], 0.0).astype(np.float64, copy=False)
            # Scale each feature by a power of two (exact) so that its largest
            # value is below 1: sums of float64 data near 1e308 (or of large
            # weights times large values) no longer overflow, and the mean
            # comes out finite for finite data; m2 is inf only where it is
            # beyond float64's range.
            with np.errstate(invalid="ignore"):
                exponent = np.frexp(np.abs(xc).max(axis=others, initial=0.0))[1]
            xc = np.ldexp(xc, np.expand_dims(-exponent, others))
            count = w.sum(axis=others)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(count > 0, (w * xc).sum(axis=others) / count, 0.0)
                # a second pass corrects the mean's rounding, which would
                # give a constant feature a variance (and scale_ far from 1)
                shift = (w * (xc - np.expand_dims(mean, others))).sum(axis=others)
                mean += np.where(count > 0, shift / count, 0.0)
            centred = xc - np.expand_dims(mean, others)
            m2 = (w * centred * centred).sum(axis=others)
            with np.errstate(over="ignore"):
                mean, m2 = np.ldexp(mean, exponent), np.ldexp(m2, 2 * exponent)
            total = total.merge(cls(count, mean, m2))
        return total

    # ---- use ------------------------------------------------------------

    @property
    def n_features(self) -> int:
        """Number of features: the length of `count`, `mean` and `m2`."""
        return self.count.shape[0]

    def var(self, ddof: float = 0) -> NDArray[np.float64]:
        """Variance per feature, ``m2 / (count - ddof)``.

        Parameters
        ----------
        ddof : float, default 0
            Delta degrees of freedom: 0 gives the population (biased)
            variance, 1 the sample (unbiased) one.

        Returns
        -------
        numpy.ndarray
            The variance, float64 of shape ``(n_features,)``; NaN where
            ``count - ddof <= 0``.

        Notes
        -----
        With sample weights the count is their sum, so ``ddof=1`` treats
        them as frequency (repeat) weights.

        Examples
        --------
        >>> m = cnorm.Moments.of(np.array([[1., 2.], [3., 6.], [5., 7.]]))
        >>> m.var()
        array([2.6667, 4.6667])
        >>> m.var(ddof=1)
        array([4., 7.])
        >>> m.var(ddof=3)
        array([nan, nan])
        """
        d = self.count - ddof
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(d > 0, self.m2 / d, np.nan)

    def std(self, ddof: float = 0) -> NDArray[np.float64]:
        """Standard deviation per feature, ``sqrt(var(ddof))``.

        Parameters
        ----------
        ddof : float, default 0
            Delta degrees of freedom, as in `var`.

        Returns
        -------
        numpy.ndarray
            The standard deviation, float64 of shape ``(n_features,)``; NaN
            where ``count - ddof <= 0``.

        Examples
        --------
        >>> m = cnorm.Moments.of(np.array([[1., 2.], [3., 6.], [5., 7.]]))
        >>> m.std(ddof=1)
        array([2.    , 2.6458])
        """
        return np.sqrt(self.var(ddof))

    def merge(self, other: Moments) -> Moments:
        r"""Merge with the moments of another part of the data (Chan et al.).

        Parameters
        ----------
        other : Moments
            Moments of other data with the same features.

        Returns
        -------
        Moments
            The moments of both parts' data together; neither operand is
            modified.  ``self + other`` is the same.

        Raises
        ------
        TypeError
            If `other` is not a `Moments`.
        ValueError
            If `other` has a different number of features.

        Notes
        -----
        Chan, Golub and LeVeque's pairwise update, the formula the kernels use
        between blocks: with :math:`\delta = \bar x_b - \bar x_a`,

        .. math::

            n = n_a + n_b, \quad
            \bar x = \bar x_a + \delta \frac{n_b}{n}, \quad
            M_2 = M_{2,a} + M_{2,b} + \delta^2 \frac{n_a n_b}{n}.

        Where one part has count 0 the other part's mean and m2 are taken as
        they are; where :math:`\delta` is not finite (an infinite mean, or
        means of opposite sign near 1e308) the mean is the weighted sum of
        the two.  The result equals the moments of the concatenated data up
        to floating-point rounding, whatever the partition; merging parts in
        a fixed order gives the same bits every time.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> x = rng.standard_normal((6, 3))
        >>> parts = cnorm.Moments.of(x[:2]).merge(cnorm.Moments.of(x[2:]))
        >>> np.allclose(parts.mean, x.mean(axis=0)), np.allclose(parts.var(), x.var(axis=0))
        (True, True)
        """
        if not isinstance(other, Moments):
            raise TypeError(f"can only merge Moments, got {type(other).__name__}")
        if other.n_features != self.n_features:
            raise ValueError(f"cannot merge moments of {self.n_features} features with moments "
                             f"of {other.n_features}")
        na, nb = self.count, other.count
        n = na + nb
        # over: an m2 beyond float64's range is inf, as the kernels give it
        # (and every branch of the np.where below is evaluated, even the
        # empty-part ones whose delta may be huge).
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            fb = np.where(n > 0, nb / n, 0.0)
            delta = other.mean - self.mean
            # delta not finite (an inf mean, or means of opposite sign near
            # 1e308): the weighted sum, as the C merge (cnorm_moments_merge)
            step = np.where(np.isfinite(delta), self.mean + delta * fb,
                            self.mean * (1 - fb) + other.mean * fb)
            mean = np.where(nb == 0, self.mean, np.where(na == 0, other.mean, step))
            m2 = np.where(nb == 0, self.m2, np.where(na == 0, other.m2,
                                                     self.m2 + other.m2 + delta * delta * na * fb))
        return Moments(n, mean, m2)

    def __add__(self, other: object) -> Moments:
        if not isinstance(other, Moments):
            return NotImplemented
        return self.merge(other)

    def __radd__(self, other: object) -> Moments:
        if type(other) is int and other == 0:   # sum(parts) starts from 0
            return Moments(self.count, self.mean, self.m2)
        return NotImplemented

    # ---- plain-array round trip ------------------------------------------

    def to_array(self) -> NDArray[np.float64]:
        """Stack count, mean and m2 into one array, for saving or sending.

        Returns
        -------
        numpy.ndarray
            A new float64 array of shape ``(3, n_features)``: rows count, mean
            and m2.

        See Also
        --------
        from_array : The inverse.

        Examples
        --------
        >>> m = cnorm.Moments.of(np.array([[1., 2.], [3., 6.], [5., 7.]]))
        >>> m.to_array()
        array([[ 3.,  3.],
               [ 3.,  5.],
               [ 8., 14.]])
        """
        return np.stack([self.count, self.mean, self.m2])

    @classmethod
    def from_array(cls, a: ArrayLike) -> Self:
        """Build moments from a ``(3, n_features)`` array: the inverse of `to_array`.

        Parameters
        ----------
        a : array_like
            Shape ``(3, n_features)``: rows count, mean and m2.

        Returns
        -------
        Moments
            The moments, copied to float64.

        Raises
        ------
        ValueError
            If `a` does not have shape ``(3, n_features)``, or its count row
            holds a negative, infinite or NaN value.

        Examples
        --------
        >>> m = cnorm.Moments.of(np.array([[1., 2.], [3., 6.], [5., 7.]]))
        >>> cnorm.Moments.from_array(m.to_array())
        Moments(count=array([3., 3.]), mean=array([3., 5.]), m2=array([ 8., 14.]))
        """
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
    low = is_low_dtype(arr.dtype)
    if arr.dtype.kind not in "biuf" and not low:
        raise TypeError(f"x must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError("x must have at least 1 dimension (a feature axis), got a scalar")
    if low:   # float16, bfloat16: exact in float32
        return arr.astype(np.float32)
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
    if sw.dtype.kind not in "biuf" and not is_low_dtype(sw.dtype):   # bfloat16 as float16
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

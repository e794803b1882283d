"""StandardScaler: scikit-learn's Z-score feature standardization on cnorm's
moments and standardize kernels.

A drop-in for ``sklearn.preprocessing.StandardScaler`` on dense arrays: the
same parameters, attributes and results (to float rounding), usable with
``sklearn.base.clone`` and in a ``Pipeline``.  scikit-learn is not imported
unless it is installed and asked for (its tags, the base of NotFittedError).
"""
from __future__ import annotations

import numbers
import threading
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, overload

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

from cnorm import _kernels
from cnorm._validate import as_contiguous
from cnorm.lowp import downcast, is_low_dtype, upcast
from cnorm.statistics import Moments, _as_data, _check_sample_weight

if TYPE_CHECKING:
    import dask.array as da
    from typing_extensions import Self, TypeGuard

__all__ = ["NotFittedError", "StandardScaler"]

_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

_F64 = NDArray[np.float64]
# What transform returns for an array: float16, bfloat16, float32 or float64, as X.
_Floats = NDArray[np.floating[Any]]


class _DaskArray(Protocol):
    """What the scaler uses of a dask array (dask.array.Array), so that a
    dask X gives a dask result without cnorm importing dask; __array__ makes
    it an ArrayLike too."""

    def __array__(self, *args: Any, **kwargs: Any) -> Any: ...
    def rechunk(self, *args: Any, **kwargs: Any) -> Any: ...
    def map_blocks(self, *args: Any, **kwargs: Any) -> Any: ...


_DaskT = TypeVar("_DaskT", bound=_DaskArray)


def _keeps_dtype(dtype: np.dtype[Any]) -> bool:
    """Whether transform returns X's dtype: float16, bfloat16, float32, float64."""
    return dtype in _FLOATS or is_low_dtype(dtype)


_NOT_FITTED_DOC = """A StandardScaler was used before it was fitted.

    Raised by `StandardScaler.transform`, `StandardScaler.inverse_transform`
    and `StandardScaler.get_feature_names_out` before `StandardScaler.fit`.
    A subclass of ``sklearn.exceptions.NotFittedError`` when scikit-learn is
    installed (which subclasses ValueError and AttributeError), else of
    ValueError and AttributeError: ``except cnorm.scaler.NotFittedError``
    and ``except sklearn.exceptions.NotFittedError`` both catch it.

    Notes
    -----
    The class is made on first use (the first attribute access
    ``cnorm.scaler.NotFittedError`` or the first unfitted call), so that
    ``import cnorm`` does not import scikit-learn; whether it subclasses
    scikit-learn's is decided then, once per process.
    """

_not_fitted_class: list[type[ValueError]] = []   # the class once made
_not_fitted_lock = threading.Lock()


def _not_fitted_error_type() -> type[ValueError]:
    """cnorm.scaler.NotFittedError, made on the first call (one class per
    process): a subclass of scikit-learn's NotFittedError when it can be
    imported, else of ValueError and AttributeError."""
    with _not_fitted_lock:
        if not _not_fitted_class:
            bases: tuple[type, ...]
            try:
                from sklearn.exceptions import NotFittedError as base
            except ImportError:
                bases = (ValueError, AttributeError)
            else:
                bases = (base,)
            namespace = {"__doc__": _NOT_FITTED_DOC, "__module__": __name__,
                         "__qualname__": "NotFittedError"}
            _not_fitted_class.append(
                cast("type[ValueError]", type("NotFittedError", bases, namespace)))
        return _not_fitted_class[0]


if TYPE_CHECKING:
    class NotFittedError(ValueError, AttributeError):
        """A StandardScaler was used before it was fitted (see _NOT_FITTED_DOC)."""
else:
    def __getattr__(name: str) -> Any:
        # NotFittedError is made on first use: import cnorm must not import
        # scikit-learn, whose NotFittedError it subclasses when installed.
        if name == "NotFittedError":
            return _not_fitted_error_type()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "NotFittedError"})


class StandardScaler:
    """Standardize features by removing the mean and scaling to unit variance.

    ``z = (x - mean_) / scale_`` per column of X, on cnorm's moments and
    standardize kernels.  A drop-in for ``sklearn.preprocessing.StandardScaler``
    on dense arrays: the same parameters, fitted attributes and results (to
    float rounding); it works with ``sklearn.base.clone`` and in a
    ``Pipeline``.  scikit-learn is not imported unless it is installed and
    asked for (its estimator tags, the base of `NotFittedError`).

    Parameters
    ----------
    copy : bool, default True
        Default of `transform`'s and `inverse_transform`'s `copy` (and so of
        `fit_transform`): if False, the result is written into X when X is a
        writable NumPy array of dtype float16, bfloat16, float32 or float64
        in native byte order, and X is returned; otherwise a new array is
        returned.
    with_mean : bool, default True
        Subtract `mean_` in `transform` (add it back in `inverse_transform`).
    with_std : bool, default True
        Divide by `scale_` in `transform` (multiply in `inverse_transform`).

    Attributes
    ----------
    mean_ : numpy.ndarray of shape (n_features_in_,) or None
        float64 mean per feature of the data seen, NaN ignored (NaN for a
        feature with no other value); weighted with `sample_weight`.  None
        when `with_mean` and `with_std` are both False.
    var_ : numpy.ndarray of shape (n_features_in_,) or None
        float64 population variance (ddof 0) per feature, NaN ignored,
        weighted with `sample_weight`.  None when `with_std` is False.
    scale_ : numpy.ndarray of shape (n_features_in_,) or None
        ``sqrt(var_)``, with 1 for features indistinguishable from constant
        (see Notes).  None when `with_std` is False.
    n_samples_seen_ : numpy.number or numpy.ndarray of shape (n_features_in_,)
        Values seen per feature (NaN not counted; the sum of the weights
        with `sample_weight`), a scalar when it is the same for every
        feature.  float64, except when `with_mean` and `with_std` are both
        False: then unweighted counts, int64 (X's float dtype, float64 for
        bfloat16, when the last `fit` or `partial_fit` call had
        `sample_weight`), as scikit-learn.
    n_features_in_ : int
        Number of features (columns) of the data seen.
    feature_names_in_ : numpy.ndarray of shape (n_features_in_,), dtype object
        Column names of the first X fitted, when it has a ``columns``
        attribute of strings only (a pandas DataFrame); absent otherwise.

    Raises
    ------
    NotFittedError
        From `transform`, `inverse_transform` and `get_feature_names_out`
        before a fit: `cnorm.scaler.NotFittedError`, a subclass of
        ``sklearn.exceptions.NotFittedError`` when scikit-learn is installed
        (and in any case of ValueError and AttributeError).
    ValueError
        From the fitting and transforming methods for an X that is not 2-d,
        has no samples or no features, holds a non-real dtype or an infinite
        value, or (after a fit) has another number of features; from fitting
        for invalid `sample_weight` (see `partial_fit`).
    TypeError
        For a sparse matrix X (use scikit-learn's ``StandardScaler(with_mean=False)``).

    See Also
    --------
    Moments : The per-feature moments behind `fit` and `partial_fit`.
    cnorm.dask.moments : The moments of a dask X.

    Notes
    -----
    Fitting accumulates per-feature `Moments` (count, mean and
    ``m2 = sum(w * (x - mean)**2)``) and merges those of successive
    `partial_fit` calls with Chan et al.'s pairwise update, so fitting
    chunks one by one gives the moments of their concatenation (to float
    rounding).  Then ``mean_ = mean`` and ``var_ = m2 / count``.  A feature
    is treated as constant, and gets ``scale_ = 1``, when
    ``var_ <= n * eps * var_ + (n * mean_ * eps)**2`` (``n`` its count,
    ``eps`` float64's machine epsilon), scikit-learn's bound.

    NaN is ignored by fitting and kept by `transform`; infinite values are
    rejected by every method that reads X, as scikit-learn does (for
    `transform`, a summing pass over X, and a second one when the sum is not
    finite).  The statistics of float16 and bfloat16 data are computed from
    it converted to float32 (exact), as `Moments.of` does.  The result of
    `transform` has X's dtype when it is float16, bfloat16, float32 or
    float64 (float16 and bfloat16 computed in float32 and rounded once),
    else float64; scikit-learn gives float64 for bfloat16.  A dask array X
    is fitted block by block (`cnorm.dask.moments`, no `sample_weight`) and
    transformed into a lazy dask array.

    Examples
    --------
    >>> from sklearn.preprocessing import StandardScaler
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(5.0, 2.0, size=(8, 3))
    >>> scaler = cnorm.StandardScaler().fit(X)
    >>> scaler.mean_, scaler.n_samples_seen_
    (array([4.7475, 4.8176, 4.7501]), 8.0)
    >>> reference = StandardScaler().fit(X)
    >>> np.allclose(scaler.transform(X), reference.transform(X))
    True
    """

    # Fitted attributes (absent before fit), as scikit-learn's.  mean_ is
    # None when with_mean and with_std are False; var_ and scale_ are None
    # when with_std is False.
    mean_: _F64 | None
    var_: _F64 | None
    scale_: _F64 | None
    n_samples_seen_: np.number[Any] | NDArray[np.number[Any]]
    n_features_in_: int
    feature_names_in_: NDArray[np.object_]
    _moments: Moments

    def __init__(self, *, copy: bool = True, with_mean: bool = True,
                 with_std: bool = True) -> None:
        """Create an unfitted scaler; see the class docstring.

        Parameters
        ----------
        copy : bool, default True
            Whether `transform` and `inverse_transform` return a new array by
            default (False: in place where possible).
        with_mean : bool, default True
            Whether to center the data.
        with_std : bool, default True
            Whether to scale the data to unit variance.
        """
        self.copy = copy
        self.with_mean = with_mean
        self.with_std = with_std

    # ---- scikit-learn's estimator protocol --------------------------------

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Get the constructor parameters (scikit-learn's estimator protocol).

        Parameters
        ----------
        deep : bool, default True
            Ignored: the scaler holds no sub-estimators.

        Returns
        -------
        dict
            ``{"copy": ..., "with_mean": ..., "with_std": ...}``.

        Examples
        --------
        >>> cnorm.StandardScaler(with_mean=False).get_params()
        {'copy': True, 'with_mean': False, 'with_std': True}
        """
        return {"copy": self.copy, "with_mean": self.with_mean, "with_std": self.with_std}

    def set_params(self, **params: Any) -> Self:
        """Set constructor parameters (scikit-learn's estimator protocol).

        The values are stored as given, not checked.  A fitted scaler keeps
        its fitted attributes: refit it after changing `with_mean` or
        `with_std`.

        Parameters
        ----------
        **params : dict
            New values by name, among ``copy``, ``with_mean`` and
            ``with_std``.

        Returns
        -------
        StandardScaler
            The scaler itself.

        Raises
        ------
        ValueError
            If a name is not one of the parameters.  As in scikit-learn, the
            parameters before it in the call have been set already.

        Examples
        --------
        >>> cnorm.StandardScaler().set_params(with_mean=False, copy=False)
        StandardScaler(copy=False, with_mean=False)
        """
        valid = self.get_params()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"Invalid parameter {key!r} for estimator {self!r}. "
                                 f"Valid parameters are: {sorted(valid)!r}.")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {"copy": True, "with_mean": True, "with_std": True}
        args = [f"{k}={v!r}" for k, v in self.get_params().items() if v is not defaults[k]]
        return f"StandardScaler({', '.join(args)})"

    def __sklearn_tags__(self) -> Any:   # sklearn.utils.Tags
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=["float64", "float32"]),
                    input_tags=InputTags(allow_nan=True))

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "n_samples_seen_")

    def get_feature_names_out(self, input_features: ArrayLike | None = None
                              ) -> NDArray[np.object_]:
        """Get the output feature names: the input feature names.

        Parameters
        ----------
        input_features : array_like of str, optional
            Names of the input features, returned as they are: equal to
            `feature_names_in_` when the scaler was fitted on named columns,
            else any `n_features_in_` names.  By default `feature_names_in_`
            when it is set, else ``x0``, ``x1``, ...

        Returns
        -------
        numpy.ndarray of shape (n_features_in_,), dtype object
            The names.

        Raises
        ------
        NotFittedError
            If the scaler is not fitted.
        ValueError
            If `input_features` differs from `feature_names_in_` when that is
            set, or does not have `n_features_in_` entries (as scikit-learn).

        Examples
        --------
        >>> scaler = cnorm.StandardScaler().fit(np.eye(3))
        >>> scaler.get_feature_names_out()
        array(['x0', 'x1', 'x2'], dtype=object)
        >>> scaler.get_feature_names_out(["a", "b", "c"])
        array(['a', 'b', 'c'], dtype=object)
        """
        self._check_fitted()
        names_in = getattr(self, "feature_names_in_", None)
        if input_features is not None:
            names = np.asarray(input_features, dtype=object)
            if names_in is not None and not np.array_equal(names_in, names):
                raise ValueError("input_features is not equal to feature_names_in_")
            if len(names) != self.n_features_in_:
                raise ValueError(f"input_features should have length equal to number of "
                                 f"features ({self.n_features_in_}), got {len(names)}")
            return names
        if names_in is not None:
            return names_in.copy()
        return np.asarray([f"x{i}" for i in range(self.n_features_in_)], dtype=object)

    # ---- fitting --------------------------------------------------------

    def fit(self, X: ArrayLike, y: object = None, sample_weight: ArrayLike | None = None
            ) -> Self:
        """Compute the mean and variance of X's features, forgetting earlier fits.

        The same as `partial_fit` on a fresh scaler: a fit that raises leaves
        the scaler as it was.

        Parameters
        ----------
        X : array_like or dask.array.Array of shape (n_samples, n_features)
            Data, 2-d, of a real dtype (float16 and bfloat16 included); NaN
            is ignored, infinity rejected.
        y : object, default None
            Ignored (scikit-learn's fit signature).
        sample_weight : array_like of shape (n_samples,) or float, optional
            Weight of each sample, finite and >= 0, not all 0 (a number: the
            weight of every sample); not with a dask X.

        Returns
        -------
        StandardScaler
            The scaler itself, fitted.

        Raises
        ------
        TypeError
            If X is a sparse matrix.
        ValueError
            As `partial_fit` (except for the number of features, which a fit
            may change).

        Examples
        --------
        >>> X = np.array([[0., 1.], [2., np.nan], [4., 3.]])
        >>> scaler = cnorm.StandardScaler().fit(X)
        >>> scaler.mean_, scaler.n_samples_seen_
        (array([2., 2.]), array([3., 2.]))
        >>> scaler.fit(X, sample_weight=[1, 1, 2]).mean_
        array([2.5   , 2.3333])
        """
        fresh = type(self)(**self.get_params())
        fresh.partial_fit(X, y, sample_weight)   # a failing fit leaves self as it was
        self.__dict__.update(fresh.__dict__)
        for name in _FITTED:
            if name not in fresh.__dict__:
                self.__dict__.pop(name, None)
        return self

    def partial_fit(self, X: ArrayLike, y: object = None,
                    sample_weight: ArrayLike | None = None) -> Self:
        """Update the mean and variance with the features of X (incremental fit).

        The moments of X are merged into those already fitted (Chan et al.'s
        pairwise update), so fitting chunks one by one, such as the rows of a
        memmap, gives the result of one fit on all of them (to float
        rounding).  The first call sets `n_features_in_` (and
        `feature_names_in_`).  A call that raises leaves the scaler as it was.

        Parameters
        ----------
        X : array_like or dask.array.Array of shape (n_samples, n_features)
            Data, 2-d, of a real dtype (float16 and bfloat16 included); NaN
            is ignored, infinity rejected.  A dask array is reduced block by
            block (`cnorm.dask.moments`).
        y : object, default None
            Ignored (scikit-learn's signature).
        sample_weight : array_like of shape (n_samples,) or float, optional
            Weight of each sample, real, finite and >= 0, not all 0 (a
            number: the weight of every sample, as scikit-learn).  When `with_mean`
            and `with_std` are both False it is checked but the counts are
            not weighted (as scikit-learn).

        Returns
        -------
        StandardScaler
            The scaler itself, fitted.

        Raises
        ------
        TypeError
            If X is a sparse matrix.
        ValueError
            If X is not 2-d, has no samples or no features, or a non-real
            dtype; if X holds an infinite value (for a dask X, when its
            moments are computed); if the scaler is fitted and X has another
            number of features; if `sample_weight`
            has the wrong shape, a non-real dtype or a negative or non-finite
            weight, is all 0 (as scikit-learn), or is given with a dask X.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> X = rng.standard_normal((10, 3))
        >>> scaler = cnorm.StandardScaler()
        >>> for chunk in np.array_split(X, 3):
        ...     scaler = scaler.partial_fit(chunk)
        >>> scaler.n_samples_seen_
        10.0
        >>> np.allclose(scaler.mean_, X.mean(axis=0)), np.allclose(scaler.var_, X.var(axis=0))
        (True, True)
        """
        first = not self.__sklearn_is_fitted__()
        names = _feature_names(X) if first else getattr(self, "feature_names_in_", None)
        if _is_dask(X):
            from cnorm.dask import moments as dask_moments

            if sample_weight is not None:
                raise ValueError("sample_weight is not supported with a dask array X")
            _check_2d(X.shape)
            self._check_features(X.shape[1], first)
            part = dask_moments(X, axis=-1, ignore_nan=True)
        else:
            X = _as_2d_floats(X)
            self._check_features(X.shape[1], first)
            data = _as_data(X)   # float16 and bfloat16 in float32, as Moments.of
            if sample_weight is not None:
                sample_weight = _fit_sample_weight(sample_weight, data)
            if self.with_mean or self.with_std:
                part = _fit_moments(data, sample_weight)
            else:   # only counts, and (as scikit-learn) unweighted ones
                _reject_infinity(data)
                counts = data.shape[0] - np.isnan(data).sum(axis=0)
                part = Moments(counts, np.zeros(data.shape[1]), np.zeros(data.shape[1]))
        total = part if first else self._moments.merge(part)
        count_dtype = (np.int64 if sample_weight is None
                       else X.dtype if X.dtype in _FLOATS else np.float64)
        self._commit(total, count_dtype, names)
        return self

    def _check_features(self, n_features: int, first: bool) -> None:
        if not first and n_features != self.n_features_in_:
            raise ValueError(f"X has {n_features} features, but StandardScaler is expecting "
                             f"{self.n_features_in_} features as input.")

    def _commit(self, moments: Moments, count_dtype: DTypeLike,
                names: NDArray[np.object_] | None) -> None:
        """Set every fitted attribute from the merged moments at once."""
        count = moments.count
        if not (self.with_mean or self.with_std):
            seen = count.astype(count_dtype)
            mean = var = scale = None
        else:
            seen = count.copy()
            empty = count == 0
            mean = np.where(empty, np.nan, moments.mean)
            var = moments.var(0) if self.with_std else None
            scale = _scale(var, mean, count) if var is not None else None
        if seen.size and np.all(seen == seen[0]):
            seen = seen[0]
        state = {"_moments": moments, "n_samples_seen_": seen, "mean_": mean, "var_": var,
                 "scale_": scale, "n_features_in_": moments.n_features}
        if names is not None:
            state["feature_names_in_"] = names
        self.__dict__.update(state)

    # ---- transforming ---------------------------------------------------

    @overload
    def transform(self, X: _DaskT, copy: bool | None = None) -> _DaskT: ...
    @overload
    def transform(self, X: ArrayLike, copy: bool | None = None) -> _Floats: ...
    def transform(self, X: ArrayLike, copy: bool | None = None) -> Any:
        """Standardize X: ``(X - mean_) / scale_`` per feature.

        Without `with_mean` nothing is subtracted, without `with_std` nothing
        divided.  NaN stays NaN; infinite values are rejected (as
        scikit-learn), before anything is written.

        Parameters
        ----------
        X : array_like or dask.array.Array of shape (n_samples, n_features)
            Data, 2-d, of a real dtype, with `n_features_in_` features.
        copy : bool or None, default None
            False: write the result into X when X is a writable NumPy array
            of dtype float16, bfloat16, float32 or float64 in native byte
            order, and return X.  True: return a new array.  None: the `copy`
            parameter.  A dask X always gives a new (lazy) array.

        Returns
        -------
        numpy.ndarray or dask.array.Array of shape (n_samples, n_features)
            The standardized data, of X's dtype when it is float16,
            bfloat16, float32 or float64, else float64; lazy for a dask X
            (rechunked so that each block holds every feature).

        Raises
        ------
        NotFittedError
            If the scaler is not fitted.
        TypeError
            If X is a sparse matrix.
        ValueError
            If X is not 2-d, has no samples or no features, or does not have
            `n_features_in_` features; if X has a non-real dtype or holds an
            infinite value (for a dask X, when the result is computed).

        Examples
        --------
        >>> X = np.array([[0., 1.], [2., np.nan], [4., 3.]])
        >>> scaler = cnorm.StandardScaler().fit(X)
        >>> scaler.transform(X)
        array([[-1.2247, -1.    ],
               [ 0.    ,     nan],
               [ 1.2247,  1.    ]])
        >>> scaler.transform(X.astype(np.float32)).dtype
        dtype('float32')
        """
        return self._apply(X, copy, inverse=False)

    @overload
    def inverse_transform(self, X: _DaskT, copy: bool | None = None) -> _DaskT: ...
    @overload
    def inverse_transform(self, X: ArrayLike, copy: bool | None = None) -> _Floats: ...
    def inverse_transform(self, X: ArrayLike, copy: bool | None = None) -> Any:
        """Undo `transform`: ``X * scale_ + mean_`` per feature.

        Without `with_std` nothing is multiplied, without `with_mean` nothing
        added.  NaN stays NaN; infinite values are rejected.

        Parameters
        ----------
        X : array_like or dask.array.Array of shape (n_samples, n_features)
            Standardized data, 2-d, of a real dtype, with `n_features_in_`
            features.
        copy : bool or None, default None
            As in `transform`: False writes into a writable float16,
            bfloat16, float32 or float64 NumPy X and returns it; None uses the
            `copy` parameter.

        Returns
        -------
        numpy.ndarray or dask.array.Array of shape (n_samples, n_features)
            The data in the original units, of X's dtype when it is float16,
            bfloat16, float32 or float64, else float64; lazy for a dask X.

        Raises
        ------
        NotFittedError
            If the scaler is not fitted.
        TypeError
            If X is a sparse matrix.
        ValueError
            As `transform`.

        Examples
        --------
        >>> X = np.array([[0., 1.], [2., 5.], [4., 3.]])
        >>> scaler = cnorm.StandardScaler().fit(X)
        >>> np.allclose(scaler.inverse_transform(scaler.transform(X)), X)
        True
        """
        return self._apply(X, copy, inverse=True)

    @overload
    def fit_transform(self, X: _DaskT, y: object = None,
                      sample_weight: ArrayLike | None = None) -> _DaskT: ...
    @overload
    def fit_transform(self, X: ArrayLike, y: object = None,
                      sample_weight: ArrayLike | None = None) -> _Floats: ...
    def fit_transform(self, X: ArrayLike, y: object = None,
                      sample_weight: ArrayLike | None = None) -> Any:
        """Fit to X, then standardize it: ``fit(X, y, sample_weight).transform(X)``.

        Parameters
        ----------
        X : array_like or dask.array.Array of shape (n_samples, n_features)
            Data, 2-d, of a real dtype; NaN is ignored by the fit and kept.
        y : object, default None
            Ignored (scikit-learn's signature).
        sample_weight : array_like of shape (n_samples,) or float, optional
            Weight of each sample for the fit, finite and >= 0, not all 0
            (not with a dask X).

        Returns
        -------
        numpy.ndarray or dask.array.Array of shape (n_samples, n_features)
            The standardized X, as `transform` with the `copy` parameter:
            with ``copy=False`` a float NumPy X is overwritten and returned.
            A dask X is fitted at once and transformed lazily.

        Raises
        ------
        TypeError
            If X is a sparse matrix.
        ValueError
            As `fit`.

        Examples
        --------
        >>> from sklearn.preprocessing import StandardScaler
        >>> X = np.random.default_rng(0).standard_normal((6, 2)).astype(np.float32)
        >>> Z = cnorm.StandardScaler().fit_transform(X)
        >>> Z.dtype, np.allclose(Z, StandardScaler().fit_transform(X), atol=1e-6)
        (dtype('float32'), True)
        """
        return self.fit(X, y, sample_weight).transform(X)

    def _apply(self, X: Any, copy: bool | None, inverse: bool) -> Any:
        self._check_fitted()
        copy = self.copy if copy is None else copy
        coefficients = self._coefficients(inverse)   # fixed now, even for a lazy result
        if _is_dask(X):
            _check_2d(X.shape)
            self._check_features(X.shape[1], False)
            dtype = X.dtype if _keeps_dtype(X.dtype) else np.dtype(np.float64)
            return X.rechunk({1: -1}).map_blocks(_apply_block, *coefficients, dtype=dtype)
        X = _as_2d_floats(X)
        self._check_features(X.shape[1], False)
        return _apply_coefficients(X, *coefficients, copy or not X.flags.writeable)

    def _coefficients(self, inverse: bool) -> tuple[_F64, _F64, _F64]:
        """(center, scale, shift) of y = (x - center) * scale + shift."""
        n = self.n_features_in_
        # with_mean or with_std: fit set mean_; with_std: scale_
        mean = cast(_F64, self.mean_) if self.with_mean else np.zeros(n)
        scale = cast(_F64, self.scale_) if self.with_std else np.ones(n)
        if inverse:
            return np.zeros(n), scale, mean
        return mean, 1.0 / scale, np.zeros(n)

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise _not_fitted_error_type()(
                "This StandardScaler instance is not fitted yet. Call 'fit' with appropriate "
                "arguments before using this estimator.")


_FITTED = ("_moments", "n_samples_seen_", "mean_", "var_", "scale_", "n_features_in_",
           "feature_names_in_")


def _is_dask(X: object) -> TypeGuard[da.Array]:
    return type(X).__module__.startswith("dask.") and hasattr(X, "map_blocks")


def _check_2d(shape: tuple[Any, ...]) -> None:
    """scikit-learn's check_array errors, in its words (its estimator checks
    match them)."""
    if len(shape) != 2:
        raise ValueError(f"Expected 2D array, got an array of shape {tuple(shape)} instead. "
                         "Reshape your data either using X.reshape(-1, 1) if your data has a "
                         "single feature or X.reshape(1, -1) if it contains a single sample.")
    for axis, what in ((0, "sample"), (1, "feature")):
        if shape[axis] == 0:
            raise ValueError(f"Found array with 0 {what}(s) (shape={tuple(shape)}) while a "
                             "minimum of 1 is required.")


def _as_2d_floats(X: ArrayLike) -> _Floats:
    """X as a 2-d float16/bfloat16/float32/float64 array in native byte order
    (other real dtypes as float64)."""
    if hasattr(X, "toarray") and hasattr(X, "nnz"):
        raise TypeError("cnorm.StandardScaler takes dense arrays; a sparse matrix needs "
                        "scikit-learn's StandardScaler(with_mean=False)")
    arr = np.asarray(X)
    if arr.dtype == np.object_ or arr.dtype.kind in "US":   # numbers held as objects (a
        try:   # list of Decimals, a pandas object column) or strings: float64, as scikit-learn
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:   # the type scikit-learn raises
            raise type(exc)(f"X must hold real numbers, got dtype {arr.dtype} ({exc})") from None
    if is_low_dtype(arr.dtype):   # float16, bfloat16 (by name: ml_dtypes stays optional)
        _check_2d(arr.shape)
        return arr
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: X must hold real numbers, got dtype "
                         f"{arr.dtype}")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"X must hold real numbers, got dtype {arr.dtype}")
    _check_2d(arr.shape)
    native = arr.dtype.newbyteorder("=")
    return arr.astype(native if native in _FLOATS else np.float64, copy=False)


def _feature_names(X: object) -> NDArray[np.object_] | None:
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = np.asarray(columns, dtype=object)
    return names if all(isinstance(n, str) for n in names) else None


def _fit_sample_weight(sample_weight: ArrayLike, X: _Floats) -> NDArray[np.float64]:
    """sample_weight checked as scikit-learn's fit takes it: a real number is
    the weight of every sample; an array must have shape (n_samples,), be
    finite and >= 0 (cnorm refuses negative weights) and not be all zero."""
    if isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, np.ndarray):
        sample_weight = np.full(X.shape[0], float(sample_weight))
    weights = _check_sample_weight(sample_weight, X, 1).reshape(-1)
    if not np.any(weights):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return weights


def _fit_moments(X: _Floats, sample_weight: ArrayLike | None) -> Moments:
    """Moments of X's columns (float32 or float64), NaN ignored; infinite
    values rejected."""
    if sample_weight is None:
        moments = Moments.of(X, axis=1)
        if np.all(np.isfinite(moments.m2)):   # no NaN or Inf anywhere: one kernel pass
            return moments
    _reject_infinity(X)
    nan = np.isnan(X)
    return Moments.of(X, axis=1, sample_weight=sample_weight,
                      mask=~nan if nan.any() else None)


# Elements per block of _reject_infinity's elementwise test (a bool buffer
# that stays in cache).
_INF_BLOCK = 1 << 16


def _reject_infinity(X: _Floats) -> None:
    """ValueError if X (2-d, float32 or float64) holds an infinite value; NaN
    is allowed.  X's sum is finite exactly when every value is (IEEE: inf
    and NaN propagate), so finite data costs one pass without a temporary;
    only when the sum is not finite (NaN, infinity or an overflowing sum)
    does an elementwise test follow, block by block in memory order."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(X, axis=None)):
            return
    rows = X.T if X.flags.f_contiguous and not X.flags.c_contiguous else X
    step = max(1, _INF_BLOCK // max(1, rows.shape[1]))
    buffer = np.empty((min(step, rows.shape[0]), rows.shape[1]), np.bool_)
    for i in range(0, rows.shape[0], step):
        block = rows[i:i + step]
        found = np.isinf(block, out=buffer[:len(block)])
        if found.any():
            raise ValueError(f"Input X contains infinity or a value too large for {X.dtype}.")


def _scale(var: _F64, mean: _F64, count: _F64) -> _F64:
    """sqrt(var), with 1 for features indistinguishable from constant (the
    two-pass error bound of Chan, Golub and LeVeque, as scikit-learn)."""
    eps = np.finfo(np.float64).eps
    with np.errstate(invalid="ignore", over="ignore"):
        constant = var <= count * eps * var + (count * mean * eps) ** 2
    scale = np.sqrt(var)
    scale[constant] = 1.0
    return scale


def _apply_coefficients(X: ArrayLike, center: _F64, scale: _F64, shift: _F64, copy: bool
                        ) -> _Floats:
    """y = (X - center) * scale + shift in X's float dtype; infinite values
    rejected before anything is written."""
    X = _as_2d_floats(X)
    if is_low_dtype(X.dtype):   # the float32 kernel on X converted, rounded once
        x32 = upcast(X)
        _reject_infinity(x32)
        center32, scale32, shift32 = (c.astype(np.float32) for c in (center, scale, shift))
        y = _standardize(x32, center32, scale32, shift32, copy=False)
        return downcast(y, X.dtype, None if copy else X)
    _reject_infinity(X)
    return _standardize(X, center.astype(X.dtype), scale.astype(X.dtype),
                        shift.astype(X.dtype), copy)


def _apply_block(X: NDArray[Any], center: _F64, scale: _F64, shift: _F64) -> _Floats:
    """_apply_coefficients on one block of a dask array, into a new array; a
    block of no rows (a chunk of 0, a boolean selection) stays empty."""
    if X.ndim == 2 and X.shape[0] == 0 and X.shape[1] > 0:
        return np.empty(X.shape, X.dtype if _keeps_dtype(X.dtype) else np.float64)
    return _apply_coefficients(X, center, scale, shift, True)


def _standardize(X: _Floats, center: _Floats, scale: _Floats, shift: _Floats, copy: bool
                 ) -> _Floats:
    """The standardize kernel on X's (rows, features) view, or on the
    (features, rows) view of a Fortran-ordered X; in place unless copy."""
    transposed = X.flags.f_contiguous and not X.flags.c_contiguous
    view = X.T if transposed else X
    src = as_contiguous(view)
    y = np.empty_like(src) if copy else src
    if transposed:
        _kernels.channel_standardize(src, 1, src.shape[0], src.shape[1], center, scale, shift, y)
        y = y.T
    else:
        _kernels.channel_standardize(src, src.shape[0], src.shape[1], 1, center, scale, shift, y)
    if copy:
        return y
    if src is not view:   # strided or misaligned X: the kernel wrote a copy
        X[...] = y
    return X

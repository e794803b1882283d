"""Moments of dask arrays: cnorm.Moments per block, tree-merged.

dask is an optional dependency (``pip install "cnorm[dask]"``); it is
imported when this module is.
"""
from __future__ import annotations

from typing import SupportsIndex

import dask
import dask.array as da
import numpy as np
from numpy.typing import ArrayLike

from cnorm._validate import normalize_axis
from cnorm.lowp import is_low_dtype
from cnorm.statistics import Moments, _as_data

__all__ = ["moments"]


def moments(darr: da.Array, axis: SupportsIndex = -1, *, ignore_nan: bool = False) -> Moments:
    """Compute the `cnorm.Moments` of a dask array per feature on `axis`.

    The array is first rechunked so that every block holds all features;
    each block's moments come from `cnorm.Moments.of` (the channel-moments
    kernel; float16 and bfloat16 blocks are converted to float32 first, as
    `cnorm.Moments.of` converts them), and the blocks' moments are merged
    pairwise, as a balanced tree, in block order.  The merge order depends
    only on the chunks, so the result does not depend on the scheduler.  The
    graph is computed at once (with dask's current scheduler) and the result
    is an ordinary Moments.

    Parameters
    ----------
    darr : dask.array.Array
        Data of a real dtype (bool, integer or float, float16 and
        ``ml_dtypes.bfloat16`` included) with known chunk sizes.
    axis : int, default -1
        The feature axis; every other axis is reduced.
    ignore_nan : bool, default False
        Leave NaN out of the statistics (each feature's count is then its
        number of non-NaN values), as `cnorm.StandardScaler.fit` does; and
        reject infinite values.  False: NaN and infinity propagate to their
        feature.

    Returns
    -------
    cnorm.Moments
        The float64 count, mean and m2 of shape ``(darr.shape[axis],)``, equal
        to ``cnorm.Moments.of(x, axis)`` for ``x = darr.compute()`` up to
        float rounding (with `ignore_nan`, to the same with
        ``mask=~np.isnan(x)``).

    Raises
    ------
    TypeError
        If `darr` is not a dask array or has a non-real dtype (complex,
        string, object), or `axis` is not an integer.
    ValueError
        If `axis` is out of range; if `darr` has unknown chunk sizes (call
        ``darr.compute_chunk_sizes()`` first); with `ignore_nan`, if `darr`
        holds an infinite value.

    See Also
    --------
    cnorm.Moments.of : The moments of a NumPy array.
    cnorm.StandardScaler.partial_fit : Uses this function for a dask X.

    Notes
    -----
    Merging is Chan et al.'s pairwise update (`cnorm.Moments.merge`):
    ``n = n_a + n_b``, ``mean = mean_a + delta * n_b / n`` and
    ``m2 = m2_a + m2_b + delta**2 * n_a * n_b / n`` with
    ``delta = mean_b - mean_a``.  Rechunking the feature axis to a single
    chunk may make blocks larger than the input's.

    Examples
    --------
    >>> import dask.array as da
    >>> from cnorm.dask import moments
    >>> x = np.random.default_rng(0).standard_normal((8, 3))
    >>> m = moments(da.from_array(x, chunks=(3, 2)))
    >>> m.count
    array([8., 8., 8.])
    >>> np.allclose(m.mean, x.mean(axis=0)), np.allclose(m.var(), x.var(axis=0))
    (True, True)
    """
    if not isinstance(darr, da.Array):
        raise TypeError(f"darr must be a dask array, got {type(darr).__name__}")
    a = normalize_axis(axis, darr.ndim)
    if darr.dtype.kind not in "biuf" and not is_low_dtype(darr.dtype):
        raise TypeError(f"darr must hold real numbers, got dtype {darr.dtype}")
    if any(np.isnan(c) for chunks in darr.chunks for c in chunks):
        raise ValueError("darr has unknown chunk sizes; call darr.compute_chunk_sizes() first")
    # Blocks that split the feature axis give moments of their own features:
    # rechunk so that every block holds all features.
    darr = darr.rechunk({a: -1})
    parts = [dask.delayed(_block_moments)(block, a, ignore_nan)
             for block in darr.to_delayed().ravel()]
    if not parts:
        return Moments.empty(darr.shape[a])
    while len(parts) > 1:
        parts = [dask.delayed(Moments.merge)(parts[i], parts[i + 1]) if i + 1 < len(parts)
                 else parts[i] for i in range(0, len(parts), 2)]
    return parts[0].compute()


def _block_moments(block: ArrayLike, axis: int, ignore_nan: bool) -> Moments:
    block = _as_data(block)   # what Moments.of computes with: float32 or float64
    if ignore_nan:
        if np.isinf(block).any():
            raise ValueError("Input X contains infinity")
        nan = np.isnan(block)
        if nan.any():
            return Moments.of(block, axis, mask=~nan)
    return Moments.of(block, axis)

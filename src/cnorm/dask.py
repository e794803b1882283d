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
from cnorm.statistics import Moments

__all__ = ["moments"]


def moments(darr: da.Array, axis: SupportsIndex = -1, *, ignore_nan: bool = False) -> Moments:
    """cnorm.Moments of a dask array per feature on `axis`, over every other
    axis: one Moments per block (the channel kernels), merged pairwise in
    block order, so the result does not depend on the scheduler.

    ignore_nan=True leaves NaN out of the statistics (StandardScaler.fit)."""
    if not isinstance(darr, da.Array):
        raise TypeError(f"darr must be a dask array, got {type(darr).__name__}")
    a = normalize_axis(axis, darr.ndim)
    if darr.dtype.kind not in "biuf":
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
    block = np.asarray(block)
    if ignore_nan:
        if np.isinf(block).any():
            raise ValueError("Input X contains infinity")
        nan = np.isnan(block)
        if nan.any():
            return Moments.of(block, axis, mask=~nan)
    return Moments.of(block, axis)

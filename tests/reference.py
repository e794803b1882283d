"""The tests' float64 oracle: everything in cnorm.reference (the formulas,
documented there) plus test-only helpers.

cnorm.reference is pure NumPy in float64 and does not call cnorm's kernels,
so tests comparing against it stay independent of the code under test.
"""
import numpy as np

from cnorm.reference import *  # noqa: F403 - the tests use the whole reference as `ref`
from cnorm.reference import __all__ as _reference_all
from cnorm.reference import running_update as bn_running_update

__all__ = [*_reference_all, "bn_running_update", "numerical_grad"]


def numerical_grad(f, x, h=1e-6):
    """Central finite-difference gradient of the scalar function f at x.

    f receives a float64 copy of x with one element moved by +-h at a time.
    """
    x = np.array(x, dtype=np.float64, order="C")  # private copy, perturbed below
    g = np.zeros_like(x)
    flat = x.reshape(-1)  # a view of the copy
    gflat = g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f(x)
        flat[i] = old - h
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return g

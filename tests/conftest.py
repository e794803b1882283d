"""Shared fixtures and helpers for cnorm's tests."""
import numpy as np
import pytest

import cnorm

# Tolerances against the float64 reference.  float32 results are compared
# with a relative tolerance and an absolute one scaled by the magnitude of the
# expected array (so that values near zero do not need absurd precision).
TOL = {
    np.dtype(np.float32): {"rtol": 1e-4, "atol": 1e-5},
    np.dtype(np.float64): {"rtol": 1e-10, "atol": 1e-10},
}

DTYPES = [np.float32, np.float64]


def assert_close(actual, expected, dtype=None, scale=None, err_msg=""):
    """assert_allclose with the tolerance of ``dtype`` (default: actual's).

    The absolute tolerance is multiplied by ``scale`` (default: the largest
    magnitude in ``expected``, at least 1).
    """
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    dtype = np.dtype(dtype if dtype is not None else actual.dtype)
    tol = TOL[dtype]
    if scale is None:
        scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_allclose(
        actual.astype(np.float64), expected, rtol=tol["rtol"], atol=tol["atol"] * scale,
        err_msg=err_msg,
    )


def channels(shape, axis):
    return shape[axis % len(shape)]


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name: reproducible, different per test."""
    seed = sum(ord(ch) * (i + 1) for i, ch in enumerate(request.node.nodeid)) % (2**32)
    return np.random.default_rng(seed)


@pytest.fixture
def restore_threads():
    """Let a test change cnorm's thread count; restore the default afterwards."""
    yield
    cnorm.set_num_threads(None)

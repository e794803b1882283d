"""Tensors of more than 2**31 elements: 64-bit index arithmetic end to end.

Marked slow (about 9 GB of memory each, in place): run with `pytest -m slow`.
"""
import numpy as np
import pytest

import cnorm

pytestmark = pytest.mark.slow

BIG = 2**31 + 37  # elements past the int32 range, not a multiple of any vector width


def periodic(n, dtype=np.float32):
    """x[i] = i % 7 built in chunks: exact mean 3 and variance 4 over whole periods."""
    x = np.empty(n, dtype)
    pattern = np.tile(np.arange(7, dtype=dtype), 2**20)
    for start in range(0, n, pattern.size):
        chunk = x[start:start + pattern.size]
        chunk[...] = pattern[: chunk.size]
    return x


def expected_normalized(values, count):
    """Reference: statistics of i % 7 over the first `count` integers i."""
    period = np.arange(count, dtype=np.int64) % 7 if count < 10**6 else None
    if period is None:
        full, rest = divmod(count, 7)
        counts = np.full(7, full, np.float64)
        counts[:rest] += 1
        mean = (counts * np.arange(7)).sum() / count
        var = (counts * (np.arange(7) - mean) ** 2).sum() / count
    else:
        mean, var = period.mean(), period.var()
    return (values - mean) / np.sqrt(var + 1e-5)


def test_batch_norm_train_beyond_int32_elements():
    x = periodic(BIG).reshape(1, 1, BIG)
    cnorm.batch_norm_train(x, out=x)
    tail_index = np.arange(BIG - 16, BIG)
    np.testing.assert_allclose(x[0, 0, -16:], expected_normalized(tail_index % 7, BIG),
                               rtol=1e-4, atol=1e-4)


def test_layer_norm_beyond_int32_elements():
    K = 7 * 1024
    M = BIG // K + 1
    x = periodic(M * K).reshape(M, K)
    cnorm.layer_norm(x, K, out=x)
    np.testing.assert_allclose(x[-1, -16:], expected_normalized(np.arange(K - 16, K) % 7, K),
                               rtol=1e-4, atol=1e-4)

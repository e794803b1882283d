"""Hygiene: no reference or memory leaks over many calls."""
import sys

import numpy as np
import pytest

import cnorm

CALLS = 100_000


def resident_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def calls(rng):
    x = rng.standard_normal((2, 8, 4, 4)).astype(np.float32)
    w = np.ones(8, np.float32)
    b = np.zeros(8, np.float32)
    y = np.empty_like(x)
    _, mean, invstd = cnorm.batch_norm_train(x, w, b)
    h = rng.standard_normal((4, 32)).astype(np.float32)
    _, hmean, hrstd = cnorm.layer_norm(h, 32)
    bn = cnorm.BatchNorm(8)
    return {
        "batch_norm_train": (lambda: cnorm.batch_norm_train(x, w, b, out=y), (x, w, b, y)),
        "batch_norm_infer": (lambda: cnorm.batch_norm_infer(x, mean, invstd, w, b, out=y),
                             (x, mean, invstd, w, b, y)),
        "batch_norm_backward": (lambda: cnorm.batch_norm_backward(x, x, mean, invstd, w),
                                (x, mean, invstd, w)),
        "layer_norm": (lambda: cnorm.layer_norm(h, 32), (h,)),
        "layer_norm_backward": (lambda: cnorm.layer_norm_backward(h, h, hmean, hrstd, 32),
                                (h, hmean, hrstd)),
        "BatchNorm": (lambda: (bn(x), bn.backward(x)), (x,)),
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
@pytest.mark.parametrize("name", ["batch_norm_train", "batch_norm_infer", "batch_norm_backward",
                                  "layer_norm", "layer_norm_backward", "BatchNorm"])
def test_repeated_calls_do_not_leak(rng, name):
    call, inputs = calls(rng)[name]
    for _ in range(1000):  # warm up allocator caches and lazy initialisation
        call()
    refcounts = [sys.getrefcount(a) for a in inputs]
    before = resident_bytes()
    for _ in range(CALLS // 10 if name == "BatchNorm" else CALLS):
        call()
    grown = resident_bytes() - before
    assert [sys.getrefcount(a) for a in inputs] == refcounts
    assert grown < 4 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB"

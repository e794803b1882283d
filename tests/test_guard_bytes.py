"""Kernels write exactly their output: out= as a contiguous window of a larger
sentinel-filled buffer, with the bytes around it checked afterwards."""
import math

import numpy as np
import pytest

import cnorm

from conftest import DTYPES

PAD = 67  # elements of guard on each side, not a multiple of any vector width
SENTINEL = -12345.5


def window(shape, dtype):
    """(buffer, out): out is a C-contiguous view into the middle of buffer."""
    n = math.prod(shape)
    buf = np.full(n + 2 * PAD, SENTINEL, dtype)
    return buf, buf[PAD:PAD + n].reshape(shape)


def guards_intact(buf):
    return np.all(buf[:PAD] == SENTINEL) and np.all(buf[-PAD:] == SENTINEL)


def calls(x, dy):
    """name -> function(out) for every public function that takes out=."""
    C = x.shape[1]
    w = np.linspace(0.5, 1.5, C).astype(x.dtype)
    _, mean, invstd = cnorm.batch_norm_train(x, w, w)
    K = x.shape[-1]
    wk = np.linspace(0.5, 1.5, K).astype(x.dtype)
    _, lmean, lrstd = cnorm.layer_norm(x, K, wk)
    _, gmean, grstd = cnorm.group_norm(x, 3, w)
    _, imean, irstd = cnorm.instance_norm(x, w)
    _, rrstd = cnorm.rms_norm(x, K, wk)
    return {
        "batch_norm_train": lambda out: cnorm.batch_norm_train(x, w, w, out=out),
        "batch_norm_train_nhwc": lambda out: cnorm.batch_norm_train(x, wk, wk, axis=-1,
                                                                    out=out),
        "batch_norm_infer": lambda out: cnorm.batch_norm_infer(x, mean, invstd, w, w, out=out),
        "batch_norm_backward": lambda out: cnorm.batch_norm_backward(dy, x, mean, invstd, w,
                                                                     out=out),
        "layer_norm": lambda out: cnorm.layer_norm(x, K, wk, wk, out=out),
        "layer_norm_backward": lambda out: cnorm.layer_norm_backward(dy, x, lmean, lrstd, K, wk,
                                                                     out=out),
        "group_norm": lambda out: cnorm.group_norm(x, 3, w, w, out=out),
        "group_norm_backward": lambda out: cnorm.group_norm_backward(dy, x, gmean, grstd, 3, w,
                                                                     out=out),
        "instance_norm": lambda out: cnorm.instance_norm(x, w, w, out=out),
        "instance_norm_backward": lambda out: cnorm.instance_norm_backward(dy, x, imean, irstd,
                                                                           w, out=out),
        "rms_norm": lambda out: cnorm.rms_norm(x, K, wk, out=out),
        "rms_norm_backward": lambda out: cnorm.rms_norm_backward(dy, x, rrstd, K, wk, out=out),
    }


NAMES = list(calls(np.ones((2, 6, 3, 5)), np.ones((2, 6, 3, 5))))


@pytest.mark.parametrize("shape", [(2, 6, 3, 5), (5, 6, 17, 33), (3, 6, 1, 19)])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", NAMES)
def test_out_window_guards_untouched(rng, shape, dtype, name):
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    buf, out = window(shape, dtype)
    result = calls(x, dy)[name](out)
    first = result[0] if isinstance(result, tuple) else result
    assert first is out
    assert np.isfinite(out).all()
    assert guards_intact(buf)

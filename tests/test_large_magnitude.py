"""Finite float32 data of any magnitude whose float64 statistics are finite
gives finite statistics and outputs within float32 rounding of the float64
reference: sums of values near 1e36 overflow float32 lanes, which the
kernels must catch (every op, both batch-norm layouts, forward and
backward)."""
import numpy as np
import pytest

import cnorm
from cnorm import reference as ref

SCALES = [1e20, 1e30, 1e36, 1e37]


def data(shape, scale, seed=0):
    """Values up to 8 * scale (finite in float32 for scale <= 1e37), one
    channel with a mean of 3 * scale."""
    rng = np.random.default_rng(seed)
    z = np.clip(rng.standard_normal(shape), -4, 4)
    z[:, 0] += 3.0
    return (z * scale).astype(np.float32)


def close(got, want, what):
    assert np.isfinite(got).all(), f"{what}: not finite"
    want = np.asarray(want, np.float64)
    scale = max(np.abs(want).max(), np.finfo(np.float64).tiny)
    err = np.abs(np.asarray(got, np.float64) - want).max() / scale
    assert err < 2e-5, f"{what}: error {err:.2e} relative to the output's scale"


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_batch_norm(scale, layout):
    x = data((6, 5, 9, 11), scale)
    dy = data((6, 5, 9, 11), 1.0, seed=1)
    w = np.linspace(0.5, 1.5, 5).astype(np.float32)
    axis = 1
    if layout == "channels_last":
        x, dy = (np.ascontiguousarray(a.transpose(0, 2, 3, 1)) for a in (x, dy))
        axis = -1
    y, mean, invstd = cnorm.batch_norm_train(x, w, w, axis=axis)
    y_ref, mean_ref, invstd_ref = ref.bn_train(x, w, w, axis=axis)
    close(y, y_ref, "y")
    close(mean, mean_ref, "mean")
    close(invstd, invstd_ref, "invstd")
    dx, dw, db = cnorm.batch_norm_backward(dy, x, mean, invstd, w, axis=axis)
    dx_ref, dw_ref, db_ref = ref.bn_backward(dy, x, mean, invstd, w, axis=axis)
    close(dx, dx_ref, "dx")
    close(dw, dw_ref, "dweight")
    close(db, db_ref, "dbias")
    var_ref = 1 / invstd_ref**2 - 1e-5
    if var_ref.max() < np.finfo(np.float32).max:  # float32 running statistics hold it
        y = cnorm.batch_norm_infer(x, mean_ref.astype(np.float32), var_ref.astype(np.float32),
                                   axis=axis)
        close(y, ref.bn_infer(x, mean_ref, var_ref, axis=axis), "infer y")


ROW_OPS = {
    "layer_norm": (lambda x: cnorm.layer_norm(x, (9, 11)),
                   lambda x: ref.layer_norm(x, (9, 11)),
                   lambda dy, x, s: cnorm.layer_norm_backward(dy, x, s[1], s[2], (9, 11))[0],
                   lambda dy, x: ref.layer_norm_backward(dy, x, (9, 11))[0]),
    "group_norm": (lambda x: cnorm.group_norm(x, 5),
                   lambda x: ref.group_norm(x, 5),
                   lambda dy, x, s: cnorm.group_norm_backward(dy, x, s[1], s[2], 5)[0],
                   lambda dy, x: ref.group_norm_backward(dy, x, 5)[0]),
    "instance_norm": (cnorm.instance_norm, ref.instance_norm,
                      lambda dy, x, s: cnorm.instance_norm_backward(dy, x, s[1], s[2])[0],
                      lambda dy, x: ref.instance_norm_backward(dy, x)[0]),
    "rms_norm": (lambda x: cnorm.rms_norm(x, (9, 11)),
                 lambda x: ref.rms_norm(x, (9, 11)),
                 lambda dy, x, s: cnorm.rms_norm_backward(dy, x, s[1], (9, 11))[0],
                 lambda dy, x: ref.rms_norm_backward(dy, x, (9, 11))[0]),
}


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("op", sorted(ROW_OPS))
def test_row_family(op, scale):
    forward, forward_ref, backward, backward_ref = ROW_OPS[op]
    x = data((6, 5, 9, 11), scale)
    dy = data((6, 5, 9, 11), 1.0, seed=1)
    saved = forward(x)
    want = forward_ref(x)
    close(saved[0], want[0], "y")
    for got, exp in zip(saved[1:], want[1:]):
        close(got, exp, "statistics")
    close(backward(dy, x, saved), backward_ref(dy, x), "dx")

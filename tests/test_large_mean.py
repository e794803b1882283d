"""float32 data with |mean| up to 1e4 std: every op, forward and backward,
within 1e-5 of the float64 reference (relative to the output's scale).
The saved mean is rounded to float32; the kernels keep what that rounding
lost, in the forward normalization and again in backward."""
import numpy as np
import pytest

import cnorm
from cnorm import reference as ref

MEANS = [1e2, 1e3, 1e4, -1e4]
W8 = np.linspace(0.5, 2.0, 8).astype(np.float32)
W77 = np.linspace(0.5, 2.0, 77).astype(np.float32)


def data(shape, mean, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + mean).astype(np.float32)


def close(got, want, what):
    want = np.asarray(want, np.float64)
    err = np.abs(np.asarray(got, np.float64) - want).max() / np.abs(want).max()
    assert err < 1e-5, f"{what}: error {err:.2e} relative to the output's scale"


def _ln(x):
    return cnorm.layer_norm(x, (7, 11), W77.reshape(7, 11), W77.reshape(7, 11))


OPS = {  # forward, its reference, backward from the saved values, its reference
    "layer_norm": (
        _ln, lambda x: ref.layer_norm(x, (7, 11), W77.reshape(7, 11), W77.reshape(7, 11)),
        lambda dy, x, s: cnorm.layer_norm_backward(dy, x, s[1], s[2], (7, 11),
                                                   W77.reshape(7, 11)),
        lambda dy, x: ref.layer_norm_backward(dy, x, (7, 11), W77.reshape(7, 11))),
    "group_norm": (
        lambda x: cnorm.group_norm(x, 4, W8, W8), lambda x: ref.group_norm(x, 4, W8, W8),
        lambda dy, x, s: cnorm.group_norm_backward(dy, x, s[1], s[2], 4, W8),
        lambda dy, x: ref.group_norm_backward(dy, x, 4, W8)),
    "instance_norm": (
        lambda x: cnorm.instance_norm(x, W8, W8), lambda x: ref.instance_norm(x, W8, W8),
        lambda dy, x, s: cnorm.instance_norm_backward(dy, x, s[1], s[2], W8),
        lambda dy, x: ref.instance_norm_backward(dy, x, W8)),
    "batch_norm": (
        lambda x: cnorm.batch_norm_train(x, W8, W8), lambda x: ref.bn_train(x, W8, W8),
        lambda dy, x, s: cnorm.batch_norm_backward(dy, x, s[1], s[2], W8),
        None),
}
# batch_norm_backward's formula is that of its arguments: its reference gets
# the same saved (float32) mean and invstd.


@pytest.mark.parametrize("mean", MEANS)
@pytest.mark.parametrize("op", sorted(OPS))
def test_forward_and_backward_at_large_mean(op, mean):
    forward, forward_ref, backward, backward_ref = OPS[op]
    x = data((5, 8, 7, 11), mean)
    dy = data((5, 8, 7, 11), 0.0, seed=1)
    saved = forward(x)
    close(saved[0], forward_ref(x)[0], "y")
    wants = (ref.bn_backward(dy, x, saved[1], saved[2], W8) if backward_ref is None
             else backward_ref(dy, x))
    for got, want, name in zip(backward(dy, x, saved), wants,
                               ["dx", "dweight", "dbias"]):
        close(got, want, name)


@pytest.mark.parametrize("mean", MEANS)
def test_per_row_means_of_both_signs(mean):
    """Rows of different large means in one call: each keeps its own part."""
    x = data((6, 300), 0.0) + np.array([mean, -mean, 3 * mean, 0, 1, mean / 7],
                                       np.float32)[:, None]
    y, m, r = cnorm.layer_norm(x, 300)
    close(y, ref.layer_norm(x, 300)[0], "y")
    dy = data((6, 300), 0.0, seed=2)
    close(cnorm.layer_norm_backward(dy, x, m, r, 300)[0],
          ref.layer_norm_backward(dy, x, 300)[0], "dx")


@pytest.mark.parametrize("mean", [0.0, 1e4])
@pytest.mark.parametrize("lead", [2.5, 6.0, 1e3])
@pytest.mark.parametrize("length", [300, 5000])   # one block; several blocks
def test_rows_whose_first_values_are_far_from_the_mean(lead, mean, length):
    """The row statistics shift by the first values of each block: leading
    values at `lead` std from the row mean (a ramp, outliers) must not cost
    the variance its precision."""
    x = data((64, length), 0.0)
    x[:, :40] = lead
    x[32:, :40] = np.linspace(-lead, lead, 40, dtype=np.float32)
    x = (x + np.float32(mean)).astype(np.float32)
    y, m, r = cnorm.layer_norm(x, length)
    xd = x.astype(np.float64)
    want_r = 1 / np.sqrt(xd.var(axis=1) + 1e-5)
    assert np.abs(r / want_r - 1).max() < 4e-7
    close(y, ref.layer_norm(x, length)[0], "y")

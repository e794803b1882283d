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
        lambda dy, x: ref.bn_backward(dy, x, *ref.bn_train(x)[1:], W8)),
}


@pytest.mark.parametrize("mean", MEANS)
@pytest.mark.parametrize("op", sorted(OPS))
def test_forward_and_backward_at_large_mean(op, mean):
    forward, forward_ref, backward, backward_ref = OPS[op]
    x = data((5, 8, 7, 11), mean)
    dy = data((5, 8, 7, 11), 0.0, seed=1)
    saved = forward(x)
    close(saved[0], forward_ref(x)[0], "y")
    for got, want, name in zip(backward(dy, x, saved), backward_ref(dy, x),
                               ["dx", "dweight", "dbias"]):
        close(got, want, name)


def _activation_and_grad(z, dy, activation):
    """act(z) and dy * act'(z) in float64."""
    dy = dy.astype(np.float64)
    if activation == "relu":
        return np.maximum(z, 0), dy * (z > 0)
    if activation == "silu":
        s = 1 / (1 + np.exp(-z))
        return z * s, dy * s * (1 + z * (1 - s))
    return z, dy


@pytest.mark.parametrize("activation", [None, "relu", "silu"])
@pytest.mark.parametrize("mean", [1e3, -1e4])
def test_batch_norm_backward_takes_a_mean_that_is_not_xs_own_as_given(mean, activation):
    """The backward recovers the rounding of x's own saved mean only: a
    mean further away (another process's batch, another array) is the
    formula's argument, as in PyTorch."""
    x = data((16, 8, 5), mean)
    dy = data((16, 8, 5), 0.0, seed=1)
    _, m, inv = cnorm.batch_norm_train(x, W8)
    other = (m + np.float32(0.25)).astype(np.float32)
    got = cnorm.batch_norm_backward(dy, x, other, inv, W8, activation=activation)
    xd = x.astype(np.float64)
    z = (xd - other[None, :, None]) * inv[None, :, None] * W8[None, :, None]
    dz = _activation_and_grad(z, dy, activation)[1]
    for g, w, name in zip(got, ref.bn_backward(dz, x, other, inv, W8), ["dx", "dweight", "dbias"]):
        close(g, w, name)


@pytest.mark.parametrize("activation", [None, "relu", "silu"])
@pytest.mark.parametrize("mean", [1e2, -1e4])
def test_row_backward_takes_a_mean_that_is_not_the_rows_own_as_given(mean, activation):
    """As batch norm's: only a row's own rounded mean is corrected."""
    x = data((6, 300), mean)
    dy = data((6, 300), 0.0, seed=1)
    _, m, r = cnorm.layer_norm(x, 300, W77[:1].repeat(300), W77[:1].repeat(300))
    other = (m + np.float32(0.01)).astype(np.float32)
    w = W77[:1].repeat(300)
    got = cnorm.layer_norm_backward(dy, x, other, r, 300, w, activation=activation, bias=w)
    xhat = (x.astype(np.float64) - other[:, None]) * r[:, None]
    g = _activation_and_grad(xhat * w + w, dy, activation)[1] * w
    want = r[:, None] * (g - g.mean(1, keepdims=True) - xhat * (g * xhat).mean(1, keepdims=True))
    close(got[0], want, "dx")


@pytest.mark.parametrize("activation", ["relu", "silu"])
@pytest.mark.parametrize("op", ["layer_norm", "group_norm", "instance_norm", "batch_norm",
                                "masked_batch_norm"])
def test_backward_with_activation_at_large_mean(op, activation):
    """The backward's recomputed pre-activation is the forward's: centred on
    the exact mean, not on the saved float32 one (off by up to 5e-4 at mean
    1e4, which flips relu's mask where |z| is below that)."""
    x = data((16, 8, 9, 9), 1e4)
    dy = data((16, 8, 9, 9), 0.0, seed=1)
    xd = x.astype(np.float64)
    mask = np.ones((16, 1, 9, 9), bool)
    mask[:3, :, :2] = False
    if op == "layer_norm":
        axes = (1, 2, 3)
    elif op in ("group_norm", "instance_norm"):
        groups = 4 if op == "group_norm" else 8
        xd = xd.reshape(16, groups, -1)
        axes = (2,)
    else:
        axes = (0, 2, 3)
    keep = mask if op == "masked_batch_norm" else np.ones(x.shape, bool)
    xk = np.broadcast_to(keep, x.shape).reshape(xd.shape)
    count = xk.sum(axes, keepdims=True)
    mu = np.where(xk, xd, 0).sum(axes, keepdims=True) / count
    var = (np.where(xk, xd - mu, 0) ** 2).sum(axes, keepdims=True) / count
    z = ((xd - mu) / np.sqrt(var + 1e-5)).reshape(x.shape)
    want_y, want_dz = _activation_and_grad(z, dy, activation)
    if op == "layer_norm":
        y, m, r = cnorm.layer_norm(x, (8, 9, 9), activation=activation)
        got = cnorm.layer_norm_backward(dy, x, m, r, (8, 9, 9), activation=activation)
        want = ref.layer_norm_backward(want_dz, x, (8, 9, 9))
    elif op in ("group_norm", "instance_norm"):
        y, m, r = cnorm.group_norm(x, groups, activation=activation)
        got = cnorm.group_norm_backward(dy, x, m, r, groups, activation=activation)
        want = ref.group_norm_backward(want_dz, x, groups)
    else:
        kw = {"mask": mask} if op == "masked_batch_norm" else {}
        y, m, inv = cnorm.batch_norm_train(x, activation=activation, **kw)
        got = cnorm.batch_norm_backward(dy, x, m, inv, activation=activation, **kw)
        if kw:   # masked: the reference's sums run over every position, n over the kept
            n = count.reshape(-1)[0]
            zf = z.reshape(x.shape)
            db, dw = want_dz.sum((0, 2, 3)), (want_dz * zf).sum((0, 2, 3))
            corr = (db[None, :, None, None] + zf * dw[None, :, None, None]) / n
            rstd = 1 / np.sqrt(var.reshape(1, -1, 1, 1) + 1e-5)
            want = ((want_dz - mask * corr) * rstd,)
        else:
            want = ref.bn_backward(want_dz, x, mu.reshape(-1), 1 / np.sqrt(var.reshape(-1) + 1e-5))
    close(y, want_y, "y")
    close(got[0], want[0], "dx")


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


@pytest.mark.parametrize("shape,axis", [((1000, 3), -1), ((100000, 3), -1), ((2, 64, 2), 1),
                                        ((1, 3, 100000), 1), ((20, 3, 1000), 1),
                                        ((300, 5, 7), 1)])
def test_float64_moments_far_from_0_keep_float64_precision(shape, axis):
    """Blocks and pieces merge their means less the column's first value:
    float64 at mean 1e8, std 1 keeps m2 to 1e-13, as NumPy's two passes
    (merging means rounded to float64 kept 1e-10)."""
    x = np.random.default_rng(8).standard_normal(shape) + 1e8
    others = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    xl = x.astype(np.longdouble)
    mean = xl.mean(axis=others, keepdims=True)
    want_m2 = ((xl - mean) ** 2).sum(axis=others).astype(np.float64)
    m = cnorm.Moments.of(x, axis=axis)
    assert np.abs(m.m2 / want_m2 - 1).max() < 1e-13
    assert np.abs(m.mean - mean.reshape(-1).astype(np.float64)).max() <= 1.5e-8   # ulp(1e8)
    _, _, invstd = cnorm.batch_norm_train(x, axis=axis, eps=1e-300)
    var = want_m2 / (x.size // x.shape[axis])
    assert np.abs(1 / invstd**2 / var - 1).max() < 1e-13

"""Finite float64 data near the top of its range (|x| up to 1.7e308): the
kernels' shifted sums and Chan merges overflow there, and such channels and
rows are recomputed scaled by a power of two.  The mean comes out finite and
accurate; the variance, beyond float64's range for any such data, is inf,
so invstd/rstd are 0 and y is the bias, as PyTorch gives for batch norm.
Every layout and family, blocks and pieces that overflow in their merges,
any thread count."""
import numpy as np
import pytest

import cnorm

EPS = np.finfo(np.float64).eps


def balanced(groups, n, seed=0):
    """(groups, n) values: pairs +-u * 1.5e308 (u in [0.5, 1]) and at least
    one 1.0 per group, shuffled.  The true mean is below 1, so x - mean stays
    finite, while the sums of deviations overflow."""
    rng = np.random.default_rng(seed)
    k = (n - 1) // 2
    half = rng.uniform(0.5, 1.0, (groups, k)) * 1.5e308
    vals = np.concatenate([half, -half, np.ones((groups, n - 2 * k))], axis=1)
    return rng.permuted(vals, axis=1)


def channels(shape, axis):
    """x of shape with each channel (index on axis) balanced, and its values
    as (C, n)."""
    C = shape[axis]
    values = balanced(C, int(np.prod(shape)) // C)
    rest = tuple(d for i, d in enumerate(shape) if i != axis % len(shape))
    x = np.ascontiguousarray(np.moveaxis(values.reshape((C,) + rest), 0, axis))
    return x, values


def scaled_mean(values):
    """Mean of each row of finite float64 values, scaled so no sum overflows."""
    e = np.frexp(np.abs(values).max(axis=-1, keepdims=True))[1]
    return np.ldexp(np.ldexp(values, -e).mean(axis=-1), e[..., 0])


def check_mean(got, values):
    """Within summation rounding: n * eps * max|x| (the data's scale, not
    the mean's: the values cancel)."""
    n, top = values.shape[-1], np.abs(values).max()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, scaled_mean(values), rtol=0, atol=4 * n * EPS * top)


CHANNEL_CASES = [
    ((4, 3, 40), 1),        # planar, one block per channel
    ((4, 2, 3000), 1),      # planar, channels of several blocks and pieces
    ((5, 4, 3), 1),         # interleaved (small S)
    ((6, 3, 3, 4), -1),     # channels-last
    ((3000, 5), 1),         # 2-D, blocks of rows merged per column
]


@pytest.mark.parametrize("shape, axis", CHANNEL_CASES)
@pytest.mark.parametrize("threads", [1, 2])
def test_batch_norm_train(shape, axis, threads):
    x, values = channels(shape, axis)
    C = shape[axis]
    w, b = np.linspace(0.5, 2.0, C), np.linspace(-1.0, 1.0, C)
    cnorm.set_num_threads(threads)
    try:
        y, mean, invstd = cnorm.batch_norm_train(x, w, b, axis=axis)
    finally:
        cnorm.set_num_threads(None)
    check_mean(mean, values)
    np.testing.assert_array_equal(invstd, 0.0)
    bshape = [1] * x.ndim
    bshape[axis] = C
    np.testing.assert_array_equal(y, np.broadcast_to(b.reshape(bshape), x.shape))


def test_batch_norm_train_bits_any_thread_count():
    x, _ = channels((4, 2, 3000), 1)
    results = []
    for threads in (1, 2, 4):
        cnorm.set_num_threads(threads)
        results.append(cnorm.batch_norm_train(x)[1])
    cnorm.set_num_threads(None)
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])


@pytest.mark.parametrize("op, shape", [
    ("layer_norm", (3, 5)), ("layer_norm", (2, 5000)),   # one block; several blocks
    ("group_norm", (2, 4, 6)), ("instance_norm", (2, 3, 7)),
])
def test_row_norms(op, shape):
    rows = {"layer_norm": shape[0], "group_norm": shape[0] * 2,
            "instance_norm": shape[0] * shape[1]}[op]
    values = balanced(rows, int(np.prod(shape)) // rows)
    x = values.reshape(shape)
    if op == "layer_norm":
        y, mean, rstd = cnorm.layer_norm(x, shape[-1])
    elif op == "group_norm":
        y, mean, rstd = cnorm.group_norm(x, 2)
    else:
        y, mean, rstd = cnorm.instance_norm(x)
    check_mean(mean.reshape(-1), values)
    np.testing.assert_array_equal(rstd, 0.0)
    np.testing.assert_array_equal(y, 0.0)


def test_moments_of():
    x, values = channels((3000, 4), 1)
    m = cnorm.Moments.of(x)
    check_mean(m.mean, values)
    assert np.isposinf(m.m2).all()


def test_non_finite_data_stays_non_finite():
    x, _ = channels((4, 3, 40), 1)
    x[1, 0, 5] = np.nan
    x[2, 1, 3] = np.inf
    y, mean, invstd = cnorm.batch_norm_train(x)
    assert np.isnan(mean[0]) and np.isinf(mean[1]) and np.isfinite(mean[2])
    _, rmean, _ = cnorm.layer_norm(x.reshape(12, 40), 40)
    assert np.isnan(rmean[3]) and np.isinf(rmean[7]) and np.isfinite(rmean[0])


def test_batch_norm_layer():
    x, values = channels((4, 3, 40), 1)
    bn = cnorm.BatchNorm(3, dtype=np.float64)
    y = bn(x)
    np.testing.assert_array_equal(y, 0.0)
    np.testing.assert_allclose(bn.running_mean, 0.1 * scaled_mean(values), rtol=0,
                               atol=4 * 160 * EPS * 1.5e308)
    assert np.isposinf(bn.running_var).all()


def test_moments_merge_of_parts_near_the_top_of_the_range():
    """Parts whose means are of opposite sign near 1e308 (delta overflows)
    merge to the weighted mean, as the whole gives."""
    x, values = channels((3000, 4), 1)
    low, high = np.split(np.sort(x, axis=0), 2)   # means of opposite sign
    parts = cnorm.Moments.of(low) + cnorm.Moments.of(high)
    check_mean(parts.mean, values)
    assert np.isposinf(parts.m2).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_with_infinities_have_the_mean_of_their_sum(dtype):
    """An Inf anywhere in a row, the first position included, gives the
    row the mean a float64 sum gives: +-inf for infinities of one sign, NaN
    with a NaN or both signs."""
    x = np.array([[np.inf, 1, 2, 3], [1, -np.inf, 2, 3], [np.inf, -np.inf, 1, 2],
                  [np.nan, np.inf, 1, 1], [1, 2, 3, 4]], dtype)
    _, mean, _ = cnorm.layer_norm(x, 4)
    with np.errstate(invalid="ignore"):
        want = x.astype(np.float64).mean(axis=1).astype(dtype)
    np.testing.assert_array_equal(mean, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_rows_with_infinities_have_the_mean_of_their_sum(dtype):
    """Blocks of one row merged (Chan): an inf block mean stays inf."""
    x = np.ones((3, 5000), dtype)
    x[0, 0] = np.inf
    x[1, 4500] = -np.inf
    x[2, 10], x[2, 4000] = np.inf, -np.inf
    _, mean, _ = cnorm.layer_norm(x, 5000)
    np.testing.assert_array_equal(mean, [np.inf, -np.inf, np.nan])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_channels_with_infinities_have_the_mean_of_their_sum(dtype):
    for shape in [(4, 3, 40), (4, 3, 2), (3000, 3, 1)]:   # planar, interleaved, 2-D
        x = np.ones(shape, dtype)
        x[0, 0, 0] = np.inf
        x[1, 1, -1] = -np.inf
        x[0, 2, 0], x[-1, 2, 0] = np.inf, -np.inf
        _, mean, _ = cnorm.batch_norm_train(x)
        with np.errstate(invalid="ignore"):   # the reference's inf - inf
            want = x.astype(np.float64).mean(axis=(0, 2)).astype(dtype)
        np.testing.assert_array_equal(mean, want)


def test_moments_merge_of_infinite_means():
    a = cnorm.Moments.of(np.array([[np.inf, 1.0, np.inf]]))
    b = cnorm.Moments.of(np.array([[2.0, -np.inf, -np.inf]]))
    np.testing.assert_array_equal((a + b).mean, [np.inf, -np.inf, np.nan])

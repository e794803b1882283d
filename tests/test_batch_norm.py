"""Functional batch norm (train / infer / backward) against the float64 reference."""
import numpy as np
import pytest

import cnorm

import reference as ref
from conftest import DTYPES, assert_close, channels

# (shape, axis): 2-D, C=1, S=1, odd sizes (SIMD tails), 3-D/5-D, several axes,
# planar (large S) and interleaved (channels-last, S=1) layouts.
CASES = [
    ((4, 3), 1),
    ((7, 5), -1),
    ((8, 1, 5, 5), 1),
    ((6, 4, 1, 1), 1),
    ((3, 5, 7, 9), 1),
    ((2, 3, 17), 1),
    ((2, 3, 4, 5, 6), 1),
    ((2, 5, 6, 7), -1),
    ((3, 4, 5, 33), -1),
    ((5, 4, 3), 0),
    ((3, 4, 5, 6), 2),
    ((4, 16, 16, 16), 1),
    ((2, 35, 3), 1),
    ((37, 19), 0),
    ((2, 3, 4, 5, 6), -1),
]
CASE_IDS = [f"{'x'.join(map(str, s))}-ax{a}" for s, a in CASES]

AFFINE = ["none", "weight", "bias", "both"]


def make_params(rng, c, dtype, affine):
    w = (rng.standard_normal(c) * 0.5 + 1.0).astype(dtype) if affine in ("weight", "both") else None
    b = rng.standard_normal(c).astype(dtype) if affine in ("bias", "both") else None
    return w, b


def make_x(rng, shape, dtype, loc=0.0):
    # non-zero means and different scales per element so channels differ
    return (rng.standard_normal(shape) * 2.0 + loc + 0.5).astype(dtype)


# ---------------------------------------------------------------- forward


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape,axis", CASES, ids=CASE_IDS)
def test_train_matches_reference(rng, shape, axis, dtype, affine):
    x = make_x(rng, shape, dtype)
    c = channels(shape, axis)
    w, b = make_params(rng, c, dtype, affine)
    x0 = x.copy()
    y, mean, invstd = cnorm.batch_norm_train(x, w, b, eps=1e-5, axis=axis)
    ey, emean, einvstd = ref.bn_train(x, w, b, eps=1e-5, axis=axis)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert mean.shape == (c,) and mean.dtype == x.dtype
    assert invstd.shape == (c,) and invstd.dtype == x.dtype
    assert_close(mean, emean)
    assert_close(invstd, einvstd)
    assert_close(y, ey)
    np.testing.assert_array_equal(x, x0)  # input not mutated


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape,axis", CASES, ids=CASE_IDS)
def test_infer_matches_reference(rng, shape, axis, dtype, affine):
    x = make_x(rng, shape, dtype)
    c = channels(shape, axis)
    w, b = make_params(rng, c, dtype, affine)
    rm = rng.standard_normal(c).astype(dtype)
    rv = rng.uniform(0.2, 3.0, c).astype(dtype)
    copies = [a.copy() for a in (x, rm, rv)]
    y = cnorm.batch_norm_infer(x, rm, rv, w, b, eps=1e-3, axis=axis)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert_close(y, ref.bn_infer(x, rm, rv, w, b, eps=1e-3, axis=axis))
    for a, a0 in zip((x, rm, rv), copies):
        np.testing.assert_array_equal(a, a0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [1e-7, 1e-5, 0.5])  # eps = 0: test_numerical_edges.py
def test_eps_enters_inside_sqrt(rng, dtype, eps):
    x = make_x(rng, (6, 3, 4), dtype)
    y, mean, invstd = cnorm.batch_norm_train(x, eps=eps)
    ey, emean, einvstd = ref.bn_train(x, eps=eps)
    assert_close(invstd, einvstd)
    assert_close(y, ey)
    rm, rv = np.zeros(3, dtype), np.full(3, 0.25, dtype)
    assert_close(cnorm.batch_norm_infer(x, rm, rv, eps=eps), ref.bn_infer(x, rm, rv, eps=eps))


@pytest.mark.parametrize("dtype", DTYPES)
def test_constant_channel(rng, dtype):
    """A channel with zero variance gives invstd = 1/sqrt(eps) and y = bias."""
    x = make_x(rng, (4, 3, 5), dtype)
    x[:, 1, :] = 3.25
    b = np.array([0.0, 7.0, 0.0], dtype)
    y, mean, invstd = cnorm.batch_norm_train(x, None, b, eps=1e-2)
    assert_close(mean[1], 3.25)
    assert_close(invstd[1], 10.0)
    assert_close(y[:, 1, :], np.full((4, 5), 7.0))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((3, 5, 7, 9), 1), ((2, 6, 7, 5), -1), ((9, 4), 1)])
def test_train_out(rng, shape, axis, dtype):
    x = make_x(rng, shape, dtype)
    c = channels(shape, axis)
    w, b = make_params(rng, c, dtype, "both")
    ey, emean, einvstd = ref.bn_train(x, w, b, axis=axis)
    out = np.full_like(x, np.nan)
    y, mean, invstd = cnorm.batch_norm_train(x, w, b, axis=axis, out=out)
    assert y is out
    assert_close(out, ey)
    assert_close(mean, emean)
    # in place
    y2, mean2, invstd2 = cnorm.batch_norm_train(x, w, b, axis=axis, out=x)
    assert y2 is x
    assert_close(x, ey)
    assert_close(mean2, emean)
    assert_close(invstd2, einvstd)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((3, 5, 7, 9), 1), ((2, 6, 7, 5), -1), ((9, 4), 0)])
def test_infer_out(rng, shape, axis, dtype):
    x = make_x(rng, shape, dtype)
    c = channels(shape, axis)
    w, b = make_params(rng, c, dtype, "both")
    rm = rng.standard_normal(c).astype(dtype)
    rv = rng.uniform(0.5, 2.0, c).astype(dtype)
    ey = ref.bn_infer(x, rm, rv, w, b, axis=axis)
    out = np.full_like(x, np.nan)
    y = cnorm.batch_norm_infer(x, rm, rv, w, b, axis=axis, out=out)
    assert y is out
    assert_close(out, ey)
    y2 = cnorm.batch_norm_infer(x, rm, rv, w, b, axis=axis, out=x)
    assert y2 is x
    assert_close(x, ey)


@pytest.mark.parametrize("dtype", DTYPES)
def test_infer_zero_size_batch(dtype):
    c = 3
    rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
    for shape, axis in [((0, 3, 4, 4), 1), ((0, 3), 1), ((2, 3, 0), 1), ((0, 3), -1)]:
        x = np.empty(shape, dtype)
        y = cnorm.batch_norm_infer(x, rm, rv, axis=axis)
        assert y.shape == shape and y.dtype == np.dtype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_read_only_inputs(rng, dtype):
    """Read-only buffers (e.g. memmaps) are accepted as inputs."""
    x = make_x(rng, (4, 3, 6), dtype)
    w, b = make_params(rng, 3, dtype, "both")
    rm, rv = np.zeros(3, dtype), np.ones(3, dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    for a in (x, w, b, rm, rv, dy):
        a.setflags(write=False)
    y, mean, invstd = cnorm.batch_norm_train(x, w, b)
    assert_close(y, ref.bn_train(x, w, b)[0])
    assert_close(cnorm.batch_norm_infer(x, rm, rv, w, b), ref.bn_infer(x, rm, rv, w, b))
    mean.setflags(write=False)
    invstd.setflags(write=False)
    dx, dw, db = cnorm.batch_norm_backward(dy, x, mean, invstd, w)
    edx, edw, edb = ref.bn_backward(dy, x, mean, invstd, w)
    assert_close(dx, edx)
    assert_close(dw, edw, scale=np.sqrt(x.size / 3))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [1, -1])
def test_contiguous_inputs_are_not_copied(rng, dtype, axis):
    """C-contiguous inputs reach the kernels as they are: with out= given, no
    array of x's size is allocated (NumPy reports its buffers to tracemalloc)."""
    import tracemalloc

    shape = (8, 16, 32, 32)
    x = make_x(rng, shape, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    c = channels(shape, axis)
    w, b = make_params(rng, c, dtype, "both")
    rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
    out = np.empty_like(x)
    _, mean, invstd = cnorm.batch_norm_train(x, w, b, axis=axis, out=out)  # warm up
    calls = [
        lambda: cnorm.batch_norm_train(x, w, b, axis=axis, out=out),
        lambda: cnorm.batch_norm_infer(x, rm, rv, w, b, axis=axis, out=out),
        lambda: cnorm.batch_norm_backward(dy, x, mean, invstd, w, axis=axis, out=out),
    ]
    for i, call in enumerate(calls):
        tracemalloc.start()
        try:
            call()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        nbytes = x.nbytes
        assert peak < nbytes // 4, f"call {i}: {peak} bytes traced, x has {nbytes}"


# ------------------------------------------------- non-contiguous inputs


def _variants(rng, dtype):
    """(name, x, axis): non-contiguous views of many kinds."""
    base = make_x(rng, (6, 5, 9, 8), dtype)
    yield "step-slice", base[::2, :, 1::2, ::3], 1
    yield "channel-slice", base[:, 1:4], 1
    yield "neg-stride", base[::-1, :, ::-1, :], 1
    yield "neg-stride-channels", base[:, ::-1], 1
    yield "transpose-nhwc", base.transpose(0, 2, 3, 1), -1
    yield "transpose-nchw-from-nhwc", make_x(rng, (4, 7, 5, 3), dtype).transpose(0, 3, 1, 2), 1
    yield "fortran", np.asfortranarray(base), 1
    yield "fortran-2d", np.asfortranarray(make_x(rng, (33, 5), dtype)), 1
    yield "fortran-cl", np.asfortranarray(base), -1
    yield "full-transpose", base.T, 2
    one = make_x(rng, (1, 5, 9, 8), dtype)
    yield "broadcast-zero-stride", np.broadcast_to(one, (3, 5, 9, 8)), 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_forward(rng, dtype):
    for name, x, axis in _variants(rng, dtype):
        c = channels(x.shape, axis)
        w, b = make_params(rng, c, dtype, "both")
        rm = rng.standard_normal(c).astype(dtype)
        rv = rng.uniform(0.5, 2.0, c).astype(dtype)
        x0 = x.copy()
        xc = np.ascontiguousarray(x)
        y, mean, invstd = cnorm.batch_norm_train(x, w, b, axis=axis)
        yc, meanc, invstdc = cnorm.batch_norm_train(xc, w, b, axis=axis)
        ey, emean, einvstd = ref.bn_train(x, w, b, axis=axis)
        assert_close(y, ey, err_msg=name)
        assert_close(mean, emean, err_msg=name)
        assert_close(invstd, einvstd, err_msg=name)
        assert_close(y, yc, err_msg=name)
        assert_close(mean, meanc, err_msg=name)
        yi = cnorm.batch_norm_infer(x, rm, rv, w, b, axis=axis)
        assert_close(yi, ref.bn_infer(x, rm, rv, w, b, axis=axis), err_msg=name)
        np.testing.assert_array_equal(x, x0, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_backward(rng, dtype):
    for name, x, axis in _variants(rng, dtype):
        c = channels(x.shape, axis)
        w, _ = make_params(rng, c, dtype, "weight")
        dy_base = rng.standard_normal(tuple(reversed(x.shape))).astype(dtype)
        dy = dy_base.T  # non-contiguous dy as well
        _, mean, invstd = cnorm.batch_norm_train(np.ascontiguousarray(x), axis=axis)
        x0, dy0 = x.copy(), dy.copy()
        dx, dw, db = cnorm.batch_norm_backward(dy, x, mean, invstd, w, axis=axis)
        edx, edw, edb = ref.bn_backward(dy, x, mean, invstd, w, axis=axis)
        m = x.size // c
        assert_close(dx, edx, err_msg=name)
        assert_close(dw, edw, scale=m, err_msg=name)
        assert_close(db, edb, scale=m, err_msg=name)
        np.testing.assert_array_equal(x, x0, err_msg=name)
        np.testing.assert_array_equal(dy, dy0, err_msg=name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_params(rng, dtype):
    x = make_x(rng, (4, 3, 5), dtype)
    wb = rng.standard_normal((4, 6)).astype(dtype)
    w, b = wb[1, ::2], wb[::-1, 1][1:]
    rm, rv = wb[0, ::-2], np.abs(wb[2, 1::2]) + 0.5
    assert not w.flags.c_contiguous and not b.flags.c_contiguous
    y, mean, invstd = cnorm.batch_norm_train(x, w, b)
    assert_close(y, ref.bn_train(x, w, b)[0])
    assert_close(cnorm.batch_norm_infer(x, rm, rv, w, b), ref.bn_infer(x, rm, rv, w, b))
    dy = rng.standard_normal(x.shape).astype(dtype)
    mean_s = np.stack([mean, mean], axis=1)[:, 1]
    invstd_s = np.repeat(invstd, 2)[::2]
    assert not mean_s.flags.c_contiguous and not invstd_s.flags.c_contiguous
    dx, dw, db = cnorm.batch_norm_backward(dy, x, mean_s, invstd_s, w)
    assert_close(dx, ref.bn_backward(dy, x, mean, invstd, w)[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_noncontiguous_out(rng, dtype):
    """A strided out= view receives the result; its neighbours are untouched."""
    x = make_x(rng, (3, 4, 5, 6), dtype)
    big = np.full((5, 6, 7, 8), -77.0, dtype)
    out = big[1:4, 1:5, 1:6, 1:7]
    mask = np.ones(big.shape, bool)
    mask[1:4, 1:5, 1:6, 1:7] = False
    y, _, _ = cnorm.batch_norm_train(x, out=out)
    assert_close(out, ref.bn_train(x)[0])
    assert np.all(big[mask] == -77.0)
    rm, rv = np.zeros(4, dtype), np.ones(4, dtype)
    big[...] = -77.0
    cnorm.batch_norm_infer(x, rm, rv, out=out)
    assert_close(out, ref.bn_infer(x, rm, rv))
    assert np.all(big[mask] == -77.0)
    # in place on a non-contiguous x
    for xs in (np.asfortranarray(x), big[1:4, 1:5, 1:6, 1:7]):
        xs[...] = x
        y, _, _ = cnorm.batch_norm_train(xs, out=xs)
        assert y is xs
        assert_close(xs, ref.bn_train(x)[0])
        assert np.all(big[mask] == -77.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shift", [1, -1, 7])
def test_out_partially_overlapping_input(rng, dtype, shift):
    """out= overlapping x (or dy) without being it: the result is as if the
    inputs had been read before anything was written."""
    shape = (3, 4, 5, 6)
    n = int(np.prod(shape))
    buf = make_x(rng, n + abs(shift), dtype)
    x = buf[max(shift, 0):max(shift, 0) + n].reshape(shape)
    out = buf[max(-shift, 0):max(-shift, 0) + n].reshape(shape)
    assert np.shares_memory(x, out) and not np.array_equal(x, out)
    x0 = x.copy()
    w, b = make_params(rng, 4, dtype, "both")
    cnorm.batch_norm_train(x, w, b, out=out)
    assert_close(out, ref.bn_train(x0, w, b)[0])

    buf[...] = make_x(rng, buf.shape, dtype)
    x0 = x.copy()
    rm, rv = rng.standard_normal(4).astype(dtype), rng.uniform(0.5, 2, 4).astype(dtype)
    cnorm.batch_norm_infer(x, rm, rv, w, b, out=out)
    assert_close(out, ref.bn_infer(x0, rm, rv, w, b))

    # backward: out overlaps dy
    buf[...] = make_x(rng, buf.shape, dtype)
    dy = x
    dy0 = dy.copy()
    xx = make_x(rng, shape, dtype)
    _, mean, invstd = cnorm.batch_norm_train(xx, w)
    cnorm.batch_norm_backward(dy, xx, mean, invstd, w, out=out)
    assert_close(out, ref.bn_backward(dy0, xx, mean, invstd, w)[0])


def test_random_shapes_and_axes():
    """Property test: any shape with ndim 2..5 and any axis matches the reference."""
    hypothesis = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")

    @hypothesis.settings(max_examples=40, deadline=None, derandomize=True)
    @hypothesis.given(
        shape=st.lists(st.integers(1, 9), min_size=2, max_size=5),
        axis_pick=st.integers(0, 4),
        negative=st.booleans(),
        dtype=st.sampled_from(DTYPES),
        seed=st.integers(0, 2**32 - 1),
    )
    def check(shape, axis_pick, negative, dtype, seed):
        shape = tuple(shape)
        axis = axis_pick % len(shape)
        if negative:
            axis -= len(shape)
        c = shape[axis]
        hypothesis.assume(np.prod(shape) // c >= 2)
        r = np.random.default_rng(seed)
        x = make_x(r, shape, dtype)
        w, b = make_params(r, c, dtype, "both")
        y, mean, invstd = cnorm.batch_norm_train(x, w, b, axis=axis)
        ey, emean, einvstd = ref.bn_train(x, w, b, axis=axis)
        assert_close(y, ey)
        assert_close(invstd, einvstd)
        dy = r.standard_normal(shape).astype(dtype)
        dx, dw, db = cnorm.batch_norm_backward(dy, x, mean, invstd, w, axis=axis)
        edx, edw, edb = ref.bn_backward(dy, x, mean, invstd, w, axis=axis)
        assert_close(dx, edx)
        assert_close(db, edb, scale=np.sqrt(x.size // c))

    check()


# ---------------------------------------------------------------- backward


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_weight", [False, True])
@pytest.mark.parametrize("shape,axis", CASES, ids=CASE_IDS)
def test_backward_matches_reference(rng, shape, axis, dtype, with_weight):
    x = make_x(rng, shape, dtype)
    c = channels(shape, axis)
    w, _ = make_params(rng, c, dtype, "weight" if with_weight else "none")
    dy = rng.standard_normal(shape).astype(dtype)
    _, mean, invstd = cnorm.batch_norm_train(x, w, axis=axis)
    copies = [a.copy() for a in (dy, x, mean, invstd)]
    dx, dw, db = cnorm.batch_norm_backward(dy, x, mean, invstd, w, axis=axis)
    # expected from the same saved statistics (backward is tested on its own)
    edx, edw, edb = ref.bn_backward(dy, x, mean, invstd, w, axis=axis)
    m = x.size // c
    assert dx.shape == x.shape and dx.dtype == x.dtype
    assert db.shape == (c,) and db.dtype == x.dtype
    assert_close(dx, edx)
    assert_close(db, edb, scale=np.sqrt(m))
    if with_weight:
        assert dw.shape == (c,) and dw.dtype == x.dtype
        assert_close(dw, edw, scale=np.sqrt(m))
    else:
        assert dw is None
    for a, a0 in zip((dy, x, mean, invstd), copies):
        np.testing.assert_array_equal(a, a0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((3, 5, 7, 9), 1), ((2, 6, 7, 5), -1), ((9, 4), 1)])
def test_backward_out(rng, shape, axis, dtype):
    x = make_x(rng, shape, dtype)
    c = channels(shape, axis)
    w, _ = make_params(rng, c, dtype, "weight")
    dy = rng.standard_normal(shape).astype(dtype)
    _, mean, invstd = cnorm.batch_norm_train(x, w, axis=axis)
    edx, edw, edb = ref.bn_backward(dy, x, mean, invstd, w, axis=axis)
    out = np.full_like(x, np.nan)
    dx, dw, db = cnorm.batch_norm_backward(dy, x, mean, invstd, w, axis=axis, out=out)
    assert dx is out
    assert_close(out, edx)
    # out=dy: gradient overwrites the incoming gradient in place
    dx2, dw2, db2 = cnorm.batch_norm_backward(dy, x, mean, invstd, w, axis=axis, out=dy)
    assert dx2 is dy
    assert_close(dy, edx)
    m = x.size // c
    assert_close(dw2, edw, scale=np.sqrt(m))
    assert_close(db2, edb, scale=np.sqrt(m))


def _loss_grads_fd(x, w, b, g, axis, eps):
    """Finite-difference gradients of sum(y * g), y from cnorm's own forward."""

    def loss_x(xx):
        return float(np.sum(cnorm.batch_norm_train(xx, w, b, eps=eps, axis=axis)[0] * g))

    def loss_w(ww):
        return float(np.sum(cnorm.batch_norm_train(x, ww, b, eps=eps, axis=axis)[0] * g))

    def loss_b(bb):
        return float(np.sum(cnorm.batch_norm_train(x, w, bb, eps=eps, axis=axis)[0] * g))

    return (ref.numerical_grad(loss_x, x), ref.numerical_grad(loss_w, w),
            ref.numerical_grad(loss_b, b))


@pytest.mark.parametrize("shape,axis", [((4, 3, 5), 1), ((5, 2), 1), ((3, 4, 2, 3), -1),
                                        ((4, 3, 2), 0), ((2, 3, 4, 5), 2)])
def test_gradient_finite_differences(rng, shape, axis):
    x = make_x(rng, shape, np.float64)
    c = channels(shape, axis)
    w, b = make_params(rng, c, np.float64, "both")
    g = rng.standard_normal(shape)
    eps = 1e-3
    _, mean, invstd = cnorm.batch_norm_train(x, w, b, eps=eps, axis=axis)
    dx, dw, db = cnorm.batch_norm_backward(g, x, mean, invstd, w, axis=axis)
    ndx, ndw, ndb = _loss_grads_fd(x, w, b, g, axis, eps)
    np.testing.assert_allclose(dx, ndx, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dw, ndw, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(db, ndb, rtol=1e-6, atol=1e-6)
    # without weight: dx is the gradient of the unscaled normalization
    _, mean, invstd = cnorm.batch_norm_train(x, None, None, eps=eps, axis=axis)
    dx0, dw0, db0 = cnorm.batch_norm_backward(g, x, mean, invstd, None, axis=axis)
    ndx0 = ref.numerical_grad(
        lambda xx: float(np.sum(cnorm.batch_norm_train(xx, eps=eps, axis=axis)[0] * g)), x)
    np.testing.assert_allclose(dx0, ndx0, rtol=1e-6, atol=1e-6)
    assert dw0 is None
    np.testing.assert_allclose(db0, ndb, rtol=1e-6, atol=1e-6)


def test_reference_backward_matches_finite_differences(rng):
    """The oracle itself: reference backward == gradient of reference forward."""
    x = make_x(rng, (3, 2, 4), np.float64)
    w, b = make_params(rng, 2, np.float64, "both")
    g = rng.standard_normal(x.shape)
    _, mean, invstd = ref.bn_train(x, w, b, eps=1e-3)
    dx, dw, db = ref.bn_backward(g, x, mean, invstd, w)
    ndx = ref.numerical_grad(lambda xx: np.sum(ref.bn_train(xx, w, b, eps=1e-3)[0] * g), x)
    ndw = ref.numerical_grad(lambda ww: np.sum(ref.bn_train(x, ww, b, eps=1e-3)[0] * g), w)
    ndb = ref.numerical_grad(lambda bb: np.sum(ref.bn_train(x, w, bb, eps=1e-3)[0] * g), b)
    np.testing.assert_allclose(dx, ndx, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, ndw, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(db, ndb, rtol=1e-6, atol=1e-7)


# ------------------------------------------------- fused and unfused passes

# Planar shapes on each side of channel.c's fusion rules (runs of 2 KiB,
# 4 MiB per channel of x, or of dy and x for the backward): short runs,
# fused, training fused but backward not, neither.
PASS_CASES = [(8, 16, 14, 14), (4, 3, 64, 64), (12, 2, 224, 224), (24, 2, 224, 224)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", PASS_CASES, ids=["x".join(map(str, s)) for s in PASS_CASES])
def test_train_and_backward_on_every_pass_structure(rng, shape, dtype):
    x = make_x(rng, shape, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    w, b = make_params(rng, shape[1], dtype, "both")
    y, mean, invstd = cnorm.batch_norm_train(x, w, b)
    ey, emean, einvstd = ref.bn_train(x, w, b)
    assert_close(y, ey)
    assert_close(mean, emean)
    assert_close(invstd, einvstd)
    dx, dw, db = cnorm.batch_norm_backward(dy, x, mean, invstd, w)
    edx, edw, edb = ref.bn_backward(dy, x, mean, invstd, w)
    m = x.size // shape[1]
    assert_close(dx, edx)
    assert_close(dw, edw, scale=np.sqrt(m))
    assert_close(db, edb, scale=np.sqrt(m))


@pytest.mark.parametrize("offset", [0, 1, 3])
def test_streamed_stores_match_plain_stores(offset):
    """Outputs of 64 MiB and more are written with non-temporal stores (planar
    layouts): the same bits as the in-place pass, which stores plainly, for
    an out= window at any element offset, and nothing written outside it."""
    rng = np.random.default_rng(offset)
    shape, dtype = (16, 16, 256, 256), np.float32   # exactly 64 MiB
    n = int(np.prod(shape))
    x = (rng.standard_normal(shape, dtype=dtype) * 2 + 1).astype(dtype)
    dy = rng.standard_normal(shape, dtype=dtype)
    w, b = make_params(rng, shape[1], dtype, "both")
    buf = np.full(n + 8, -7.0, dtype)
    out = buf[offset:offset + n].reshape(shape)
    y, mean, invstd = cnorm.batch_norm_train(x, w, b, out=out)
    y_plain, mean_plain, invstd_plain = cnorm.batch_norm_train(x.copy(), w, b, out=None)
    xi = x.copy()
    cnorm.batch_norm_train(xi, w, b, out=xi)
    np.testing.assert_array_equal(y, xi)
    np.testing.assert_array_equal(y_plain, xi)
    dx, _, _ = cnorm.batch_norm_backward(dy, x, mean, invstd, w, out=out)
    dyi = dy.copy()
    cnorm.batch_norm_backward(dyi, x, mean, invstd, w, out=dyi)
    np.testing.assert_array_equal(dx, dyi)
    rv = (1.0 / invstd.astype(np.float64) ** 2).astype(dtype)
    yf = cnorm.batch_norm_infer(x, mean, rv, w, b, out=out)
    xi = x.copy()
    cnorm.batch_norm_infer(xi, mean, rv, w, b, out=xi)
    np.testing.assert_array_equal(yf, xi)
    assert np.all(buf[:offset] == -7.0) and np.all(buf[offset + n:] == -7.0)


# --------------------------------------------------------------- precision


@pytest.mark.parametrize("shape,axis", [((16, 2, 256, 256), 1), ((1 << 20, 2), -1)],
                         ids=["planar", "interleaved"])
def test_float32_large_mean_precision(shape, axis):
    """|mean| >> std over ~1M values per channel: no catastrophic cancellation."""
    rng = np.random.default_rng(1234)
    x = (1e4 + rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)
    eps = 1e-5
    _, mean, invstd = cnorm.batch_norm_train(x, eps=eps, axis=axis)
    emean, evar, _ = ref.batch_stats(x, axis)
    var = 1.0 / invstd.astype(np.float64) ** 2 - eps
    np.testing.assert_allclose(var, evar, rtol=1e-3)
    np.testing.assert_allclose(mean, emean, rtol=1e-6)


# ------------------------------------------------------------- determinism

DET_CASES = [((32, 64, 28, 28), 1, np.float32), ((16, 3, 64, 64), 1, np.float32),
             ((64 * 28 * 28, 64), -1, np.float32), ((8, 28, 28, 64), -1, np.float32),
             ((65536, 3), -1, np.float32), ((20000, 17), -1, np.float64),
             ((4, 5, 96, 97), 1, np.float64)]


@pytest.mark.parametrize("shape,axis,dtype", DET_CASES,
                         ids=[f"{'x'.join(map(str, s))}-ax{a}-{np.dtype(d).name}"
                              for s, a, d in DET_CASES])
def test_thread_count_does_not_change_results(shape, axis, dtype, restore_threads):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(shape, dtype=dtype) * 3 + 1).astype(dtype)
    dy = rng.standard_normal(shape, dtype=dtype)
    c = channels(shape, axis)
    w = rng.uniform(0.5, 1.5, c).astype(dtype)
    b = rng.standard_normal(c).astype(dtype)
    results = []
    for n in (1, 2):
        cnorm.set_num_threads(n)
        y, mean, invstd = cnorm.batch_norm_train(x, w, b, axis=axis)
        dx, dw, db = cnorm.batch_norm_backward(dy, x, mean, invstd, w, axis=axis)
        results.append((y, mean, invstd, dx, dw, db))
    for name, a1, a2 in zip(("y", "mean", "invstd", "dx", "dweight", "dbias"), *results):
        assert np.array_equal(a1, a2), name
    # and the result is right, not just repeatable
    y, mean, invstd, dx, dw, db = results[1]
    ey, emean, einvstd = ref.bn_train(x, w, b, axis=axis)
    assert_close(y, ey)
    assert_close(mean, emean)
    assert_close(invstd, einvstd)
    edx, edw, edb = ref.bn_backward(dy, x, mean, invstd, w, axis=axis)
    assert_close(dx, edx)
    m = x.size // c
    assert_close(dw, edw, scale=np.sqrt(m))
    assert_close(db, edb, scale=np.sqrt(m))


# -------------------------------------------------------------- guard bytes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((3, 5, 7, 9), 1), ((4, 7, 3), -1), ((33, 17), 1)])
def test_out_guard_bytes(rng, shape, axis, dtype):
    """out= cut from a larger sentinel-filled buffer: nothing outside is written."""
    pad = 37
    n = int(np.prod(shape))
    sentinel = dtype(-12345.5)
    buf = np.full(n + 2 * pad, sentinel, dtype)
    out = buf[pad:pad + n].reshape(shape)
    assert np.shares_memory(out, buf)
    x = make_x(rng, shape, dtype)
    c = channels(shape, axis)
    w, b = make_params(rng, c, dtype, "both")

    def check_guards():
        assert np.all(buf[:pad] == sentinel)
        assert np.all(buf[pad + n:] == sentinel)

    _, mean, invstd = cnorm.batch_norm_train(x, w, b, axis=axis, out=out)
    check_guards()
    assert_close(out, ref.bn_train(x, w, b, axis=axis)[0])

    rm = rng.standard_normal(c).astype(dtype)
    rv = rng.uniform(0.5, 2.0, c).astype(dtype)
    cnorm.batch_norm_infer(x, rm, rv, w, b, axis=axis, out=out)
    check_guards()
    assert_close(out, ref.bn_infer(x, rm, rv, w, b, axis=axis))

    dy = rng.standard_normal(shape).astype(dtype)
    cnorm.batch_norm_backward(dy, x, mean, invstd, w, axis=axis, out=out)
    check_guards()
    assert_close(out, ref.bn_backward(dy, x, mean, invstd, w, axis=axis)[0])

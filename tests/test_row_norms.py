"""Functional row family (layer, group, instance, RMS norm) against the
float64 NumPy reference in cnorm.reference, finite differences, and
properties (out=, strides, determinism, errors)."""
import numpy as np
import pytest

import cnorm

import reference as ref
from conftest import DTYPES, assert_close

AFFINE = ["none", "weight", "bias", "both"]


def make_x(rng, shape, dtype, loc=0.5, scale=2.0):
    return (rng.standard_normal(shape) * scale + loc).astype(dtype)


def make_params(rng, shape, dtype, affine):
    w = (rng.standard_normal(shape) * 0.5 + 1.0).astype(dtype) if affine in ("weight", "both") \
        else None
    b = rng.standard_normal(shape).astype(dtype) if affine in ("bias", "both") else None
    return w, b


def ids(cases):
    return ["x".join(map(str, c[0])) + "-" + str(c[1]) for c in cases]


# (x shape, normalized_shape): odd sizes (SIMD tails), K=1, (1, 768),
# 3-D transformer-like, several trailing dims, 1-D x, rows above one block.
LN_CASES = [
    ((5, 7), (7,)),
    ((1, 768), (768,)),
    ((6, 1), (1,)),
    ((3, 4, 37), (37,)),
    ((2, 9, 130), (130,)),
    ((3, 4, 5, 6), (4, 5, 6)),
    ((2, 3, 7, 5), (7, 5)),
    ((17,), (17,)),
    ((3, 5000), (5000,)),
    ((33, 15), 15),
]

# (x shape, num_groups): G=1, G=C, 2-D (S=1), 3-D, 4-D, 5-D, odd sizes.
GN_CASES = [
    ((2, 6, 5), 3),
    ((3, 4, 5, 7), 2),
    ((1, 8, 3, 3), 8),
    ((2, 6, 4, 4), 1),
    ((4, 10), 2),
    ((6, 9), 3),
    ((2, 12, 3, 2, 3), 4),
    ((3, 9, 17), 3),
    ((2, 4, 33, 65), 2),
]

IN_CASES = [(2, 3, 5), (3, 4, 7, 9), (2, 3, 2, 3, 5), (1, 1, 17), (2, 5, 40, 41)]

RMS_CASES = [
    ((5, 7), (7,)),
    ((1, 768), (768,)),
    ((3, 4, 37), (37,)),
    ((3, 4, 5, 6), (4, 5, 6)),
    ((2, 5000), (5000,)),
    ((11,), 11),
]


def norm_tuple(ns):
    return (ns,) if np.ndim(ns) == 0 else tuple(ns)


def lead_of(shape, ns):
    return shape[: len(shape) - len(norm_tuple(ns))]


# ---------------------------------------------------------------- layer norm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape,ns", LN_CASES, ids=ids(LN_CASES))
def test_layer_norm_forward(rng, shape, ns, dtype, affine):
    x = make_x(rng, shape, dtype)
    w, b = make_params(rng, norm_tuple(ns), dtype, affine)
    y, mean, rstd = cnorm.layer_norm(x, ns, w, b, eps=1e-5)
    ey, emean, erstd = ref.layer_norm(x, ns, w, b, eps=1e-5)
    lead = lead_of(shape, ns)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert mean.shape == lead and mean.dtype == x.dtype
    assert rstd.shape == lead and rstd.dtype == x.dtype
    assert_close(y, ey)
    assert_close(mean, emean)
    assert_close(rstd, erstd, scale=1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape,ns", LN_CASES, ids=ids(LN_CASES))
def test_layer_norm_backward(rng, shape, ns, dtype, affine):
    x = make_x(rng, shape, dtype)
    dy = make_x(rng, shape, dtype, loc=0.2, scale=1.0)
    w, _ = make_params(rng, norm_tuple(ns), dtype, affine)
    _, emean, erstd = ref.layer_norm(x, ns, eps=1e-5)
    dx, dw, db = cnorm.layer_norm_backward(dy, x, emean.astype(dtype), erstd.astype(dtype), ns,
                                           w)
    edx, edw, edb = ref.layer_norm_backward(dy, x, ns, w, eps=1e-5)
    assert dx.shape == x.shape and dx.dtype == x.dtype
    assert_close(dx, edx)
    assert db.shape == norm_tuple(ns) and db.dtype == x.dtype
    assert_close(db, edb)
    if w is None:
        assert dw is None
    else:
        assert dw.shape == norm_tuple(ns) and dw.dtype == x.dtype
        assert_close(dw, edw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_single_value_gives_bias(rng, dtype):
    x = make_x(rng, (7, 1), dtype, loc=3.0)
    w = np.array([1.7], dtype)
    b = np.array([-0.3], dtype)
    y, mean, rstd = cnorm.layer_norm(x, 1, w, b, eps=1e-5)
    assert_close(y, np.full((7, 1), float(b[0])))
    assert_close(mean, x[:, 0])
    assert_close(rstd, np.full(7, 1 / np.sqrt(1e-5)), scale=1.0)
    # the gradient wrt x vanishes (y does not depend on x); dbias = sum(dy)
    dy = make_x(rng, (7, 1), dtype)
    dx, dw, db = cnorm.layer_norm_backward(dy, x, mean, rstd, 1, w)
    assert_close(dx, np.zeros((7, 1)), scale=1.0)
    assert_close(dw, np.zeros(1), scale=1.0)
    assert_close(db, dy.astype(np.float64).sum(axis=0))


def test_layer_norm_normalized_shape_forms(rng):
    """int, tuple and list normalized_shape mean the same thing."""
    x = make_x(rng, (4, 3, 6), np.float64)
    a = cnorm.layer_norm(x, 6)[0]
    b = cnorm.layer_norm(x, (6,))[0]
    c = cnorm.layer_norm(x, [6])[0]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert_close(cnorm.layer_norm(x, [3, 6])[0], ref.layer_norm(x, (3, 6))[0])


def test_layer_norm_eps(rng):
    x = make_x(rng, (4, 9), np.float64, scale=0.01)
    y, _, rstd = cnorm.layer_norm(x, 9, eps=0.5)
    ey, _, erstd = ref.layer_norm(x, 9, eps=0.5)
    assert_close(y, ey)
    assert_close(rstd, erstd)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_robust_variance_float32_large_mean(dtype):
    """Issue item 4: 4096 values around 1e4 with unit spread."""
    rng = np.random.default_rng(4096)
    x = (1e4 + rng.standard_normal((3, 4096))).astype(dtype)
    eps = 1e-5
    y, mean, rstd = cnorm.layer_norm(x, 4096, eps=eps)
    x64 = x.astype(np.float64)
    true_var = ((x64 - x64.mean(axis=1, keepdims=True)) ** 2).mean(axis=1)
    var = 1.0 / rstd.astype(np.float64) ** 2 - eps
    np.testing.assert_allclose(var, true_var, rtol=1e-3)
    np.testing.assert_allclose(mean.astype(np.float64), x64.mean(axis=1), rtol=1e-6)
    # y within the conditioning of the input: one ulp of x (at 1e4) times rstd
    ey = ref.layer_norm(x, 4096, eps=eps)[0]
    atol = float(np.spacing(dtype(1e4))) * 1.5 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(y, ey, rtol=0, atol=atol)


# ---------------------------------------------------------------- group norm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape,G", GN_CASES, ids=ids(GN_CASES))
def test_group_norm_forward(rng, shape, G, dtype, affine):
    x = make_x(rng, shape, dtype)
    w, b = make_params(rng, (shape[1],), dtype, affine)
    y, mean, rstd = cnorm.group_norm(x, G, w, b, eps=1e-5)
    ey, emean, erstd = ref.group_norm(x, G, w, b, eps=1e-5)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert mean.shape == (shape[0], G) and mean.dtype == x.dtype
    assert rstd.shape == (shape[0], G) and rstd.dtype == x.dtype
    assert_close(y, ey)
    assert_close(mean, emean)
    assert_close(rstd, erstd, scale=1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape,G", GN_CASES, ids=ids(GN_CASES))
def test_group_norm_backward(rng, shape, G, dtype, affine):
    x = make_x(rng, shape, dtype)
    dy = make_x(rng, shape, dtype, loc=-0.3, scale=1.0)
    w, _ = make_params(rng, (shape[1],), dtype, affine)
    _, emean, erstd = ref.group_norm(x, G)
    dx, dw, db = cnorm.group_norm_backward(dy, x, emean.astype(dtype), erstd.astype(dtype), G, w)
    edx, edw, edb = ref.group_norm_backward(dy, x, G, w)
    assert dx.shape == x.shape and dx.dtype == x.dtype
    assert_close(dx, edx)
    assert db.shape == (shape[1],) and db.dtype == x.dtype
    assert_close(db, edb)
    if w is None:
        assert dw is None
    else:
        assert dw.shape == (shape[1],) and dw.dtype == x.dtype
        assert_close(dw, edw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_group_norm_one_group_is_layer_norm_over_chw(rng, dtype):
    x = make_x(rng, (3, 6, 5, 7), dtype)
    y, mean, rstd = cnorm.group_norm(x, 1)
    ly, lmean, lrstd = ref.layer_norm(x, (6, 5, 7))
    assert_close(y, ly)
    assert_close(mean[:, 0], lmean)
    assert_close(rstd[:, 0], lrstd, scale=1.0)
    cy = cnorm.layer_norm(x, (6, 5, 7))[0]
    assert_close(y, cy.astype(np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_group_norm_groups_equal_channels_is_instance_norm(rng, dtype):
    x = make_x(rng, (3, 5, 4, 6), dtype)
    w, b = make_params(rng, (5,), dtype, "both")
    y, mean, rstd = cnorm.group_norm(x, 5, w, b)
    iy, imean, irstd = ref.instance_norm(x, w, b)
    assert_close(y, iy)
    assert_close(mean, imean)
    assert_close(rstd, irstd, scale=1.0)
    cy = cnorm.instance_norm(x, w, b)[0]
    assert_close(y, cy.astype(np.float64))


# ---------------------------------------------------------------- instance norm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape", IN_CASES, ids=["x".join(map(str, s)) for s in IN_CASES])
def test_instance_norm_forward(rng, shape, dtype, affine):
    x = make_x(rng, shape, dtype)
    w, b = make_params(rng, (shape[1],), dtype, affine)
    y, mean, rstd = cnorm.instance_norm(x, w, b, eps=1e-5)
    ey, emean, erstd = ref.instance_norm(x, w, b, eps=1e-5)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert mean.shape == shape[:2] and mean.dtype == x.dtype
    assert rstd.shape == shape[:2] and rstd.dtype == x.dtype
    assert_close(y, ey)
    assert_close(mean, emean)
    assert_close(rstd, erstd, scale=1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape", IN_CASES, ids=["x".join(map(str, s)) for s in IN_CASES])
def test_instance_norm_backward(rng, shape, dtype, affine):
    x = make_x(rng, shape, dtype)
    dy = make_x(rng, shape, dtype, loc=0.1, scale=1.0)
    w, _ = make_params(rng, (shape[1],), dtype, affine)
    _, emean, erstd = ref.instance_norm(x)
    dx, dw, db = cnorm.instance_norm_backward(dy, x, emean.astype(dtype), erstd.astype(dtype), w)
    edx, edw, edb = ref.instance_norm_backward(dy, x, w)
    assert dx.shape == x.shape and dx.dtype == x.dtype
    assert_close(dx, edx)
    assert db.shape == (shape[1],) and db.dtype == x.dtype
    assert_close(db, edb)
    if w is None:
        assert dw is None
    else:
        assert dw.shape == (shape[1],) and dw.dtype == x.dtype
        assert_close(dw, edw)


def test_instance_norm_needs_more_than_one_spatial_value():
    with pytest.raises(ValueError):
        cnorm.instance_norm(np.ones((2, 3, 1), np.float32))
    with pytest.raises(ValueError):
        cnorm.instance_norm(np.ones((2, 3), np.float32))


# ---------------------------------------------------------------- RMS norm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("eps", [None, 1e-6])
@pytest.mark.parametrize("shape,ns", RMS_CASES, ids=ids(RMS_CASES))
def test_rms_norm_forward(rng, shape, ns, dtype, affine, eps):
    x = make_x(rng, shape, dtype)
    w = (rng.standard_normal(norm_tuple(ns)) + 1).astype(dtype) if affine else None
    y, rstd = cnorm.rms_norm(x, ns, w, eps=eps)
    ey, erstd = ref.rms_norm(x, ns, w, eps=eps)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert rstd.shape == lead_of(shape, ns) and rstd.dtype == x.dtype
    assert_close(y, ey)
    assert_close(rstd, erstd, scale=1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape,ns", RMS_CASES, ids=ids(RMS_CASES))
def test_rms_norm_backward(rng, shape, ns, dtype, affine):
    x = make_x(rng, shape, dtype)
    dy = make_x(rng, shape, dtype, loc=0.0, scale=1.0)
    w = (rng.standard_normal(norm_tuple(ns)) + 1).astype(dtype) if affine else None
    _, erstd = ref.rms_norm(x, ns)
    result = cnorm.rms_norm_backward(dy, x, erstd.astype(dtype), ns, w)
    assert len(result) == 2
    dx, dw = result
    edx, edw = ref.rms_norm_backward(dy, x, ns, w)
    assert dx.shape == x.shape and dx.dtype == x.dtype
    assert_close(dx, edx)
    if w is None:
        assert dw is None
    else:
        assert dw.shape == norm_tuple(ns) and dw.dtype == x.dtype
        assert_close(dw, edw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_default_eps_is_machine_epsilon(dtype):
    x = np.zeros((2, 5), dtype)
    y, rstd = cnorm.rms_norm(x, 5)
    expected = 1.0 / np.sqrt(float(np.finfo(dtype).eps))
    assert_close(rstd, np.full(2, expected), scale=1.0)
    assert np.all(y == 0)
    # a tiny input where eps dominates differs between eps=None and eps=1e-5
    x = np.full((1, 4), 1e-4, dtype)
    assert_close(cnorm.rms_norm(x, 4)[1], ref.rms_norm(x, 4)[1], scale=1.0)
    assert_close(cnorm.rms_norm(x, 4, eps=1e-5)[1], ref.rms_norm(x, 4, eps=1e-5)[1], scale=1.0)


# ---------------------------------------------------------------- finite differences

# Every op in float64 on tiny shapes: loss = sum(y * g); the analytic
# gradients (backward fed the forward's own saved statistics) must match
# central differences of the forward.


def _fd_check(loss_x, loss_w, loss_b, x, w, b, dx, dw, db):
    tol = {"rtol": 1e-6, "atol": 1e-7}
    np.testing.assert_allclose(dx, ref.numerical_grad(loss_x, x), **tol)
    if w is not None:
        np.testing.assert_allclose(dw, ref.numerical_grad(loss_w, w), **tol)
    if b is not None:
        np.testing.assert_allclose(db, ref.numerical_grad(loss_b, b), **tol)


@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape,ns", [((3, 5), (5,)), ((2, 3, 4), (3, 4))])
def test_layer_norm_finite_differences(rng, shape, ns, affine):
    x = make_x(rng, shape, np.float64)
    w, b = make_params(rng, ns, np.float64, affine)
    g = rng.standard_normal(shape)

    def loss(x_, w_, b_):
        return float(np.sum(cnorm.layer_norm(x_, ns, w_, b_)[0] * g))

    _, mean, rstd = cnorm.layer_norm(x, ns, w, b)
    dx, dw, db = cnorm.layer_norm_backward(g, x, mean, rstd, ns, w)
    _fd_check(lambda a: loss(a, w, b), lambda a: loss(x, a, b), lambda a: loss(x, w, a),
              x, w, b, dx, dw, db)
    if b is None:  # dbias is returned even without bias: the gradient of a zero bias
        np.testing.assert_allclose(db, ref.numerical_grad(lambda a: loss(x, w, a),
                                                          np.zeros(ns)), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape,G", [((2, 4, 3), 2), ((2, 6, 2, 2), 3), ((3, 4), 1)])
def test_group_norm_finite_differences(rng, shape, G, affine):
    x = make_x(rng, shape, np.float64)
    w, b = make_params(rng, (shape[1],), np.float64, affine)
    g = rng.standard_normal(shape)

    def loss(x_, w_, b_):
        return float(np.sum(cnorm.group_norm(x_, G, w_, b_)[0] * g))

    _, mean, rstd = cnorm.group_norm(x, G, w, b)
    dx, dw, db = cnorm.group_norm_backward(g, x, mean, rstd, G, w)
    _fd_check(lambda a: loss(a, w, b), lambda a: loss(x, a, b), lambda a: loss(x, w, a),
              x, w, b, dx, dw, db)


@pytest.mark.parametrize("affine", AFFINE)
@pytest.mark.parametrize("shape", [(2, 3, 5), (1, 2, 2, 3)])
def test_instance_norm_finite_differences(rng, shape, affine):
    x = make_x(rng, shape, np.float64)
    w, b = make_params(rng, (shape[1],), np.float64, affine)
    g = rng.standard_normal(shape)

    def loss(x_, w_, b_):
        return float(np.sum(cnorm.instance_norm(x_, w_, b_)[0] * g))

    _, mean, rstd = cnorm.instance_norm(x, w, b)
    dx, dw, db = cnorm.instance_norm_backward(g, x, mean, rstd, w)
    _fd_check(lambda a: loss(a, w, b), lambda a: loss(x, a, b), lambda a: loss(x, w, a),
              x, w, b, dx, dw, db)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("eps", [None, 1e-3])
@pytest.mark.parametrize("shape,ns", [((3, 5), (5,)), ((2, 3, 4), (3, 4))])
def test_rms_norm_finite_differences(rng, shape, ns, affine, eps):
    x = make_x(rng, shape, np.float64)
    w = rng.standard_normal(ns) + 1 if affine else None
    g = rng.standard_normal(shape)

    def loss(x_, w_):
        return float(np.sum(cnorm.rms_norm(x_, ns, w_, eps=eps)[0] * g))

    _, rstd = cnorm.rms_norm(x, ns, w, eps=eps)
    dx, dw = cnorm.rms_norm_backward(g, x, rstd, ns, w)
    _fd_check(lambda a: loss(a, w), lambda a: loss(x, a), None, x, w, None, dx, dw, None)


def test_reference_backward_matches_finite_differences(rng):
    """The oracle itself: reference backward == FD of reference forward."""
    x = make_x(rng, (2, 4, 3), np.float64)
    g = rng.standard_normal(x.shape)
    w = rng.standard_normal(4) + 1
    tol = {"rtol": 1e-6, "atol": 1e-7}
    np.testing.assert_allclose(
        ref.group_norm_backward(g, x, 2, w)[0],
        ref.numerical_grad(lambda a: np.sum(ref.group_norm(a, 2, w)[0] * g), x), **tol)
    np.testing.assert_allclose(
        ref.instance_norm_backward(g, x, w)[1],
        ref.numerical_grad(lambda a: np.sum(ref.instance_norm(x, a)[0] * g), w), **tol)
    w2 = rng.standard_normal((4, 3)) + 1
    np.testing.assert_allclose(
        ref.layer_norm_backward(g, x, (4, 3), w2)[0],
        ref.numerical_grad(lambda a: np.sum(ref.layer_norm(a, (4, 3), w2)[0] * g), x), **tol)
    np.testing.assert_allclose(
        ref.rms_norm_backward(g, x, 3, w2[0], eps=1e-3)[0],
        ref.numerical_grad(lambda a: np.sum(ref.rms_norm(a, 3, w2[0], eps=1e-3)[0] * g), x),
        **tol)


# ---------------------------------------------------------------- out=, strides, mutation

# Each op as (forward(x, out), backward(dy, x, out)) closures over fixed
# parameters, for the generic properties below.


def _ops(rng, dtype):
    w_ln = make_params(rng, (6,), dtype, "both")
    w_c = make_params(rng, (4,), dtype, "both")
    ops = {
        "layer": ((3, 5, 6), lambda x, out=None: cnorm.layer_norm(x, 6, *w_ln, out=out),
                  lambda dy, x, out=None: cnorm.layer_norm_backward(
                      dy, x, *cnorm.layer_norm(x, 6)[1:], 6, w_ln[0], out=out)),
        "group": ((3, 4, 5, 6), lambda x, out=None: cnorm.group_norm(x, 2, *w_c, out=out),
                  lambda dy, x, out=None: cnorm.group_norm_backward(
                      dy, x, *cnorm.group_norm(x, 2)[1:], 2, w_c[0], out=out)),
        "instance": ((3, 4, 5, 6), lambda x, out=None: cnorm.instance_norm(x, *w_c, out=out),
                     lambda dy, x, out=None: cnorm.instance_norm_backward(
                         dy, x, *cnorm.instance_norm(x)[1:], w_c[0], out=out)),
        "rms": ((3, 5, 6), lambda x, out=None: cnorm.rms_norm(x, 6, w_ln[0], out=out),
                lambda dy, x, out=None: cnorm.rms_norm_backward(
                    dy, x, cnorm.rms_norm(x, 6)[1], 6, w_ln[0], out=out)),
    }
    return ops


OPS = ["layer", "group", "instance", "rms"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_out_argument(rng, op, dtype):
    shape, fwd, bwd = _ops(rng, dtype)[op]
    x = make_x(rng, shape, dtype)
    dy = make_x(rng, shape, dtype, scale=1.0)
    y0 = fwd(x)[0]
    dx0 = bwd(dy, x)[0]
    # a separate out= array is filled and returned
    out = np.full(shape, np.nan, dtype)
    res = fwd(x, out=out)
    assert res[0] is out
    np.testing.assert_array_equal(out, y0)
    out = np.full(shape, np.nan, dtype)
    res = bwd(dy, x, out=out)
    assert res[0] is out
    np.testing.assert_array_equal(out, dx0)
    # a non-contiguous out= (every other element of a bigger array)
    big = np.full(shape[:-1] + (2 * shape[-1],), np.nan, dtype)
    out = big[..., ::2]
    assert fwd(x, out=out)[0] is out
    np.testing.assert_array_equal(out, y0)
    assert np.all(np.isnan(big[..., 1::2]))
    # out=x in place (forward), out=dy and out=x in place (backward)
    xi = x.copy()
    assert fwd(xi, out=xi)[0] is xi
    np.testing.assert_array_equal(xi, y0)
    dyi = dy.copy()
    assert bwd(dyi, x, out=dyi)[0] is dyi
    np.testing.assert_array_equal(dyi, dx0)
    xi = x.copy()
    assert bwd(dy, xi, out=xi)[0] is xi
    assert_close(xi, dx0.astype(np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_inputs_not_mutated(rng, op, dtype):
    shape, fwd, bwd = _ops(rng, dtype)[op]
    x = make_x(rng, shape, dtype)
    dy = make_x(rng, shape, dtype, scale=1.0)
    x0, dy0 = x.copy(), dy.copy()
    fwd(x)
    bwd(dy, x)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)


def test_params_and_stats_not_mutated(rng):
    x = make_x(rng, (4, 6, 5), np.float32)
    dy = make_x(rng, (4, 6, 5), np.float32)
    w, b = make_params(rng, (6,), np.float32, "both")
    w0, b0 = w.copy(), b.copy()
    _, mean, rstd = cnorm.group_norm(x, 3, w, b)
    m0, r0 = mean.copy(), rstd.copy()
    cnorm.group_norm_backward(dy, x, mean, rstd, 3, w)
    for a, a0 in [(w, w0), (b, b0), (mean, m0), (rstd, r0)]:
        np.testing.assert_array_equal(a, a0)


def _strided_variants(rng, shape, dtype):
    """Non-contiguous arrays of `shape`: a transpose, a step-2 slice and a
    negative-stride view."""
    base = make_x(rng, shape[::-1], dtype)
    t = base.transpose(tuple(range(len(shape)))[::-1])
    big = make_x(rng, shape[:-1] + (2 * shape[-1],), dtype)
    s = big[..., ::2]
    n = make_x(rng, shape, dtype)[::-1, ..., ::-1]
    return {"transpose": t, "slice": s, "negative": n}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS)
def test_non_contiguous_inputs(rng, op, dtype):
    shape, fwd, bwd = _ops(rng, dtype)[op]
    for kind, x in _strided_variants(rng, shape, dtype).items():
        assert not x.flags.c_contiguous, kind
        xc = np.ascontiguousarray(x)
        for a, b in zip(fwd(x), fwd(xc)):
            np.testing.assert_array_equal(a, b, err_msg=kind)
        dy = make_x(rng, shape, dtype)[..., ::-1]
        dyc = np.ascontiguousarray(dy)
        for a, b in zip(bwd(dy, x), bwd(dyc, xc)):
            if a is None:
                assert b is None
            else:
                np.testing.assert_array_equal(a, b, err_msg=kind)


def test_non_contiguous_params(rng):
    x = make_x(rng, (3, 8), np.float64)
    wbig = rng.standard_normal(16) + 1
    bbig = rng.standard_normal(16)
    w, b = wbig[::2], bbig[::-2]
    y = cnorm.layer_norm(x, 8, w, b)[0]
    assert_close(y, ref.layer_norm(x, 8, w, b)[0])


def test_list_input_and_mixed_param_dtype(rng):
    x = make_x(rng, (3, 5), np.float32)
    w = (rng.standard_normal(5) + 1).astype(np.float64)
    y, mean, rstd = cnorm.layer_norm(x, 5, w)
    assert y.dtype == np.float32 and mean.dtype == np.float32
    assert_close(y, ref.layer_norm(x, 5, w.astype(np.float32))[0])
    y2 = cnorm.layer_norm(x.astype(np.float64).tolist(), 5)[0]
    assert y2.dtype == np.float64
    assert_close(y2, ref.layer_norm(x, 5)[0])


def test_integer_input_rejected():
    with pytest.raises(TypeError):
        cnorm.layer_norm(np.ones((2, 3), np.int64), 3)


# ---------------------------------------------------------------- determinism


def _det_cases(rng):
    x_ln = make_x(rng, (512, 768), np.float32)
    dy_ln = make_x(rng, (512, 768), np.float32)
    w_ln, b_ln = make_params(rng, (768,), np.float32, "both")
    x_gn = make_x(rng, (16, 64, 32, 32), np.float32)
    dy_gn = make_x(rng, (16, 64, 32, 32), np.float32)
    w_gn, b_gn = make_params(rng, (64,), np.float32, "both")

    def ln():
        y, m, r = cnorm.layer_norm(x_ln, 768, w_ln, b_ln)
        return (y, m, r) + cnorm.layer_norm_backward(dy_ln, x_ln, m, r, 768, w_ln)

    def gn():
        y, m, r = cnorm.group_norm(x_gn, 8, w_gn, b_gn)
        return (y, m, r) + cnorm.group_norm_backward(dy_gn, x_gn, m, r, 8, w_gn)

    def inorm():
        y, m, r = cnorm.instance_norm(x_gn, w_gn, b_gn)
        return (y, m, r) + cnorm.instance_norm_backward(dy_gn, x_gn, m, r, w_gn)

    def rms():
        y, r = cnorm.rms_norm(x_ln, 768, w_ln)
        return (y, r) + cnorm.rms_norm_backward(dy_ln, x_ln, r, 768, w_ln)

    def ln_big_rows():  # few long rows: K spans many blocks
        x = x_gn.reshape(8, -1)
        y, m, r = cnorm.layer_norm(x, x.shape[1])
        return (y, m, r) + cnorm.layer_norm_backward(dy_gn.reshape(8, -1), x, m, r, x.shape[1])

    def add_norms():   # many blocks of rows per thread
        x2, r2 = x_gn.reshape(-1, 64), dy_gn.reshape(-1, 64)
        return cnorm.add_layer_norm(x2, r2, 64) + cnorm.add_rms_norm(x2, r2, 64)

    return {"layer": ln, "group": gn, "instance": inorm, "rms": rms, "layer_long": ln_big_rows,
            "add_norms": add_norms}


@pytest.mark.usefixtures("restore_threads")
@pytest.mark.parametrize("op", ["layer", "group", "instance", "rms", "layer_long", "add_norms"])
def test_thread_count_does_not_change_results(rng, op):
    run = _det_cases(rng)[op]
    cnorm.set_num_threads(1)
    one = run()
    cnorm.set_num_threads(2)
    two = run()
    cnorm.set_num_threads(4)
    four = run()
    for a, b, c in zip(one, two, four):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


# ---------------------------------------------------------------- errors


def _sentinel(shape, dtype=np.float32):
    return np.full(shape, 12345.0, dtype)


def _raises_named(name, fn, out=None, exc=ValueError):
    with pytest.raises(exc, match=name):
        fn()
    if out is not None:
        assert np.all(out == 12345.0), "out= written on error"


def test_group_norm_channels_not_divisible():
    x = np.ones((2, 6, 4), np.float32)
    out = _sentinel(x.shape)
    _raises_named("num_groups", lambda: cnorm.group_norm(x, 4, out=out), out)
    _raises_named("num_groups", lambda: cnorm.group_norm_backward(
        x, x, np.ones((2, 4), np.float32), np.ones((2, 4), np.float32), 4, out=out), out)
    _raises_named("num_groups", lambda: cnorm.group_norm(x, 0, out=out), out)


@pytest.mark.parametrize("ns", [5, (3,), (4, 4), (2, 3, 4, 5), (6, 4)])
def test_normalized_shape_mismatch(ns):
    x = np.ones((2, 3, 4), np.float32)
    out = _sentinel(x.shape)
    m = np.ones((2, 3), np.float32)
    _raises_named("normalized_shape", lambda: cnorm.layer_norm(x, ns, out=out), out)
    _raises_named("normalized_shape", lambda: cnorm.rms_norm(x, ns, out=out), out)
    _raises_named("normalized_shape",
                  lambda: cnorm.layer_norm_backward(x, x, m, m, ns, out=out), out)
    _raises_named("normalized_shape", lambda: cnorm.rms_norm_backward(x, x, m, ns, out=out), out)


def test_wrong_parameter_shapes():
    x = np.ones((2, 6, 4), np.float32)
    out = _sentinel(x.shape)
    good = np.ones(6, np.float32)
    bad = np.ones(5, np.float32)
    bad2 = np.ones((6, 1), np.float32)
    for bw in (bad, bad2):
        _raises_named("weight", lambda bw=bw: cnorm.group_norm(x, 3, bw, good, out=out), out)
        _raises_named("bias", lambda bw=bw: cnorm.group_norm(x, 3, good, bw, out=out), out)
        _raises_named("weight", lambda bw=bw: cnorm.instance_norm(x, bw, good, out=out), out)
        _raises_named("bias", lambda bw=bw: cnorm.instance_norm(x, good, bw, out=out), out)
    w4, b3 = np.ones(4, np.float32), np.ones(3, np.float32)
    _raises_named("weight", lambda: cnorm.layer_norm(x, 4, b3, w4, out=out), out)
    _raises_named("bias", lambda: cnorm.layer_norm(x, 4, w4, b3, out=out), out)
    _raises_named("weight", lambda: cnorm.layer_norm(x, (6, 4), w4, out=out), out)
    _raises_named("weight", lambda: cnorm.rms_norm(x, 4, b3, out=out), out)


def test_wrong_statistics_shapes():
    x = np.ones((2, 6, 4), np.float32)
    out = _sentinel(x.shape)
    ok23 = np.ones((2, 3), np.float32)
    ok26 = np.ones((2, 6), np.float32)
    bad = np.ones((3, 2), np.float32)
    flat = np.ones(6, np.float32)
    _raises_named("mean", lambda: cnorm.group_norm_backward(x, x, bad, ok23, 3, out=out), out)
    _raises_named("rstd", lambda: cnorm.group_norm_backward(x, x, ok23, bad, 3, out=out), out)
    _raises_named("mean", lambda: cnorm.instance_norm_backward(x, x, flat, ok26, out=out), out)
    _raises_named("rstd", lambda: cnorm.instance_norm_backward(x, x, ok26, flat, out=out), out)
    _raises_named("mean", lambda: cnorm.layer_norm_backward(x, x, ok23, ok26, 4, out=out), out)
    _raises_named("rstd", lambda: cnorm.layer_norm_backward(x, x, ok26, ok23, 4, out=out), out)
    _raises_named("rstd", lambda: cnorm.rms_norm_backward(x, x, ok23, 4, out=out), out)
    _raises_named("weight", lambda: cnorm.layer_norm_backward(
        x, x, ok26, ok26, 4, np.ones(5, np.float32), out=out), out)
    _raises_named("weight", lambda: cnorm.group_norm_backward(
        x, x, ok23, ok23, 3, np.ones(3, np.float32), out=out), out)


def test_bad_out_and_dy():
    x = np.ones((2, 6, 4), np.float32)
    with pytest.raises(ValueError, match="out"):
        cnorm.layer_norm(x, 4, out=np.empty((2, 6, 5), np.float32))
    with pytest.raises(ValueError, match="out"):
        cnorm.layer_norm(x, 4, out=np.empty((2, 6, 4), np.float64))
    ro = np.zeros((2, 6, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out"):
        cnorm.group_norm(x, 2, out=ro)
    m = np.ones((2, 6), np.float32)
    with pytest.raises(ValueError, match="dy"):
        cnorm.layer_norm_backward(np.ones((2, 6, 5), np.float32), x, m, m, 4)
    with pytest.raises(TypeError, match="dy"):
        cnorm.layer_norm_backward(np.ones((2, 6, 4), np.float64), x, m, m, 4)


@pytest.mark.parametrize("eps", [-1.0, float("nan"), float("inf")])
def test_bad_eps(eps):
    x = np.ones((2, 6, 4), np.float32)
    out = _sentinel(x.shape)
    _raises_named("eps", lambda: cnorm.layer_norm(x, 4, eps=eps, out=out), out)
    _raises_named("eps", lambda: cnorm.group_norm(x, 2, eps=eps, out=out), out)
    _raises_named("eps", lambda: cnorm.instance_norm(x, eps=eps, out=out), out)
    _raises_named("eps", lambda: cnorm.rms_norm(x, 4, eps=eps, out=out), out)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_backward_few_long_rows(rng, dtype, restore_threads):
    """Fewer rows than the kernel wants chunks, each over 64 KB: the backward
    splits rows into segments; results match the reference and do not
    depend on the thread count."""
    x = (rng.standard_normal((3, 5, 4099)) * 2 + 7).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    w = rng.uniform(0.5, 1.5, (5, 4099)).astype(dtype)
    _, mean, rstd = cnorm.layer_norm(x, (5, 4099), w)
    results = []
    for threads in (1, 2):
        cnorm.set_num_threads(threads)
        results.append(cnorm.layer_norm_backward(dy, x, mean, rstd, (5, 4099), w))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    edx, edw, edb = ref.layer_norm_backward(dy, x, (5, 4099), w)
    assert_close(results[0][0], edx)
    assert_close(results[0][1], edw, scale=np.abs(edw).max() * 10)
    assert_close(results[0][2], edb, scale=np.abs(edb).max() * 10)

"""BatchRenorm (Ioffe 2017) against the float64 reference in cnorm.reference."""
import numpy as np
import pytest

import cnorm

import reference as ref
from conftest import DTYPES, assert_close

CASES = [((6, 5, 4), 1), ((9, 7), 1), ((4, 3, 5, 5), 1), ((5, 6, 7, 3), -1), ((3, 17), -1),
         ((2, 3, 4, 5, 6), 1)]
CASE_IDS = [f"{'x'.join(map(str, s))}-ax{a}" for s, a in CASES]


def make_x(rng, shape, dtype, loc=0.5, scale=2.0):
    return (rng.standard_normal(shape) * scale + loc).astype(dtype)


def chan(shape, axis):
    return shape[axis % len(shape)]


def make_layer(rng, C, dtype, axis=1, **kw):
    layer = cnorm.BatchRenorm(C, axis=axis, dtype=dtype, **kw)
    if layer.weight is not None:
        layer.weight[...] = rng.uniform(0.5, 1.5, C)
        layer.bias[...] = rng.standard_normal(C)
    return layer


def spread_running_stats(layer, rng):
    """Running statistics far from any batch's, so that r and d clip in some
    channels (both ends) and not in others."""
    C = layer.num_features
    layer.running_mean[...] = rng.uniform(-4, 4, C)
    layer.running_var[...] = np.exp(rng.uniform(np.log(0.05), np.log(40.0), C))


def test_defaults():
    layer = cnorm.BatchRenorm(4)
    assert layer.training
    assert layer.rmax == 3.0 and layer.dmax == 5.0 and layer.eps == 1e-5
    assert layer.momentum == 0.1 and layer.axis == 1
    assert layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.running_mean, 0)
    np.testing.assert_array_equal(layer.running_var, 1)
    assert set(layer.state_dict()) == {"weight", "bias", "running_mean", "running_var",
                                       "num_batches_tracked"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", CASES, ids=CASE_IDS)
def test_training_step(rng, shape, axis, dtype):
    C = chan(shape, axis)
    layer = make_layer(rng, C, dtype, axis=axis, rmax=2.0, dmax=0.5)
    spread_running_stats(layer, rng)
    w, b = layer.weight.copy(), layer.bias.copy()
    for step in range(1, 4):
        rm0, rv0 = layer.running_mean.copy(), layer.running_var.copy()
        x = make_x(rng, shape, dtype, loc=step - 1.0, scale=1.0 + step)
        y = layer(x)
        ey, _, _, r, d = ref.renorm_forward(x, rm0, rv0, w, b, rmax=2.0, dmax=0.5, axis=axis)
        assert y.dtype == dtype and y.shape == x.shape
        assert_close(y, ey)
        erm, erv = ref.bn_running_update(rm0, rv0, x, 0.1, step, axis=axis)
        assert_close(layer.running_mean, erm)
        assert_close(layer.running_var, erv)
        assert layer.num_batches_tracked == step
        dy = make_x(rng, shape, dtype, scale=1.0)
        edx, edw, edb = ref.renorm_backward(dy, x, r, d, w, axis=axis)
        assert_close(layer.backward(dy), edx)
        assert layer.grad_weight.dtype == dtype and layer.grad_weight.shape == (C,)
        assert_close(layer.grad_weight, edw)
        assert_close(layer.grad_bias, edb)


def test_clipping_is_exercised(rng):
    """The data of test_training_step really clips r and d (else the test
    would not distinguish renorm from a variant without clipping)."""
    layer = make_layer(rng, 12, np.float64)
    spread_running_stats(layer, rng)
    x = make_x(rng, (8, 12, 5), np.float64)
    _, _, r, d = ref.renorm_r_d(x, layer.running_mean, layer.running_var, 2.0, 0.5)
    assert np.any(r == 2.0) and np.any(r == 0.5) and np.any((r > 0.5) & (r < 2.0))
    assert np.any(np.abs(d) == 0.5) and np.any(np.abs(d) < 0.5)


def test_r_and_d_use_running_stats_before_update(rng):
    """A second step with the same batch sees the updated running statistics."""
    layer = make_layer(rng, 3, np.float64, rmax=10.0, dmax=10.0)
    x = make_x(rng, (10, 3, 4), np.float64, loc=3.0, scale=4.0)
    w, b = layer.weight.copy(), layer.bias.copy()
    y1 = layer(x)
    assert_close(y1, ref.renorm_forward(x, np.zeros(3), np.ones(3), w, b, 10.0, 10.0)[0])
    rm, rv = layer.running_mean.copy(), layer.running_var.copy()
    y2 = layer(x)
    assert_close(y2, ref.renorm_forward(x, rm, rv, w, b, 10.0, 10.0)[0])
    assert not np.allclose(y1, y2)


@pytest.mark.parametrize("dtype", DTYPES)
def test_unclipped_is_identity_renorm_plus_running(rng, dtype):
    """With large limits r = sigma_B/sigma and d = (mu_B - mu)/sigma, so the
    training output equals normalizing with the running statistics."""
    layer = make_layer(rng, 4, dtype, rmax=1e6, dmax=1e6)
    spread_running_stats(layer, rng)
    rm, rv = layer.running_mean.astype(np.float64), layer.running_var.astype(np.float64)
    x = make_x(rng, (7, 4, 5), dtype)
    y = layer(x)
    assert_close(y, ref.bn_infer(x, rm, rv, layer.weight, layer.bias))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", CASES[:4], ids=CASE_IDS[:4])
def test_rmax_one_dmax_zero_is_batch_norm(rng, shape, axis, dtype):
    C = chan(shape, axis)
    layer = make_layer(rng, C, dtype, axis=axis, rmax=1.0, dmax=0.0)
    spread_running_stats(layer, rng)
    bn = cnorm.BatchNorm(C, axis=axis, dtype=dtype)
    bn.load_state_dict(layer.state_dict())
    x = make_x(rng, shape, dtype)
    y = layer(x)
    assert_close(y, ref.bn_train(x, layer.weight, layer.bias, axis=axis)[0])
    assert_close(y, bn(x).astype(np.float64))
    dy = make_x(rng, shape, dtype, scale=1.0)
    edx, edw, edb = ref.renorm_backward(dy, x, np.ones(C), np.zeros(C), layer.weight, axis=axis)
    assert_close(layer.backward(dy), edx)
    assert_close(layer.grad_weight, edw)
    assert_close(layer.grad_bias, edb)
    assert_close(layer.backward(dy), bn.backward(dy).astype(np.float64))
    assert_close(layer.grad_weight, bn.grad_weight.astype(np.float64))
    for k in ("running_mean", "running_var"):
        assert_close(getattr(layer, k), getattr(bn, k).astype(np.float64))


def test_rmax_dmax_are_plain_attributes_changed_between_steps(rng):
    layer = make_layer(rng, 5, np.float64, rmax=1.0, dmax=0.0)
    spread_running_stats(layer, rng)
    w, b = layer.weight.copy(), layer.bias.copy()
    for rmax, dmax in [(1.0, 0.0), (1.5, 0.25), (2.0, 1.0), (3.0, 5.0)]:
        layer.rmax, layer.dmax = rmax, dmax
        rm0, rv0 = layer.running_mean.copy(), layer.running_var.copy()
        x = make_x(rng, (6, 5, 3), np.float64, scale=3.0)
        assert_close(layer(x), ref.renorm_forward(x, rm0, rv0, w, b, rmax, dmax)[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_eval_is_batch_norm_with_running_stats(rng, dtype):
    layer = make_layer(rng, 4, dtype)
    for _ in range(3):
        layer(make_x(rng, (6, 4, 5), dtype, loc=2.0))
    state = {k: np.array(v) for k, v in layer.state_dict().items()}
    layer.eval()
    x = make_x(rng, (1, 4, 5), dtype)  # batch of one is fine in eval
    assert_close(layer(x), ref.bn_infer(x, layer.running_mean, layer.running_var, layer.weight,
                                        layer.bias))
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(v, state[k])


@pytest.mark.parametrize("momentum", [0.3, None])
def test_momentum(rng, momentum):
    layer = make_layer(rng, 3, np.float64, momentum=momentum)
    rm, rv = np.zeros(3), np.ones(3)
    for step in range(1, 4):
        x = make_x(rng, (5, 3, 2), np.float64, loc=step)
        layer(x)
        rm, rv = ref.bn_running_update(rm, rv, x, momentum, step)
    assert_close(layer.running_mean, rm)
    assert_close(layer.running_var, rv)


def test_affine_false(rng):
    layer = cnorm.BatchRenorm(3, affine=False, dtype=np.float64, rmax=1.5, dmax=0.3)
    spread_running_stats(layer, rng)
    assert layer.weight is None and layer.bias is None
    assert set(layer.state_dict()) == {"running_mean", "running_var", "num_batches_tracked"}
    rm0, rv0 = layer.running_mean.copy(), layer.running_var.copy()
    x = make_x(rng, (6, 3, 4), np.float64)
    y = layer(x)
    ey, _, _, r, d = ref.renorm_forward(x, rm0, rv0, rmax=1.5, dmax=0.3)
    assert_close(y, ey)
    dy = make_x(rng, x.shape, np.float64)
    assert_close(layer.backward(dy), ref.renorm_backward(dy, x, r, d)[0])
    assert layer.grad_weight is None and layer.grad_bias is None


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape,axis", [((4, 3, 2), 1), ((5, 3), -1)])
def test_finite_differences_with_r_d_frozen(rng, shape, axis, affine):
    """backward == finite differences of y(x, weight, bias) with r and d held
    at this step's values (constants for the gradient, as in the paper)."""
    C = chan(shape, axis)
    layer = make_layer(rng, C, np.float64, axis=axis, affine=affine, rmax=1.5, dmax=0.4)
    spread_running_stats(layer, rng)
    rm0, rv0 = layer.running_mean.copy(), layer.running_var.copy()
    x = make_x(rng, shape, np.float64)
    g = rng.standard_normal(shape)
    _, _, r, d = ref.renorm_r_d(x, rm0, rv0, 1.5, 0.4, axis=axis)
    assert np.any(r != 1.0) and np.any(d != 0.0)
    w = None if not affine else layer.weight.copy()
    b = None if not affine else layer.bias.copy()

    def loss(x_, w_, b_):
        return float(np.sum(ref.renorm_forward_fixed(x_, r, d, w_, b_, axis=axis) * g))

    # the forward itself is the function being differentiated
    assert_close(layer(x), ref.renorm_forward_fixed(x, r, d, w, b, axis=axis))
    dx = layer.backward(g)
    tol = {"rtol": 1e-6, "atol": 1e-7}
    np.testing.assert_allclose(dx, ref.numerical_grad(lambda a: loss(a, w, b), x), **tol)
    if affine:
        np.testing.assert_allclose(layer.grad_weight,
                                   ref.numerical_grad(lambda a: loss(x, a, b), w), **tol)
        np.testing.assert_allclose(layer.grad_bias,
                                   ref.numerical_grad(lambda a: loss(x, w, a), b), **tol)


def test_reference_renorm_backward_matches_finite_differences(rng):
    x = make_x(rng, (4, 3, 2), np.float64)
    g = rng.standard_normal(x.shape)
    r, d = np.array([0.7, 1.0, 1.4]), np.array([0.2, -0.1, 0.0])
    w = rng.uniform(0.5, 1.5, 3)
    dx, dw, _ = ref.renorm_backward(g, x, r, d, w)
    def loss_x(a):
        return np.sum(ref.renorm_forward_fixed(a, r, d, w) * g)

    def loss_w(a):
        return np.sum(ref.renorm_forward_fixed(x, r, d, a) * g)

    np.testing.assert_allclose(dx, ref.numerical_grad(loss_x, x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dw, ref.numerical_grad(loss_w, w), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("rmax,dmax", [(0.5, 1.0), (float("nan"), 1.0), (2.0, -1.0),
                                       (2.0, float("inf"))])
def test_bad_limits_raise_and_change_nothing(rng, rmax, dmax):
    layer = make_layer(rng, 3, np.float32)
    layer.rmax, layer.dmax = rmax, dmax
    before = layer.state_dict()
    with pytest.raises(ValueError, match="rmax" if not (1 <= rmax < np.inf) else "dmax"):
        layer(make_x(rng, (4, 3), np.float32))
    for k, v in before.items():
        np.testing.assert_array_equal(layer.state_dict()[k], v)


def test_one_value_per_channel_is_an_error(rng):
    layer = make_layer(rng, 3, np.float32)
    before = layer.state_dict()
    with pytest.raises(ValueError):
        layer(np.ones((1, 3), np.float32))
    for k, v in before.items():
        np.testing.assert_array_equal(layer.state_dict()[k], v)


def test_wrong_channel_count(rng):
    layer = make_layer(rng, 3, np.float32)
    with pytest.raises(ValueError):
        layer(np.ones((4, 5), np.float32))


def test_state_dict_loads_into_batch_norm_and_back(rng):
    layer = make_layer(rng, 4, np.float64)
    for _ in range(2):
        layer(make_x(rng, (5, 4, 3), np.float64))
    bn = cnorm.BatchNorm(4, dtype=np.float64)
    bn.load_state_dict(layer.state_dict())
    assert bn.num_batches_tracked == 2
    layer.eval()
    bn.eval()
    x = make_x(rng, (3, 4, 3), np.float64)
    assert_close(layer(x), bn(x))
    fresh = cnorm.BatchRenorm(4, dtype=np.float64)
    fresh.load_state_dict(bn.state_dict())
    fresh.eval()
    np.testing.assert_array_equal(fresh(x), layer(x))


def test_backward_after_mutating_input(rng):
    """As for BatchNorm: backward uses the forward's batch even if the caller
    reuses x's buffer."""
    layer = make_layer(rng, 3, np.float64, rmax=1.5, dmax=0.3)
    spread_running_stats(layer, rng)
    rm0, rv0 = layer.running_mean.copy(), layer.running_var.copy()
    x = make_x(rng, (5, 3, 4), np.float64)
    x_saved = x.copy()
    layer(x)
    x[...] = make_x(rng, x.shape, np.float64)
    dy = make_x(rng, x.shape, np.float64)
    _, _, r, d = ref.renorm_r_d(x_saved, rm0, rv0, 1.5, 0.3)
    assert_close(layer.backward(dy), ref.renorm_backward(dy, x_saved, r, d, layer.weight)[0])

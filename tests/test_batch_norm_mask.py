"""Masked batch norm (statistics over the masked-in positions only, every
position normalized) and the population running-variance convention, against
float64 formulas, finite differences and subsets of the batch."""
import numpy as np
import pytest

import cnorm

from conftest import DTYPES, assert_close
from reference import numerical_grad


def _masked_reference(x, mask, weight, bias, eps, axis):
    """y, mean, biased var from float64 formulas over the masked-in positions."""
    x = np.asarray(x, np.float64)
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    m = np.broadcast_to(mask, x.shape)
    count = m.sum(axis=axes, keepdims=True)
    mean = np.where(m, x, 0).sum(axis=axes, keepdims=True) / count
    var = np.where(m, (x - mean) ** 2, 0).sum(axis=axes, keepdims=True) / count
    shape = [1] * x.ndim
    shape[axis % x.ndim] = -1
    y = (x - mean) / np.sqrt(var + eps) * weight.reshape(shape) + bias.reshape(shape)
    return y, mean.ravel(), var.ravel()


CASES = [((6, 4, 5), 1, (6, 1, 5)), ((6, 4, 5), 1, (6, 1, 1)), ((6, 4, 5), 1, (5,)),
         ((6, 5, 4), -1, (6, 5, 1)), ((3, 4, 2, 3), 1, (3, 1, 2, 3)), ((40, 4), 1, (40, 1))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis,mask_shape", CASES)
def test_forward_and_backward_equal_formulas(dtype, shape, axis, mask_shape):
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 2.0, shape).astype(dtype)
    C = shape[axis]
    mask = rng.random(mask_shape) > 0.35
    mask.flat[:2] = True
    w, b = rng.uniform(0.5, 2, C).astype(dtype), rng.normal(size=C).astype(dtype)
    y, mean, invstd = cnorm.batch_norm_train(x, w, b, axis=axis, mask=mask)
    y_ref, mean_ref, var_ref = _masked_reference(x, mask, w, b, 1e-5, axis)
    assert y.dtype == mean.dtype == invstd.dtype == dtype
    assert_close(y, y_ref)
    assert_close(mean, mean_ref)
    assert_close(invstd, 1 / np.sqrt(var_ref + 1e-5))
    if dtype != np.float64:
        return
    dy = rng.normal(size=shape)
    dx, dw, db = cnorm.batch_norm_backward(dy, x, mean, invstd, w, axis=axis, mask=mask)

    def loss(v):
        return float(np.sum(_masked_reference(v, mask, w, b, 1e-5, axis)[0] * dy))
    assert_close(dx, numerical_grad(loss, x), scale=1e3)
    xhat = (y_ref - b.reshape([-1 if i == axis % x.ndim else 1 for i in range(x.ndim)])) / \
        w.reshape([-1 if i == axis % x.ndim else 1 for i in range(x.ndim)])
    axes = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    assert_close(dw, np.sum(dy * xhat, axis=axes))
    assert_close(db, np.sum(dy, axis=axes))


def test_all_true_mask_equals_no_mask():
    x = np.random.default_rng(1).normal(size=(8, 3, 7))
    mask = np.ones((8, 1, 7), bool)
    a = cnorm.batch_norm_train(x, mask=mask)
    b = cnorm.batch_norm_train(x)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-13, atol=1e-13)
    dy = np.random.default_rng(2).normal(size=x.shape)
    w = np.linspace(0.5, 2, 3)
    for u, v in zip(cnorm.batch_norm_backward(dy, x, a[1], a[2], w, mask=mask),
                    cnorm.batch_norm_backward(dy, x, b[1], b[2], w)):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-12)


def test_out_may_be_x_or_dy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 3, 4))
    mask = rng.random((5, 1, 4)) > 0.3
    y, mean, invstd = cnorm.batch_norm_train(x, mask=mask)
    inplace = x.copy()
    assert cnorm.batch_norm_train(inplace, mask=mask, out=inplace)[0] is inplace
    np.testing.assert_array_equal(inplace, y)
    dy = rng.normal(size=x.shape)
    dx = cnorm.batch_norm_backward(dy, x, mean, invstd, mask=mask)[0]
    into = dy.copy()
    cnorm.batch_norm_backward(into, x, mean, invstd, mask=mask, out=into)
    np.testing.assert_array_equal(into, dx)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_with_sample_mask_equals_layer_on_the_selected_samples(dtype):
    rng = np.random.default_rng(4)
    masked, subset = cnorm.BatchNorm(3, dtype=dtype), cnorm.BatchNorm(3, dtype=dtype)
    for step in range(3):
        x = rng.normal(1.0 + step, 2.0, (10, 3, 6)).astype(dtype)
        keep = rng.random(10) > 0.4
        keep[:2] = True
        y = masked(x, mask=keep[:, None, None])
        y_sub = subset(x[keep])
        assert_close(y[keep], y_sub)
        dy = rng.normal(size=x.shape).astype(dtype)
        dy[~keep] = 0                       # padded positions do not reach the loss
        dx = masked.backward(dy)
        assert_close(dx[keep], subset.backward(dy[keep]))
        assert_close(masked.grad_weight, subset.grad_weight)
        assert_close(masked.running_mean, subset.running_mean)
        assert_close(masked.running_var, subset.running_var)
    masked.eval()
    subset.eval()
    x = rng.normal(size=(4, 3, 6)).astype(dtype)
    assert_close(masked(x), subset(x))


def test_population_running_var():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 3.0, (4, 2, 5))
    layer = cnorm.BatchNorm(2, momentum=0.25, unbiased_running_var=False, dtype=np.float64)
    layer(x)
    np.testing.assert_allclose(layer.running_var, 0.75 + 0.25 * x.var(axis=(0, 2)), rtol=1e-13)
    default = cnorm.BatchNorm(2, momentum=0.25, dtype=np.float64)
    default(x)
    np.testing.assert_allclose(default.running_var,
                               0.75 + 0.25 * x.var(axis=(0, 2), ddof=1), rtol=1e-13)
    assert "unbiased_running_var=False" in repr(layer)


@pytest.mark.parametrize("mask,error", [
    (np.ones((4, 3, 5), int), "dtype bool"),
    (np.ones((4, 3, 5), bool), "channel axis"),
    (np.ones((3, 1, 5), bool), "broadcast"),
    (np.ones((1, 4, 1, 5), bool), "broadcast"),
    (np.eye(1, 20, dtype=bool).reshape(4, 1, 5), "more than one value"),
])
def test_bad_masks(mask, error):
    x = np.ones((4, 3, 5))
    with pytest.raises(ValueError, match=error):
        cnorm.batch_norm_train(x, mask=mask)
    layer = cnorm.BatchNorm(3, dtype=np.float64)
    with pytest.raises(ValueError, match=error):
        layer(x, mask=mask)
    assert layer.num_batches_tracked == 0
    np.testing.assert_array_equal(layer.running_var, 1)


def test_layers_without_mask_support_say_so():
    with pytest.raises(TypeError, match="mask"):
        cnorm.LayerNorm(5)(np.ones((2, 5)), mask=np.ones((2, 1), bool))
    with pytest.raises(TypeError, match="mask"):
        cnorm.BatchRenorm(3)(np.ones((2, 3)), mask=np.ones((2, 1), bool))


EVAL_BAD_MASKS = [
    (np.ones((4, 3, 5), int), "dtype bool"),
    (np.ones((4, 1, 5), float), "dtype bool"),
    (np.array(["in"] * 20).reshape(4, 1, 5), "dtype bool"),
    (np.ones((4, 3, 5), bool), "channel axis"),
    (np.ones((3, 1, 5), bool), "broadcast"),
    (np.ones((1, 4, 1, 5), bool), "broadcast"),
]


@pytest.mark.parametrize("track", [True, False])
@pytest.mark.parametrize("mask,error", EVAL_BAD_MASKS)
def test_eval_mode_checks_the_mask_as_training_does(mask, error, track):
    """With running statistics eval mode does not use the mask, but it still
    refuses one that training would refuse, with the same error."""
    x = np.ones((4, 3, 5))
    layer = cnorm.BatchNorm(3, dtype=np.float64, track_running_stats=track)
    with pytest.raises(ValueError, match=error) as training:
        layer(x, mask=mask)
    layer.eval()
    with pytest.raises(ValueError, match=error) as evaluating:
        layer(x, mask=mask)
    assert str(evaluating.value) == str(training.value)


def test_eval_mode_with_running_statistics_normalizes_every_position_with_them():
    rng = np.random.default_rng(6)
    layer = cnorm.BatchNorm(3, dtype=np.float64)
    layer(rng.normal(2.0, 3.0, (8, 3, 5)))
    layer.eval()
    x = rng.normal(size=(4, 3, 5))
    mask = rng.random((4, 1, 5)) > 0.5
    mask.flat[0] = False
    np.testing.assert_array_equal(layer(x, mask=mask), layer(x))
    one = np.zeros((4, 1, 5), bool)
    one.flat[0] = True                    # too few for statistics, but none are taken
    np.testing.assert_array_equal(layer(x, mask=one), layer(x))
    np.testing.assert_array_equal(layer(x.astype(np.float16), mask=mask),
                                  layer(x.astype(np.float16)))

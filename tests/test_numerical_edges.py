"""Numerical edges: constant channels, eps = 0, huge and tiny magnitudes."""
import numpy as np
import pytest

import cnorm

import reference as ref
from conftest import DTYPES, assert_close

CONSTANTS = [0.1, 3.7e3, -2.5e-3, 1e4 + 0.5]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", CONSTANTS)
@pytest.mark.parametrize("shape, axis", [((4, 3, 5, 7), 1), ((6, 5, 40), 1), ((64, 3), -1),
                                         ((2, 4, 9, 9), -1)])
def test_constant_channel_gives_exactly_bias_in_training(rng, dtype, value, shape, axis):
    x = np.full(shape, value, dtype)
    C = shape[axis]
    w = rng.uniform(0.5, 2.0, C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    y, mean, _ = cnorm.batch_norm_train(x, w, b, axis=axis)
    bshape = [1] * x.ndim
    bshape[axis] = C
    np.testing.assert_array_equal(y, np.broadcast_to(b.reshape(bshape), shape))
    np.testing.assert_array_equal(mean, np.full(C, value, dtype))
    bn = cnorm.BatchNorm(C, axis=axis, dtype=dtype)
    bn.bias[...] = b
    np.testing.assert_array_equal(bn(x), np.broadcast_to(b.reshape(bshape), shape))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("value", CONSTANTS)
def test_constant_rows_give_exactly_bias(rng, dtype, value):
    x = np.full((3, 6, 4, 5), value, dtype)
    b6 = rng.standard_normal(6).astype(dtype)
    b5 = rng.standard_normal(5).astype(dtype)
    w6 = np.full(6, 1.5, dtype)
    w5 = np.full(5, 1.5, dtype)
    per_channel = np.broadcast_to(b6.reshape(1, 6, 1, 1), x.shape)
    np.testing.assert_array_equal(cnorm.layer_norm(x, 5, w5, b5)[0],
                                  np.broadcast_to(b5, x.shape))
    np.testing.assert_array_equal(cnorm.group_norm(x, 3, w6, b6)[0], per_channel)
    np.testing.assert_array_equal(cnorm.instance_norm(x, w6, b6)[0], per_channel)


@pytest.mark.parametrize("dtype", DTYPES)
def test_eps_zero_behaves_as_pytorch(dtype):
    """Batch-norm training refuses eps = 0 (PyTorch: "eps must be positive during
    training"); inference accepts it; layer and group norm of a constant row
    give NaN (var = 0, rstd = inf, 0 * inf), as PyTorch does."""
    x = np.ones((4, 2, 3), dtype)
    x[:, 1] = np.arange(12, dtype=dtype).reshape(4, 3)  # channel 1 is not constant
    with pytest.raises(ValueError, match="eps"):
        cnorm.batch_norm_train(x, eps=0.0)
    y = cnorm.batch_norm_infer(x, np.zeros(2, dtype), np.ones(2, dtype), eps=0.0)
    np.testing.assert_array_equal(y, x)
    ln = cnorm.layer_norm(x, 3, eps=0.0)[0]
    gn = cnorm.group_norm(x, 2, eps=0.0)[0]
    assert np.isnan(ln[:, 0]).all() and np.isfinite(ln[:, 1]).all()
    assert np.isnan(gn[:, 0]).all() and np.isfinite(gn[:, 1]).all()
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    with pytest.raises(ValueError):
        F.batch_norm(torch.from_numpy(x), None, None, training=True, eps=0.0)
    np.testing.assert_array_equal(np.isnan(F.layer_norm(torch.from_numpy(x), (3,), eps=0.0)),
                                  np.isnan(ln))
    np.testing.assert_array_equal(np.isnan(F.group_norm(torch.from_numpy(x), 2, eps=0.0)),
                                  np.isnan(gn))


@pytest.mark.parametrize("scale", [1e20, 1e30, 1e-42])
def test_float32_extreme_magnitudes_keep_the_variance(rng, scale):
    """Squares of float32 data near 1e30 overflow float32; the statistics must not."""
    x = (rng.standard_normal((8, 3, 40, 40)) * scale).astype(np.float32)
    y, mean, invstd = cnorm.batch_norm_train(x)
    ey, emean, einvstd = ref.bn_train(x)
    assert_close(y, ey)
    np.testing.assert_allclose(invstd, einvstd, rtol=1e-5)
    h = x.reshape(24, 1600)
    y, mean, rstd = cnorm.layer_norm(h, 1600)
    assert_close(y, ref.layer_norm(h, 1600)[0])
    dy = rng.standard_normal(x.shape).astype(np.float32)
    _, mean, invstd = cnorm.batch_norm_train(x)
    dx, _, _ = cnorm.batch_norm_backward(dy, x, mean, invstd)
    edx = ref.bn_backward(dy, x, mean, invstd)[0]
    assert_close(dx, edx)


def test_running_statistics_of_huge_float64_values_stay_finite():
    x = np.random.default_rng(0).standard_normal((16, 4, 10)) * 1e150
    bn = cnorm.BatchNorm(4, dtype=np.float64)
    for _ in range(3):
        bn(x)
    assert np.isfinite(bn.running_mean).all() and np.isfinite(bn.running_var).all()

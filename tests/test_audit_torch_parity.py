"""Audit findings in files this audit could not edit (layers.py,
functional.py, the C kernels): each was a strict xfail until its fix
landed, and stays as a regression test."""
import numpy as np
import pytest

import cnorm

torch = pytest.importorskip("torch")


def test_batch_norm_train_empty_batch_as_torch():
    x = np.zeros((0, 3, 4), np.float32)
    ref = torch.nn.functional.batch_norm(torch.from_numpy(x), None, None, training=True)
    y, mean, invstd = cnorm.batch_norm_train(x)
    assert y.shape == tuple(ref.shape) and mean.shape == (3,) and invstd.shape == (3,)


def test_batch_norm_layer_empty_batch_as_torch():
    bn, ref = cnorm.BatchNorm(3), torch.nn.BatchNorm1d(3)
    bn.running_mean[:] = 1.0
    ref.running_mean.fill_(1.0)
    x = np.zeros((0, 3), np.float32)
    y = bn(x)
    ref(torch.from_numpy(x))
    assert y.shape == (0, 3)
    np.testing.assert_array_equal(bn.running_mean, ref.running_mean.numpy())
    np.testing.assert_array_equal(bn.running_var, ref.running_var.numpy())
    assert bn.num_batches_tracked == int(ref.num_batches_tracked) == 1
    dx = bn.backward(np.zeros_like(y))
    assert dx.shape == (0, 3)
    np.testing.assert_array_equal(bn.grad_weight, np.zeros(3, np.float32))


def test_load_state_dict_strict_false_as_torch():
    ref = torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        ref.weight.fill_(2.0)
    state = dict(ref.state_dict())
    state["extra"] = torch.zeros(1)
    del state["num_batches_tracked"]
    expected = torch.nn.BatchNorm1d(3).load_state_dict(state, strict=False)
    bn = cnorm.BatchNorm(3)
    result = bn.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(bn.weight, np.full(3, 2.0, np.float32))
    assert list(result.missing_keys) == list(expected.missing_keys)
    assert list(result.unexpected_keys) == list(expected.unexpected_keys)


HUGE = np.array([[[1.7e308, -1.7e308, 1.0]] * 2] * 2)   # finite float64, (2, 2, 3)


@pytest.mark.parametrize("fn", ["batch_norm_train", "instance_norm"])
def test_channel_kernels_huge_float64_give_finite_statistics(fn):
    y, mean, invstd = getattr(cnorm, fn)(HUGE)
    assert np.isfinite(mean).all() and np.isfinite(invstd).all() and np.isfinite(y).all()


@pytest.mark.parametrize("fn", ["layer_norm", "group_norm"])
def test_row_kernels_huge_float64_give_finite_statistics(fn):
    arg = 3 if fn == "layer_norm" else 1
    y, mean, rstd = getattr(cnorm, fn)(HUGE, arg)
    assert np.isfinite(mean).all() and np.isfinite(rstd).all() and np.isfinite(y).all()


def test_batch_norm_layer_huge_float64_running_mean_finite():
    bn = cnorm.BatchNorm(2, dtype=np.float64)
    bn(HUGE)
    assert np.isfinite(bn.running_mean).all()

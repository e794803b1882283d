"""PyTorch as an independent oracle for batch norm (skipped without torch)."""
import numpy as np
import pytest

import cnorm

from conftest import DTYPES, assert_close

torch = pytest.importorskip("torch")
F = torch.nn.functional

C = 5


@pytest.fixture(autouse=True)
def _torch_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def native_batch_norm(x, w, b, rm, rv, training, momentum, eps):
    fn = getattr(torch, "native_batch_norm", None) or torch.ops.aten.native_batch_norm
    return fn(x, w, b, rm, rv, training, momentum, eps)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, C, 7, 9), (16, C), (3, C, 4, 5, 6), (2, C, 33)])
def test_train_forward_and_saved_stats(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    w = rng.uniform(0.5, 1.5, C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    ty, tmean, tinvstd = native_batch_norm(t(x), t(w), t(b), None, None, True, 0.1, 1e-5)
    ty2 = F.batch_norm(t(x), None, None, t(w), t(b), training=True, eps=1e-5)
    y, mean, invstd = cnorm.batch_norm_train(x, w, b, eps=1e-5)
    assert_close(y, ty.numpy())
    assert_close(y, ty2.numpy())
    assert_close(mean, tmean.numpy())
    assert_close(invstd, tinvstd.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, C, 7, 9), (16, C), (1, C)])
def test_eval_forward(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    w = rng.uniform(0.5, 1.5, C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    rm = rng.standard_normal(C).astype(dtype)
    rv = rng.uniform(0.3, 3, C).astype(dtype)
    ty = F.batch_norm(t(x), t(rm), t(rv), t(w), t(b), training=False, eps=1e-3)
    y = cnorm.batch_norm_infer(x, rm, rv, w, b, eps=1e-3)
    assert_close(y, ty.numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_running_stats_vs_module(rng, momentum, dtype):
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    tm = torch.nn.BatchNorm2d(C, momentum=momentum, dtype=tdtype)
    layer = cnorm.BatchNorm(C, momentum=momentum, dtype=dtype)
    with torch.no_grad():
        w = rng.uniform(0.5, 1.5, C).astype(dtype)
        b = rng.standard_normal(C).astype(dtype)
        tm.weight.copy_(t(w))
        tm.bias.copy_(t(b))
    layer.weight[...] = w
    layer.bias[...] = b
    for step in range(5):
        x = (rng.standard_normal((6, C, 4, 3)) * (step + 1) + step).astype(dtype)
        with torch.no_grad():
            ty = tm(t(x)).numpy()
        y = layer(x)
        assert_close(y, ty)
        assert_close(layer.running_mean, tm.running_mean.numpy())
        assert_close(layer.running_var, tm.running_var.numpy())
        assert layer.num_batches_tracked == int(tm.num_batches_tracked) == step + 1
    tm.eval()
    layer.eval()
    x = (rng.standard_normal((3, C, 4, 3)) * 2).astype(dtype)
    with torch.no_grad():
        assert_close(layer(x), tm(t(x)).numpy())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, C, 7, 9), (16, C), (2, C, 3, 4, 5)])
def test_backward_vs_autograd(rng, shape, dtype):
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    w = rng.uniform(0.5, 1.5, C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    tx, tw, tb = (t(a).requires_grad_() for a in (x, w, b))
    ty = F.batch_norm(tx, None, None, tw, tb, training=True, eps=1e-5)
    ty.backward(t(g))
    _, mean, invstd = cnorm.batch_norm_train(x, w, b, eps=1e-5)
    dx, dw, db = cnorm.batch_norm_backward(g, x, mean, invstd, w)
    m = x.size // C
    assert_close(dx, tx.grad.numpy())
    assert_close(dw, tw.grad.numpy(), scale=np.sqrt(m))
    assert_close(db, tb.grad.numpy(), scale=np.sqrt(m))


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_backward_vs_module(rng, dtype):
    tdtype = torch.float32 if dtype == np.float32 else torch.float64
    tm = torch.nn.BatchNorm2d(C, dtype=tdtype)
    layer = cnorm.BatchNorm(C, dtype=dtype)
    x = (rng.standard_normal((4, C, 5, 6)) * 2 - 1).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    tx = t(x).requires_grad_()
    tm(tx).backward(t(g))
    layer(x)
    dx = layer.backward(g)
    assert_close(dx, tx.grad.numpy())
    assert_close(layer.grad_weight, tm.weight.grad.numpy(), scale=np.sqrt(120))
    assert_close(layer.grad_bias, tm.bias.grad.numpy(), scale=np.sqrt(120))


@pytest.mark.parametrize("dtype", DTYPES)
def test_channels_last_via_permute(rng, dtype):
    x = (rng.standard_normal((4, 6, 7, C)) * 2 + 1).astype(dtype)  # NHWC
    w = rng.uniform(0.5, 1.5, C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    tx, tw, tb = (t(a).requires_grad_() for a in (x, w, b))
    ty = F.batch_norm(tx.permute(0, 3, 1, 2), None, None, tw, tb, training=True, eps=1e-5)
    ty.permute(0, 2, 3, 1).backward(t(g))
    y, mean, invstd = cnorm.batch_norm_train(x, w, b, axis=-1)
    assert_close(y, ty.permute(0, 2, 3, 1).detach().numpy())
    dx, dw, db = cnorm.batch_norm_backward(g, x, mean, invstd, w, axis=-1)
    assert_close(dx, tx.grad.numpy())
    assert_close(dw, tw.grad.numpy(), scale=np.sqrt(168))
    assert_close(db, tb.grad.numpy(), scale=np.sqrt(168))

    rm = rng.standard_normal(C).astype(dtype)
    rv = rng.uniform(0.5, 2, C).astype(dtype)
    ty_eval = F.batch_norm(t(x).permute(0, 3, 1, 2), t(rm), t(rv), t(w), t(b), training=False)
    assert_close(cnorm.batch_norm_infer(x, rm, rv, w, b, axis=-1),
                 ty_eval.permute(0, 2, 3, 1).numpy())


def test_load_state_dict_from_torch(rng):
    tm = torch.nn.BatchNorm2d(C)
    with torch.no_grad():
        tm.weight.copy_(torch.rand(C) + 0.5)
        tm.bias.copy_(torch.randn(C))
        for step in range(4):
            tm(torch.randn(6, C, 5, 5) * (step + 2) + step)
    layer = cnorm.BatchNorm(C)
    layer.load_state_dict(tm.state_dict())  # torch tensors go through numpy.asarray
    assert layer.num_batches_tracked == 4
    np.testing.assert_array_equal(layer.running_mean, tm.running_mean.numpy())
    np.testing.assert_array_equal(layer.weight, tm.weight.detach().numpy())
    tm.eval()
    layer.eval()
    x = (rng.standard_normal((3, C, 6, 6)) * 4 + 1).astype(np.float32)
    with torch.no_grad():
        assert_close(layer(x), tm(t(x)).numpy())


def test_state_dict_into_torch(rng):
    layer = cnorm.BatchNorm(C)
    layer.weight[...] = rng.uniform(0.5, 1.5, C)
    for step in range(3):
        layer((rng.standard_normal((6, C, 3, 3)) * (step + 1)).astype(np.float32))
    tm = torch.nn.BatchNorm2d(C)
    tm.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in layer.state_dict().items()})
    assert int(tm.num_batches_tracked) == 3
    tm.eval()
    layer.eval()
    x = rng.standard_normal((2, C, 4, 4)).astype(np.float32)
    with torch.no_grad():
        assert_close(layer(x), tm(t(x)).numpy())


def test_training_one_value_per_channel_is_an_error_in_torch_too():
    """Our ValueError mirrors PyTorch's refusal."""
    with pytest.raises(ValueError):
        F.batch_norm(torch.ones(1, C), None, None, training=True)
    with pytest.raises(ValueError):
        cnorm.batch_norm_train(np.ones((1, C), np.float32))

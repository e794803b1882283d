"""PyTorch as an extra oracle for the row family: functional forward and
autograd backward, and the modules' state_dict, eval output and running
statistics."""
import numpy as np
import pytest

import cnorm

from conftest import DTYPES, assert_close

torch = pytest.importorskip("torch")
F = torch.nn.functional
nn = torch.nn

TDTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def make_x(rng, shape, dtype, loc=0.5, scale=2.0):
    return (rng.standard_normal(shape) * scale + loc).astype(dtype)


def t(a, grad=False):
    return None if a is None else torch.tensor(np.asarray(a), requires_grad=grad)


def autograd(fn, dy, *inputs):
    """Forward fn on torch copies of inputs; returns (y, grads) as NumPy (None
    for inputs that are None)."""
    ts = [t(a, grad=True) for a in inputs]
    y = fn(*ts)
    y.backward(t(dy))
    grads = [None if a is None else a.grad.numpy() for a in ts]
    return y.detach().numpy(), grads


def params(rng, shape, dtype, affine):
    if not affine:
        return None, None
    return ((rng.standard_normal(shape) * 0.5 + 1).astype(dtype),
            rng.standard_normal(shape).astype(dtype))


@pytest.fixture(autouse=True)
def _torch_threads():
    torch.set_num_threads(2)


# ---------------------------------------------------------------- functional


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape,ns", [((5, 7), (7,)), ((1, 768), (768,)), ((2, 9, 130), (130,)),
                                      ((3, 4, 5, 6), (4, 5, 6))])
def test_layer_norm_vs_torch(rng, shape, ns, dtype, affine):
    x = make_x(rng, shape, dtype)
    dy = make_x(rng, shape, dtype, scale=1.0)
    w, b = params(rng, ns, dtype, affine)
    ey, (edx, edw, edb) = autograd(lambda x_, w_, b_: F.layer_norm(x_, ns, w_, b_, 1e-5),
                                   dy, x, w, b)
    y, mean, rstd = cnorm.layer_norm(x, ns, w, b, eps=1e-5)
    assert_close(y, ey)
    dx, dw, db = cnorm.layer_norm_backward(dy, x, mean, rstd, ns, w)
    assert_close(dx, edx)
    if affine:
        assert_close(dw, edw)
        assert_close(db, edb)
    # torch's own saved statistics (native_layer_norm returns mean and rstd)
    _, tmean, trstd = torch.native_layer_norm(t(x), list(ns), t(w), t(b), 1e-5)
    assert_close(mean, tmean.numpy().reshape(mean.shape))
    assert_close(rstd, trstd.numpy().reshape(rstd.shape), scale=1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape,G", [((2, 6, 5), 3), ((3, 4, 5, 7), 1), ((2, 8, 3, 3), 8),
                                     ((2, 12, 3, 2, 3), 4)])
def test_group_norm_vs_torch(rng, shape, G, dtype, affine):
    x = make_x(rng, shape, dtype)
    dy = make_x(rng, shape, dtype, scale=1.0)
    w, b = params(rng, (shape[1],), dtype, affine)
    ey, (edx, edw, edb) = autograd(lambda x_, w_, b_: F.group_norm(x_, G, w_, b_, 1e-5),
                                   dy, x, w, b)
    y, mean, rstd = cnorm.group_norm(x, G, w, b, eps=1e-5)
    assert_close(y, ey)
    dx, dw, db = cnorm.group_norm_backward(dy, x, mean, rstd, G, w)
    assert_close(dx, edx)
    if affine:
        assert_close(dw, edw)
        assert_close(db, edb)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 7), (3, 4, 5, 6), (2, 3, 2, 3, 4)])
def test_instance_norm_vs_torch(rng, shape, dtype, affine):
    x = make_x(rng, shape, dtype)
    dy = make_x(rng, shape, dtype, scale=1.0)
    w, b = params(rng, (shape[1],), dtype, affine)
    ey, (edx, edw, edb) = autograd(
        lambda x_, w_, b_: F.instance_norm(x_, weight=w_, bias=b_, use_input_stats=True,
                                           eps=1e-5), dy, x, w, b)
    y, mean, rstd = cnorm.instance_norm(x, w, b, eps=1e-5)
    assert_close(y, ey)
    dx, dw, db = cnorm.instance_norm_backward(dy, x, mean, rstd, w)
    assert_close(dx, edx)
    if affine:
        assert_close(dw, edw)
        assert_close(db, edb)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("eps", [None, 1e-6])
@pytest.mark.parametrize("shape,ns", [((5, 7), (7,)), ((2, 9, 130), (130,)),
                                      ((3, 4, 5, 6), (5, 6))])
def test_rms_norm_vs_torch(rng, shape, ns, dtype, affine, eps):
    x = make_x(rng, shape, dtype)
    dy = make_x(rng, shape, dtype, scale=1.0)
    w = (rng.standard_normal(ns) + 1).astype(dtype) if affine else None
    ey, (edx, edw) = autograd(lambda x_, w_: F.rms_norm(x_, ns, w_, eps), dy, x, w)
    y, rstd = cnorm.rms_norm(x, ns, w, eps=eps)
    assert_close(y, ey)
    dx, dw = cnorm.rms_norm_backward(dy, x, rstd, ns, w)
    assert_close(dx, edx)
    if affine:
        assert_close(dw, edw)


def test_rms_norm_default_eps_matches_torch(rng):
    """Small inputs where eps matters: eps=None is the dtype's epsilon in both."""
    for dtype in DTYPES:
        x = (make_x(rng, (3, 6), dtype) * 1e-4).astype(dtype)
        assert_close(cnorm.rms_norm(x, 6)[0], F.rms_norm(t(x), (6,)).numpy())


# ---------------------------------------------------------------- modules


def torch_state(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def randomize_torch(module, rng):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * 0.5 + 1.0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_module(rng, dtype):
    tm = nn.LayerNorm((4, 6), eps=1e-5, dtype=TDTYPE[np.dtype(dtype)])
    randomize_torch(tm, rng)
    ours = cnorm.LayerNorm((4, 6), dtype=dtype)
    assert set(ours.state_dict()) == set(tm.state_dict())
    ours.load_state_dict(tm.state_dict())  # torch tensors directly
    x = make_x(rng, (3, 4, 6), dtype)
    dy = make_x(rng, x.shape, dtype)
    tx = t(x, grad=True)
    ty = tm(tx)
    ty.backward(t(dy))
    assert_close(ours(x), ty.detach().numpy())
    assert_close(ours.backward(dy), tx.grad.numpy())
    assert_close(ours.grad_weight, tm.weight.grad.numpy())
    assert_close(ours.grad_bias, tm.bias.grad.numpy())
    ours.eval()
    tm.eval()
    assert_close(ours(x), tm(t(x)).detach().numpy())
    # and back: our state_dict loads into torch
    tm2 = nn.LayerNorm((4, 6), dtype=TDTYPE[np.dtype(dtype)])
    tm2.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    assert_close(tm2(t(x)).detach().numpy(), tm(t(x)).detach().numpy())


def test_layer_norm_module_without_bias(rng):
    tm = nn.LayerNorm(5, bias=False, dtype=torch.float64)
    randomize_torch(tm, rng)
    ours = cnorm.LayerNorm(5, bias=False, dtype=np.float64)
    assert set(ours.state_dict()) == set(tm.state_dict()) == {"weight"}
    ours.load_state_dict(tm.state_dict())
    x = make_x(rng, (3, 5), np.float64)
    assert_close(ours(x), tm(t(x)).detach().numpy())
    assert set(cnorm.LayerNorm(5, elementwise_affine=False).state_dict()) == \
        set(nn.LayerNorm(5, elementwise_affine=False).state_dict())


@pytest.mark.parametrize("dtype", DTYPES)
def test_group_norm_module(rng, dtype):
    tm = nn.GroupNorm(3, 6, dtype=TDTYPE[np.dtype(dtype)])
    randomize_torch(tm, rng)
    ours = cnorm.GroupNorm(3, 6, dtype=dtype)
    assert set(ours.state_dict()) == set(tm.state_dict())
    ours.load_state_dict(tm.state_dict())
    x = make_x(rng, (2, 6, 5, 3), dtype)
    dy = make_x(rng, x.shape, dtype)
    tx = t(x, grad=True)
    ty = tm(tx)
    ty.backward(t(dy))
    assert_close(ours(x), ty.detach().numpy())
    assert_close(ours.backward(dy), tx.grad.numpy())
    assert_close(ours.grad_weight, tm.weight.grad.numpy())
    assert_close(ours.grad_bias, tm.bias.grad.numpy())
    ours.eval()
    tm.eval()
    assert_close(ours(x), tm(t(x)).detach().numpy())
    assert set(cnorm.GroupNorm(2, 4, affine=False).state_dict()) == \
        set(nn.GroupNorm(2, 4, affine=False).state_dict())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_instance_norm_module_running_stats(rng, dtype, momentum):
    C = 4
    tm = nn.InstanceNorm2d(C, momentum=momentum, affine=True, track_running_stats=True,
                           dtype=TDTYPE[np.dtype(dtype)])
    randomize_torch(tm, rng)
    ours = cnorm.InstanceNorm(C, momentum=momentum, affine=True, track_running_stats=True,
                              dtype=dtype)
    assert set(ours.state_dict()) == set(tm.state_dict())
    ours.load_state_dict(tm.state_dict())
    for step in range(4):
        x = make_x(rng, (2 + step, C, 5, 6), dtype, loc=step, scale=1 + step)
        dy = make_x(rng, x.shape, dtype)
        tx = t(x, grad=True)
        tm.weight.grad = None
        tm.bias.grad = None
        ty = tm(tx)
        ty.backward(t(dy))
        assert_close(ours(x), ty.detach().numpy())
        assert_close(ours.backward(dy), tx.grad.numpy())
        assert_close(ours.grad_weight, tm.weight.grad.numpy())
        assert_close(ours.grad_bias, tm.bias.grad.numpy())
    ts = torch_state(tm)
    ss = ours.state_dict()
    for k in ("running_mean", "running_var"):
        assert_close(ss[k], ts[k])
    # (torch's InstanceNorm never increments num_batches_tracked, and with
    # momentum=None it freezes the running statistics; neither is compared.)
    # eval uses the running statistics in both
    tm.eval()
    ours.eval()
    x = make_x(rng, (3, C, 4, 4), dtype)
    assert_close(ours(x), tm(t(x)).detach().numpy())
    # a torch state dict loads into a fresh object with the same eval output
    fresh = cnorm.InstanceNorm(C, affine=True, track_running_stats=True, dtype=dtype)
    fresh.load_state_dict(tm.state_dict())
    fresh.eval()
    assert_close(fresh(x), tm(t(x)).detach().numpy())


def test_instance_norm_module_3d_and_1d(rng):
    for tcls, shape in [(nn.InstanceNorm1d, (3, 4, 9)), (nn.InstanceNorm3d, (2, 4, 3, 4, 5))]:
        tm = tcls(4, track_running_stats=True, dtype=torch.float64)
        ours = cnorm.InstanceNorm(4, track_running_stats=True, dtype=np.float64)
        assert set(ours.state_dict()) == set(tm.state_dict())
        for _ in range(2):
            x = make_x(rng, shape, np.float64)
            assert_close(ours(x), tm(t(x)).detach().numpy())
        ts = torch_state(tm)
        for k in ("running_mean", "running_var"):
            assert_close(ours.state_dict()[k], ts[k])
        tm.eval()
        ours.eval()
        x = make_x(rng, shape, np.float64)
        assert_close(ours(x), tm(t(x)).detach().numpy())
    assert cnorm.InstanceNorm(4).state_dict() == {} == dict(nn.InstanceNorm2d(4).state_dict())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [None, 1e-6])
def test_rms_norm_module(rng, dtype, eps):
    tm = nn.RMSNorm((4, 6), eps=eps, dtype=TDTYPE[np.dtype(dtype)])
    randomize_torch(tm, rng)
    ours = cnorm.RMSNorm((4, 6), eps=eps, dtype=dtype)
    assert set(ours.state_dict()) == set(tm.state_dict())
    ours.load_state_dict(tm.state_dict())
    x = make_x(rng, (3, 4, 6), dtype)
    dy = make_x(rng, x.shape, dtype)
    tx = t(x, grad=True)
    ty = tm(tx)
    ty.backward(t(dy))
    assert_close(ours(x), ty.detach().numpy())
    assert_close(ours.backward(dy), tx.grad.numpy())
    assert_close(ours.grad_weight, tm.weight.grad.numpy())
    ours.eval()
    tm.eval()
    assert_close(ours(x), tm(t(x)).detach().numpy())


def test_batch_renorm_limits_one_zero_match_torch_batch_norm(rng):
    """BatchRenorm with rmax=1, dmax=0 trains like torch's BatchNorm."""
    C = 3
    tm = nn.BatchNorm2d(C, dtype=torch.float64)
    randomize_torch(tm, rng)
    ours = cnorm.BatchRenorm(C, rmax=1.0, dmax=0.0, dtype=np.float64)
    ours.load_state_dict(tm.state_dict())
    for step in range(3):
        x = make_x(rng, (4, C, 3, 5), np.float64, loc=step)
        dy = make_x(rng, x.shape, np.float64)
        tx = t(x, grad=True)
        tm.weight.grad = None
        tm.bias.grad = None
        ty = tm(tx)
        ty.backward(t(dy))
        assert_close(ours(x), ty.detach().numpy())
        assert_close(ours.backward(dy), tx.grad.numpy())
        assert_close(ours.grad_weight, tm.weight.grad.numpy())
        assert_close(ours.grad_bias, tm.bias.grad.numpy())
    ts = torch_state(tm)
    for k, v in ours.state_dict().items():
        assert_close(np.asarray(v, np.float64), np.asarray(ts[k], np.float64))
    tm.eval()
    ours.eval()
    x = make_x(rng, (2, C, 3, 5), np.float64)
    assert_close(ours(x), tm(t(x)).detach().numpy())

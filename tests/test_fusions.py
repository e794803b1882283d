"""Fused activations (relu, silu) of every normalization, forward and
backward, and the residual add + layer/RMS norm: against float64 formulas of
cnorm.reference, finite differences, and PyTorch autograd when installed."""
import numpy as np
import pytest

import cnorm
import cnorm.reference as ref

from conftest import DTYPES, assert_close
from reference import numerical_grad

ACTS = ["relu", "silu"]


def act(z, name):
    z = np.asarray(z, np.float64)
    return np.maximum(z, 0) if name == "relu" else z / (1 + np.exp(-z))


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0.5, 2.0, shape).astype(dtype), rng.normal(size=shape).astype(dtype)


def _params(n, dtype, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 2, n).astype(dtype), rng.normal(size=n).astype(dtype)


# (name, forward(x, w, b, activation), reference pre-activation, backward(dy, x, saved, w, b,
#  activation), reference of the loss sum(act(z) * dy) as a function of x for finite
#  differences, parameter shape)
def _cases(shape):
    C = shape[1]
    return {
        "batch_norm_train": (
            lambda x, w, b, a: cnorm.batch_norm_train(x, w, b, activation=a),
            lambda x, w, b: ref.bn_train(x, w, b)[0],
            lambda dy, x, s, w, b, a: cnorm.batch_norm_backward(dy, x, *s[1:], w, activation=a,
                                                                bias=b),
            (C,)),
        "batch_norm_train axis=-1": (
            lambda x, w, b, a: cnorm.batch_norm_train(x, w, b, activation=a, axis=-1),
            lambda x, w, b: ref.bn_train(x, w, b, axis=-1)[0],
            lambda dy, x, s, w, b, a: cnorm.batch_norm_backward(dy, x, *s[1:], w, axis=-1,
                                                                activation=a, bias=b),
            (shape[-1],)),
        "layer_norm": (
            lambda x, w, b, a: cnorm.layer_norm(x, shape[-1], w, b, activation=a),
            lambda x, w, b: ref.layer_norm(x, shape[-1:], w, b)[0],
            lambda dy, x, s, w, b, a: cnorm.layer_norm_backward(dy, x, *s[1:], shape[-1], w,
                                                                activation=a, bias=b),
            (shape[-1],)),
        "group_norm": (
            lambda x, w, b, a: cnorm.group_norm(x, 2, w, b, activation=a),
            lambda x, w, b: ref.group_norm(x, 2, w, b)[0],
            lambda dy, x, s, w, b, a: cnorm.group_norm_backward(dy, x, *s[1:], 2, w,
                                                                activation=a, bias=b),
            (C,)),
        "instance_norm": (
            lambda x, w, b, a: cnorm.instance_norm(x, w, b, activation=a),
            lambda x, w, b: ref.instance_norm(x, w, b)[0],
            lambda dy, x, s, w, b, a: cnorm.instance_norm_backward(dy, x, *s[1:], w,
                                                                   activation=a, bias=b),
            (C,)),
        "rms_norm": (
            lambda x, w, b, a: cnorm.rms_norm(x, shape[-1], w, eps=1e-5, activation=a),
            lambda x, w, b: ref.rms_norm(x, shape[-1:], w, eps=1e-5)[0],
            lambda dy, x, s, w, b, a: cnorm.rms_norm_backward(dy, x, s[1], shape[-1], w,
                                                              activation=a) + (None,),
            (shape[-1],)),
    }


SHAPE = (4, 6, 10)
CASES = _cases(SHAPE)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_equals_activation_of_reference(name, activation, dtype):
    forward, reference, _, pshape = CASES[name]
    x, _ = _data(SHAPE, dtype)
    w, b = _params(pshape, dtype)
    y = forward(x, w, b, activation)[0]
    assert y.dtype == dtype
    assert_close(y, act(reference(x, w, b), activation))


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("activation", ACTS)
def test_backward_equals_finite_differences(name, activation):
    forward, reference, backward, pshape = CASES[name]
    x, dy = _data(SHAPE, np.float64)
    w, b = _params(pshape, np.float64)
    saved = forward(x, w, b, activation)
    dx, dw, db = backward(dy, x, saved, w, b if name != "rms_norm" else None, activation)
    bias = None if name == "rms_norm" else b
    assert_close(dx, numerical_grad(lambda v: np.sum(act(reference(v, w, bias), activation)
                                                     * dy), x), scale=1e3)
    assert_close(dw, numerical_grad(lambda v: np.sum(act(reference(x, v, bias), activation)
                                                     * dy), w), scale=1e3)
    if db is not None:
        assert_close(db, numerical_grad(lambda v: np.sum(act(reference(x, w, v), activation)
                                                         * dy), b), scale=1e3)


@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_infer_and_layouts(activation, dtype):
    rng = np.random.default_rng(2)
    for shape, axis in (((8, 5, 7, 7), 1), ((8, 7, 7, 5), -1), ((300, 5), 1),
                        ((64, 5, 40, 40), 1)):
        x = rng.normal(size=shape).astype(dtype)
        C = shape[axis]
        rm, rv = rng.normal(size=C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)
        w, b = _params(C, dtype)
        y = cnorm.batch_norm_infer(x, rm, rv, w, b, axis=axis, activation=activation)
        assert_close(y, act(ref.bn_infer(x, rm, rv, w, b, axis=axis), activation))
        inplace = x.copy()
        cnorm.batch_norm_train(inplace, w, b, axis=axis, activation=activation, out=inplace)
        assert_close(inplace, act(ref.bn_train(x, w, b, axis=axis)[0], activation))


def _relu_forwards(x, w, b):
    """Every forward with its loop variants: planar and interleaved batch
    norm (centred and scale-only loops, in place and not), and the row
    family with each of weight/bias given or not and per-channel parameter
    runs (group/instance norm)."""
    C, K = x.shape[1], x.shape[-1]
    rm, rv = np.full(C, 0.3, x.dtype), np.full(C, 2.0, x.dtype)
    rml, rvl = np.full(K, 0.3, x.dtype), np.full(K, 2.0, x.dtype)
    return {
        "bn_train": lambda a, out: cnorm.batch_norm_train(x, w[:C], b[:C], activation=a,
                                                          out=out)[0],
        "bn_train axis=-1": lambda a, out: cnorm.batch_norm_train(
            x, w[:K], b[:K], axis=-1, activation=a, out=out)[0],
        "bn_infer": lambda a, out: cnorm.batch_norm_infer(x, rm, rv, w[:C], b[:C],
                                                          activation=a, out=out),
        "bn_infer axis=-1": lambda a, out: cnorm.batch_norm_infer(
            x, rml, rvl, w[:K], b[:K], axis=-1, activation=a, out=out),
        "layer_norm w b": lambda a, out: cnorm.layer_norm(x, K, w[:K], b[:K], activation=a,
                                                          out=out)[0],
        "layer_norm w": lambda a, out: cnorm.layer_norm(x, K, w[:K], activation=a,
                                                        out=out)[0],
        "layer_norm b": lambda a, out: cnorm.layer_norm(x, K, None, b[:K], activation=a,
                                                        out=out)[0],
        "layer_norm": lambda a, out: cnorm.layer_norm(x, K, activation=a, out=out)[0],
        "group_norm": lambda a, out: cnorm.group_norm(x, 2, w[:C], b[:C], activation=a,
                                                      out=out)[0],
        "instance_norm": lambda a, out: cnorm.instance_norm(x, w[:C], b[:C], activation=a,
                                                            out=out)[0],
        "rms_norm": lambda a, out: cnorm.rms_norm(x, K, w[:K], activation=a, out=out)[0],
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 4, 3, 40), (3, 6, 2, 2), (2, 4, 1, 3000)])
@pytest.mark.parametrize("in_place", [False, True], ids=["new", "in-place"])
def test_fused_relu_is_relu_of_the_plain_result_bit_for_bit(dtype, shape, in_place):
    # relu is exact, so the fused loops must give max(y, 0) of the same
    # forward without activation, NaN kept and -0 as it is, on every loop.
    x, _ = _data(shape, dtype)
    x.flat[5] = np.nan   # one channel / row of NaN
    w, b = _params(max(shape), dtype)
    for name, forward in _relu_forwards(x, w, b).items():
        plain = forward(None, None)
        expected = np.where(plain < 0, np.zeros((), dtype), plain)
        if in_place:   # the forwards read x through the closure: run them on a copy
            target = x.copy()
            fused = _relu_forwards(target, w, b)[name]("relu", target)
        else:
            fused = forward("relu", None)
        assert fused.tobytes() == expected.tobytes(), name


def test_silu_accuracy_and_special_values():
    # Within 3 ulp everywhere, subnormal results and those of subnormal
    # exp(z) included (z * exp(z) normal while exp(z) is not: z near -90 in
    # float32, -710 in float64), down to where silu rounds to 0.
    for dtype, lo in ((np.float32, -115), (np.float64, -760)):
        z = np.concatenate([np.linspace(lo, 100, 200001), np.linspace(-2, 2, 20001),
                            [0.0, 1e-30, -1e-30]]).astype(dtype)
        y = cnorm.batch_norm_infer(z[:, None], np.zeros(1, dtype), np.ones(1, dtype), eps=0.0,
                                   activation="silu")[:, 0]
        zz = z.astype(np.longdouble)
        with np.errstate(over="ignore"):
            exact = (zz / (1 + np.exp(-zz))).astype(dtype)
        err = np.abs(y.astype(np.longdouble) - exact) / np.spacing(np.abs(exact))
        assert err.max() <= 3, (dtype, err.max(), z[err.argmax()])
        special = np.array([np.nan, np.inf, -np.inf, -1e4, 1e4], dtype)[:, None]
        s = cnorm.batch_norm_infer(special, np.zeros(1, dtype), np.ones(1, dtype), eps=0.0,
                                   activation="silu")[:, 0]
        assert np.isnan(s[0]) and s[1] == np.inf and np.isnan(s[2]) and s[3] == 0
        assert s[4] == 1e4
        r = cnorm.batch_norm_infer(special, np.zeros(1, dtype), np.ones(1, dtype), eps=0.0,
                                   activation="relu")[:, 0]
        assert np.isnan(r[0]) and r[1] == np.inf and r[2] == 0 and r[3] == 0


def test_relu_backward_passes_the_gradient_of_nan_as_pytorch():
    """relu' is 0 only where z <= 0 (torch's threshold_backward): a NaN
    pre-activation passes dy, so dbias counts it."""
    x = np.array([[1.0, 2.0, 4.0], [np.nan, 0.0, 1.0]])
    b = np.full(3, 0.5)
    _, m, r = cnorm.layer_norm(x, 3, None, b, activation="relu")
    db = cnorm.layer_norm_backward(np.ones_like(x), x, m, r, 3, activation="relu", bias=b)[2]
    np.testing.assert_array_equal(db, [1.0, 2.0, 2.0])   # row 0: z of 1 is -1.22 + 0.5 < 0
    xb = np.array([[np.nan, 1.0], [2.0, 3.0], [4.0, 5.0]])[:, :, None]
    _, m, inv = cnorm.batch_norm_train(xb, activation="relu")
    db = cnorm.batch_norm_backward(np.ones_like(xb), xb, m, inv, activation="relu")[2]
    np.testing.assert_array_equal(db, [3.0, 1.0])   # channel 0 all NaN; channel 1: z > 0 once


LAYERS = [
    (lambda a: cnorm.BatchNorm(6, activation=a, dtype=np.float64), "batch_norm_train"),
    (lambda a: cnorm.LayerNorm(10, activation=a, dtype=np.float64), "layer_norm"),
    (lambda a: cnorm.GroupNorm(2, 6, activation=a, dtype=np.float64), "group_norm"),
    (lambda a: cnorm.InstanceNorm(6, affine=True, activation=a, dtype=np.float64),
     "instance_norm"),
    (lambda a: cnorm.RMSNorm(10, eps=1e-5, activation=a, dtype=np.float64), "rms_norm"),
]


@pytest.mark.parametrize("make,name", LAYERS)
@pytest.mark.parametrize("activation", ACTS)
def test_layers_apply_the_activation_in_both_modes_and_backward(make, name, activation):
    forward, reference, backward, pshape = CASES[name]
    layer = make(activation)
    x, dy = _data(SHAPE, np.float64)
    layer.weight[...], bias = _params(pshape, np.float64)
    if layer.bias is not None:
        layer.bias[...] = bias
    b = layer.bias
    y = layer(x)
    assert_close(y, act(reference(x, layer.weight, b), activation))
    saved = forward(x, layer.weight, b, activation)
    dx = layer.backward(dy)
    assert_close(dx, backward(dy, x, saved, layer.weight, b, activation)[0])
    assert activation in repr(layer)
    layer.eval()
    if name in ("batch_norm_train",):
        expected = act(ref.bn_infer(x, layer.running_mean, layer.running_var, layer.weight, b),
                       activation)
    else:
        expected = act(reference(x, layer.weight, b), activation)
    assert_close(layer(x), expected)


def test_batch_renorm_with_activation_is_the_chain_rule():
    # The layer with silu equals the layer without it followed by silu, in
    # the forward and (dz = dy * silu'(z), z the plain layer's output) backward.
    x, dy = _data((8, 3, 5), np.float64)
    fused = cnorm.BatchRenorm(3, activation="silu", dtype=np.float64, rmax=1.5, dmax=0.5)
    fused.running_mean[...] = [0.3, -0.2, 0.1]
    fused.running_var[...] = [2.0, 0.5, 1.0]
    fused.weight[...], fused.bias[...] = _params(3, np.float64)
    plain = cnorm.BatchRenorm(3, dtype=np.float64, rmax=1.5, dmax=0.5)
    plain.load_state_dict(fused.state_dict())
    z = plain(x)
    assert_close(fused(x), act(z, "silu"))
    s = 1 / (1 + np.exp(-z))
    expected = plain.backward(dy * s * (1 + z * (1 - s)))
    assert_close(fused.backward(dy), expected)
    assert_close(fused.grad_weight, plain.grad_weight)
    assert_close(fused.grad_bias, plain.grad_bias)


def test_unknown_activation():
    x = np.ones((2, 3, 4))
    for call in (lambda: cnorm.batch_norm_train(x, activation="gelu"),
                 lambda: cnorm.layer_norm(x, 4, activation="tanh"),
                 lambda: cnorm.rms_norm_backward(x, x, np.ones((2, 3)), 4, activation=1),
                 lambda: cnorm.BatchNorm(3, activation="Relu")):
        with pytest.raises(ValueError, match="activation must be None, 'relu' or 'silu'"):
            call()


# ---- residual add + norm ------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(4, 7, 32), (1, 768), (3, 5000), (64, 65)])
def test_add_norms_equal_norm_of_the_sum(dtype, shape):
    x, r = _data(shape, dtype)
    w, b = _params(shape[-1], dtype)
    s_exact = x + r   # in x's dtype: the sum the kernel writes
    y, s, mean, rstd = cnorm.add_layer_norm(x, r, shape[-1], w, b)
    np.testing.assert_array_equal(s, s_exact)
    ry, rmean, rrstd = ref.layer_norm(s_exact, shape[-1:], w, b)
    assert_close(y, ry)
    assert_close(mean, rmean)
    assert_close(rstd, rrstd)
    y2, s2, rstd2 = cnorm.add_rms_norm(x, r, shape[-1], w)
    np.testing.assert_array_equal(s2, s_exact)
    assert_close(y2, ref.rms_norm(s_exact, shape[-1:], w)[0])
    assert_close(rstd2, ref.rms_norm(s_exact, shape[-1:], w)[1])


@pytest.mark.parametrize("where", ["x", "residual"])
@pytest.mark.parametrize("shape", [(6, 40), (2000, 40), (700, 768)])   # one and many blocks
def test_sum_out_in_place_and_out_on_the_other_input(where, shape):
    x, r = _data(shape, np.float32)
    K = shape[-1]
    y_ref, s_ref, _, _ = cnorm.add_layer_norm(x, r, K)
    xi, ri = x.copy(), r.copy()
    target, other = (xi, ri) if where == "x" else (ri, xi)
    y, s, _, _ = cnorm.add_layer_norm(xi, ri, K, sum_out=target, out=other)
    assert s is target and y is other
    np.testing.assert_array_equal(s, s_ref)
    np.testing.assert_array_equal(y, y_ref)


def _unaligned_like(a, byte_offset):
    """An uninitialized array of a's shape and dtype starting byte_offset bytes
    past a 64-byte boundary."""
    raw = np.empty(a.nbytes + 128, np.uint8)
    start = (-raw.ctypes.data) % 64 + byte_offset
    return raw[start:start + a.nbytes].view(a.dtype).reshape(a.shape)


# Sums of at least 8 MiB are streamed from a row buffer; every alignment of
# s (vector-aligned, one element past, not aligned to the element), s in
# place of either input, y over the other, and two threads must give the
# bits of np.add followed by layer_norm.
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("where", ["new", "x", "residual"])
@pytest.mark.parametrize("offset", [0, "element", 1])
@pytest.mark.parametrize("threads", [1, 2])
def test_large_sums_equal_the_unfused_call(dtype, where, offset, threads, restore_threads):
    K = 768
    M = (9 << 20) // (K * np.dtype(dtype).itemsize) + 3
    x, r = _data((M, K), dtype)
    w, b = _params(K, dtype)
    s_exact = x + r
    cnorm.set_num_threads(threads)
    y_ref, mean_ref, rstd_ref = cnorm.layer_norm(s_exact, K, w, b)
    byte_offset = np.dtype(dtype).itemsize if offset == "element" else offset
    xi, ri = _unaligned_like(x, byte_offset), _unaligned_like(r, byte_offset)
    xi[...], ri[...] = x, r
    if where == "new":
        target, other = _unaligned_like(x, byte_offset), None
    else:
        target, other = (xi, ri) if where == "x" else (ri, xi)
    y, s, mean, rstd = cnorm.add_layer_norm(xi, ri, K, w, b, sum_out=target, out=other)
    assert s is target
    np.testing.assert_array_equal(s, s_exact)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(mean, mean_ref)
    np.testing.assert_array_equal(rstd, rstd_ref)
    assert_close(y[-5:], ref.layer_norm(s_exact[-5:], (K,), w, b)[0])


def test_add_norm_bad_arguments():
    x = np.ones((3, 8))
    with pytest.raises(ValueError, match="share memory"):
        cnorm.add_layer_norm(x, x.copy(), 8, out=x, sum_out=x)
    with pytest.raises(ValueError, match="residual"):
        cnorm.add_layer_norm(x, np.ones((3, 7)), 8)
    with pytest.raises(TypeError, match="residual"):
        cnorm.add_rms_norm(x, np.ones((3, 8), np.float32), 8)
    with pytest.raises(ValueError, match="sum_out"):
        cnorm.add_rms_norm(x, x, 8, sum_out=np.ones((3, 7)))


def _add_norm_dtypes():
    dtypes = [np.float32, np.float64, np.float16]
    try:
        import ml_dtypes
        dtypes.append(ml_dtypes.bfloat16)
    except ImportError:
        pass
    return [np.dtype(d) for d in dtypes]


# (add_* function, keyword arguments it refuses after the add's own checks)
_REFUSED_NORM_ARGUMENTS = [
    ("add_layer_norm", {"weight": np.ones(7, np.float32)}),
    ("add_layer_norm", {"eps": -1.0}),
    ("add_layer_norm", {"eps": "a"}),
    ("add_rms_norm", {"weight": np.ones(7, np.float32)}),
    ("add_rms_norm", {"eps": float("nan")}),
]


@pytest.mark.parametrize("dtype", _add_norm_dtypes(), ids=str)
@pytest.mark.parametrize("name, bad", _REFUSED_NORM_ARGUMENTS)
@pytest.mark.parametrize("target", ["new", "x", "residual"])
def test_add_norm_refused_writes_nothing(dtype, name, bad, target):
    """The sum is not written when the norm of it refuses an argument, whatever
    the dtype and wherever sum_out points (x and residual are kept too)."""
    x = np.arange(24, dtype=np.float32).reshape(3, 8).astype(dtype)
    residual = np.ones((3, 8), dtype)
    x0, r0 = x.copy(), residual.copy()
    sum_out = {"new": np.zeros((3, 8), dtype), "x": x, "residual": residual}[target]
    out = np.zeros((3, 8), dtype)
    with pytest.raises((TypeError, ValueError)):
        getattr(cnorm, name)(x, residual, 8, sum_out=sum_out, out=out, **bad)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(residual, r0)
    assert not out.astype(np.float32).any()
    if target == "new":
        assert not sum_out.astype(np.float32).any()


# ---- PyTorch as the oracle -------------------------------------------------------

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("activation", ACTS)
def test_backward_equals_torch_autograd(name, activation):
    _, _, backward, pshape = CASES[name]
    TF = torch.nn.functional
    x, dy = _data(SHAPE, np.float64, seed=5)
    w, b = _params(pshape, np.float64, seed=6)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    norm = {
        "batch_norm_train": lambda: TF.batch_norm(tx, None, None, tw, tb, True, 0.0, 1e-5),
        "batch_norm_train axis=-1": lambda: TF.batch_norm(tx.movedim(-1, 1), None, None, tw, tb,
                                                          True, 0.0, 1e-5).movedim(1, -1),
        "layer_norm": lambda: TF.layer_norm(tx, (SHAPE[-1],), tw, tb, 1e-5),
        "group_norm": lambda: TF.group_norm(tx, 2, tw, tb, 1e-5),
        "instance_norm": lambda: TF.instance_norm(tx, weight=tw, bias=tb, eps=1e-5),
        "rms_norm": lambda: TF.rms_norm(tx, (SHAPE[-1],), tw, 1e-5),
    }[name]
    out = getattr(TF, activation)(norm())
    out.backward(torch.tensor(dy))
    forward = CASES[name][0]
    bias = None if name == "rms_norm" else b
    saved = forward(x, w, bias, activation)
    np.testing.assert_allclose(saved[0], out.detach().numpy(), rtol=1e-10, atol=1e-10)
    dx, dw, db = backward(dy, x, saved, w, bias, activation)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=1e-9, atol=1e-9)
    if db is not None:
        np.testing.assert_allclose(db, tb.grad.numpy(), rtol=1e-9, atol=1e-9)


def test_add_layer_norm_backward_equals_torch():
    x, r = _data((5, 16), np.float64, seed=7)
    dy = np.random.default_rng(8).normal(size=x.shape)
    w, b = _params(16, np.float64)
    y, s, mean, rstd = cnorm.add_layer_norm(x, r, 16, w, b)
    ds, dw, db = cnorm.layer_norm_backward(dy, s, mean, rstd, 16, w)
    tx, tr = torch.tensor(x, requires_grad=True), torch.tensor(r, requires_grad=True)
    out = torch.nn.functional.layer_norm(tx + tr, (16,), torch.tensor(w), torch.tensor(b), 1e-5)
    out.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ds, tx.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ds, tr.grad.numpy(), rtol=1e-9, atol=1e-9)

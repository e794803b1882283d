"""BN folding: the folded Linear/Conv alone equals layer -> eval batch norm,
and (when PyTorch is installed) equals torch.nn.utils.fusion's weights."""
import numpy as np
import pytest

import cnorm


def _bn_params(rng, C):
    return (rng.normal(size=C), rng.uniform(0.2, 3, C), rng.uniform(0.5, 2, C), rng.normal(size=C))


def _conv2d(x, w, b):
    """Valid 2-d convolution (N, I, H, W) * (O, I, kh, kw) in float64."""
    n_out, _, kh, kw = w.shape
    H, W = x.shape[2] - kh + 1, x.shape[3] - kw + 1
    patches = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, :H, :W]
    return np.einsum("nihwab,oiab->nohw", patches, w) + b.reshape(1, n_out, 1, 1)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_linear_then_bn_equals_folded_linear(with_bias, affine):
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 7))
    b = rng.normal(size=5) if with_bias else None
    mean, var, gamma, beta = _bn_params(rng, 5)
    x = rng.normal(size=(11, 7))
    h = x @ w.T + (0 if b is None else b)
    bn = cnorm.BatchNorm(5, affine=affine, dtype=np.float64, eps=1e-3).eval()
    bn.running_mean[...], bn.running_var[...] = mean, var
    if affine:
        bn.weight[...], bn.bias[...] = gamma, beta
    expected = bn(h)
    w2, b2 = bn.fold_into(w, b)
    np.testing.assert_allclose(x @ w2.T + b2, expected, rtol=1e-12, atol=1e-12)
    w3, b3 = cnorm.fold_batch_norm(w, b, mean, var, gamma if affine else None,
                                   beta if affine else None, eps=1e-3)
    np.testing.assert_array_equal(w2, w3)
    np.testing.assert_array_equal(b2, b3)


def test_conv_and_transposed_axis():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(4, 3, 3, 3))
    b = rng.normal(size=4)
    mean, var, gamma, beta = _bn_params(rng, 4)
    x = rng.normal(size=(2, 3, 6, 6))
    bn = cnorm.BatchNorm(4, dtype=np.float64).eval()
    bn.running_mean[...], bn.running_var[...], bn.weight[...], bn.bias[...] = mean, var, gamma, beta
    w2, b2 = bn.fold_into(w, b)
    np.testing.assert_allclose(_conv2d(x, w2, b2), bn(_conv2d(x, w, b)), rtol=1e-12,
                               atol=1e-12)
    # Transposed layout (I, O, kh, kw): the output channels are axis 1.
    wt = np.ascontiguousarray(w.transpose(1, 0, 2, 3))
    wt2, bt2 = cnorm.fold_batch_norm(wt, b, mean, var, gamma, beta, axis=1)
    np.testing.assert_allclose(wt2.transpose(1, 0, 2, 3), w2, rtol=1e-15)
    np.testing.assert_allclose(bt2, b2, rtol=1e-15)


def _dtypes():
    dtypes = [np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)]
    try:
        import ml_dtypes
        dtypes.append(np.dtype(ml_dtypes.bfloat16))
    except ImportError:
        pass
    return dtypes


@pytest.mark.parametrize("dtype", _dtypes(), ids=str)
def test_dtypes_are_kept(dtype):
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 2)).astype(dtype)
    w2, b2 = cnorm.fold_batch_norm(w, None, np.zeros(3, np.float32), np.ones(3, np.float32))
    assert w2.dtype == b2.dtype == dtype
    w2, b2 = cnorm.fold_batch_norm(w, np.zeros(3, np.float64), np.zeros(3), np.ones(3))
    assert w2.dtype == dtype and b2.dtype == np.float64


@pytest.mark.parametrize("dtype", _dtypes()[:1] + _dtypes()[3:], ids=str)
def test_low_precision_results_are_the_rounded_float64_fold(dtype):
    """Each folded value within 1 ulp of its dtype of the float64 fold of the
    same (exactly widened) low-precision inputs."""
    rng = np.random.default_rng(5)
    w = rng.normal(size=(6, 4, 3, 3)).astype(dtype)
    b = rng.normal(size=6).astype(dtype)
    mean, var, gamma, beta = _bn_params(rng, 6)
    w2, b2 = cnorm.fold_batch_norm(w, b, mean, var, gamma, beta)
    scale = gamma / np.sqrt(var + 1e-5)
    want_w = w.astype(np.float64) * scale[:, None, None, None]
    want_b = (b.astype(np.float64) - mean) * scale + beta
    mantissa_bits = 10 if dtype == np.float16 else 7
    for got, want in ((w2, want_w), (b2, want_b)):
        assert got.dtype == dtype
        ulp = np.ldexp(1.0, np.frexp(want)[1] - 1 - mantissa_bits)   # normal range
        assert np.all(np.abs(got.astype(np.float64) - want) <= ulp)


def test_equals_torch_fusion():
    torch = pytest.importorskip("torch")
    from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

    rng = np.random.default_rng(3)
    mean, var, gamma, beta = (torch.tensor(a) for a in _bn_params(rng, 4))
    cw, cb = torch.tensor(rng.normal(size=(4, 2, 3, 3))), torch.tensor(rng.normal(size=4))
    for transpose in (False, True):
        w = cw.transpose(0, 1).contiguous() if transpose else cw
        tw, tb = fuse_conv_bn_weights(w, cb, mean, var, 1e-5, gamma, beta, transpose=transpose)
        ow, ob = cnorm.fold_batch_norm(w.numpy(), cb.numpy(), mean.numpy(), var.numpy(),
                                       gamma.numpy(), beta.numpy(), axis=int(transpose))
        np.testing.assert_allclose(ow, tw.detach().numpy(), rtol=1e-13)
        np.testing.assert_allclose(ob, tb.detach().numpy(), rtol=1e-13, atol=1e-13)
    lw, lb = torch.tensor(rng.normal(size=(4, 6))), torch.tensor(rng.normal(size=4))
    tw, tb = fuse_linear_bn_weights(lw, lb, mean, var, 1e-5, gamma, beta)
    ow, ob = cnorm.fold_batch_norm(lw.numpy(), lb.numpy(), mean.numpy(), var.numpy(),
                                   gamma.numpy(), beta.numpy())
    np.testing.assert_allclose(ow, tw.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(ob, tb.detach().numpy(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("args,kwargs,error,match", [
    ((np.ones((3, 2)), None, np.zeros(4), np.ones(3)), {}, ValueError, "running_mean"),
    ((np.ones((3, 2)), None, np.zeros(3), np.ones(2)), {}, ValueError, "running_var"),
    ((np.ones((3, 2)), np.ones(2), np.zeros(3), np.ones(3)), {}, ValueError, "bias"),
    ((np.ones((3, 2)), None, np.zeros(3), np.ones(3), np.ones(2)), {}, ValueError, "bn_weight"),
    ((np.ones((3, 2)), None, np.zeros(3), np.ones(3), None, np.ones(5)), {}, ValueError,
     "bn_bias"),
    ((np.ones((3, 2)), None, np.zeros(2), np.ones(2)), {"axis": 2}, ValueError, "axis"),
    ((np.ones((3, 2)), None, np.zeros(3), -np.ones(3)), {}, ValueError, "running_var"),
    ((np.ones((3, 2), int), None, np.zeros(3), np.ones(3)), {}, TypeError, "weight"),
    ((np.ones((3, 2)), None, np.zeros(3), np.ones(3)), {"eps": -1}, ValueError, "eps"),
])
def test_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        cnorm.fold_batch_norm(*args, **kwargs)


def test_fold_into_needs_running_statistics():
    with pytest.raises(ValueError, match="track_running_stats"):
        cnorm.BatchNorm(3, track_running_stats=False).fold_into(np.ones((3, 2)))
    with pytest.raises(ValueError, match="bias"):
        cnorm.BatchNorm(3).fold_into(np.ones((3, 2)), np.ones(4))


@pytest.mark.parametrize("shape,axis", [((5, 3), 0), ((2, 5, 3, 3), 1), ((4, 3), -1)])
def test_fold_into_names_weight_when_its_channels_differ(shape, axis):
    with pytest.raises(ValueError, match=r"^weight must have this layer's 4 output channels"):
        cnorm.BatchNorm(4).fold_into(np.ones(shape, np.float32), axis=axis)

"""The lean entry points (_kernels.*_fast) and the general path give the same
bits, and every input the lean path declines still works.

A plain call (exact contiguous ndarrays of x's dtype, float eps, int axis)
takes the lean path; eps given as np.float64 of the same value, or a
parameter given as a list, takes the general one.
"""
import numpy as np
import pytest

import cnorm
from cnorm import _kernels

from conftest import DTYPES

EPS = 1e-5
GENERAL_EPS = np.float64(EPS)  # not exactly float: declined by the lean path


def _same(a, b):
    if a is None or b is None:
        assert a is None and b is None
        return
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


def _inputs(rng, dtype, shape=(4, 6, 5, 3), axis=1):
    C = shape[axis]
    x = rng.standard_normal(shape).astype(dtype) * 3 + 1
    dy = rng.standard_normal(shape).astype(dtype)
    w = rng.uniform(0.5, 1.5, C).astype(dtype)
    b = rng.uniform(-1, 1, C).astype(dtype)
    return x, dy, w, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [1, -1, 0])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_train_lean_equals_general(rng, dtype, axis, affine):
    x, _, w, b = _inputs(rng, dtype, axis=axis)
    if not affine:
        w = b = None
    assert _kernels.bn_train_fast(x, w, b, EPS, axis, None) is not None
    assert _kernels.bn_train_fast(x, w, b, GENERAL_EPS, axis, None) is None
    lean = cnorm.batch_norm_train(x, w, b, eps=EPS, axis=axis)
    general = cnorm.batch_norm_train(x, w, b, eps=GENERAL_EPS, axis=axis)
    for a, g in zip(lean, general):
        _same(a, g)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [1, -1])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_backward_lean_equals_general(rng, dtype, axis, affine):
    x, dy, w, b = _inputs(rng, dtype, axis=axis)
    if not affine:
        w = None
    _, mean, invstd = cnorm.batch_norm_train(x, w, b, eps=EPS, axis=axis)
    assert _kernels.bn_backward_fast(dy, x, mean, invstd, w, None, axis, None) is not None
    assert _kernels.bn_backward_fast(dy, x, list(mean), invstd, w, None, axis, None) is None
    lean = cnorm.batch_norm_backward(dy, x, mean, invstd, w, axis=axis)
    general = cnorm.batch_norm_backward(dy, x, list(mean), invstd, w, axis=axis)
    for a, g in zip(lean, general):
        _same(a, g)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_infer_and_layer_norm_lean_equal_general(rng, dtype):
    x, _, w, b = _inputs(rng, dtype)
    rm, rv = np.linspace(-1, 1, 6).astype(dtype), np.linspace(0.5, 2, 6).astype(dtype)
    _same(cnorm.batch_norm_infer(x, rm, rv, w, b, eps=EPS),
          cnorm.batch_norm_infer(x, rm, rv, w, b, eps=GENERAL_EPS))
    K = x.shape[-1]
    lw, lb = np.linspace(0.5, 1.5, K).astype(dtype), np.linspace(-1, 1, K).astype(dtype)
    for a, g in zip(cnorm.layer_norm(x, K, lw, lb, eps=EPS),
                    cnorm.layer_norm(x, K, lw, lb, eps=GENERAL_EPS)):
        _same(a, g)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("target", ["new", "dy", "x", "separate", "overlapping", "strided"])
def test_batch_norm_backward_every_out(rng, dtype, target):
    """out= may be dy, x, a separate array, or one that overlaps dy or is not
    contiguous (the general path handles the last two): dx is the same."""
    x, dy, w, b = _inputs(rng, dtype)
    _, mean, invstd = cnorm.batch_norm_train(x, w, b)
    dx_ref, dw_ref, db_ref = cnorm.batch_norm_backward(dy, x, mean, invstd, w)
    x_in, dy_in = x.copy(), dy.copy()
    if target == "new":
        out = None
    elif target == "dy":
        out = dy_in
    elif target == "x":
        out = x_in
    elif target == "separate":
        out = np.full_like(x, np.nan)
    elif target == "overlapping":  # dy lives in the second half of out's buffer
        buf = np.zeros(2 * x.size, dtype)
        buf[x.size:] = dy.ravel()
        dy_in = buf[x.size:].reshape(x.shape)
        out = buf[x.size // 2: x.size // 2 + x.size].reshape(x.shape)
    else:
        out = np.zeros(x.shape + (2,), dtype)[..., 0]
    dx, dw, db = cnorm.batch_norm_backward(dy_in, x_in, mean, invstd, w, out=out)
    if out is not None:
        assert dx is out
    _same(dx, dx_ref)
    _same(dw, dw_ref)
    _same(db, db_ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_train_out_overlapping_x(rng, dtype):
    """out= sharing part of x's buffer: the general path computes from x as it
    was, then copies into out."""
    x, _, w, b = _inputs(rng, dtype)
    y_ref, m_ref, s_ref = cnorm.batch_norm_train(x, w, b)
    buf = np.zeros(2 * x.size, dtype)
    buf[: x.size] = x.ravel()
    x_in = buf[: x.size].reshape(x.shape)
    out = buf[3:3 + x.size].reshape(x.shape)
    y, m, s = cnorm.batch_norm_train(x_in, w, b, out=out)
    assert y is out
    _same(y.copy(), y_ref)
    _same(m, m_ref)
    _same(s, s_ref)


def test_batch_norm_train_lean_inputs_still_refused():
    """The errors the lean path leaves to the general one still come."""
    x = np.ones((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="eps must be > 0"):
        cnorm.batch_norm_train(x, eps=0.0)
    with pytest.raises(ValueError, match="more than one value per channel"):
        cnorm.batch_norm_train(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="weight must have shape"):
        cnorm.batch_norm_train(x, np.ones(4, np.float32))
    with pytest.raises(TypeError, match="dy must have the dtype of x"):
        cnorm.batch_norm_backward(x.astype(np.float64), x, np.zeros(3, np.float32),
                                  np.ones(3, np.float32))


def test_batch_norm_train_parameters_of_another_dtype(rng):
    """float64 weight/bias with float32 x: converted by the general path, the
    same as passing float32 parameters to the lean one."""
    x, _, w, b = _inputs(rng, np.float32)
    w64, b64 = w.astype(np.float64), b.astype(np.float64)
    for a, g in zip(cnorm.batch_norm_train(x, w, b), cnorm.batch_norm_train(x, w64, b64)):
        _same(a, g)


def _two_byte_dtypes():
    dtypes = [np.dtype(np.float16)]
    try:
        import ml_dtypes
        dtypes.append(np.dtype(ml_dtypes.bfloat16))
    except ImportError:
        pass
    return dtypes


@pytest.mark.parametrize("dtype", _two_byte_dtypes(), ids=lambda d: d.name)
@pytest.mark.parametrize("activation", [None, "relu", "silu"])
def test_two_byte_row_forwards_lean_equal_general(rng, dtype, activation):
    """float16/bfloat16 x with float32 parameters takes the lean path of
    layer_norm and rms_norm; float64 eps (or a parameter of x's dtype) the
    general one: the same bits, statistics float32, every out."""
    x = (rng.standard_normal((3, 5, 40)) * 3 + 1).astype(dtype)
    K = x.shape[-1]
    w = np.linspace(0.5, 1.5, K).astype(np.float32)
    b = np.linspace(-1, 1, K).astype(np.float32)
    lean = cnorm.layer_norm(x, K, w, b, eps=EPS, activation=activation)
    for a, g in zip(lean, cnorm.layer_norm(x, K, w, b, eps=GENERAL_EPS,
                                           activation=activation)):
        _same(a, g)
    assert lean[1].dtype == lean[2].dtype == np.float32 and lean[0].dtype == dtype
    for eps in (None, EPS):
        y, rstd = cnorm.rms_norm(x, K, w, eps=eps, activation=activation)
        y_g, rstd_g = cnorm.rms_norm(x, (K,), w.astype(dtype).astype(np.float64),
                                        eps=None if eps is None else GENERAL_EPS,
                                        activation=activation)
        if np.array_equal(w.astype(dtype).astype(np.float32), w):   # exact in x's dtype
            _same(y, y_g)
            _same(rstd, rstd_g)
        assert rstd.dtype == np.float32
    inplace = x.copy()
    out = cnorm.layer_norm(inplace, K, w, b, eps=EPS, out=inplace, activation=activation)[0]
    assert out is inplace
    _same(inplace, lean[0])
    separate = np.empty_like(x)
    assert cnorm.layer_norm(x, K, w, b, eps=EPS, out=separate,
                            activation=activation)[0] is separate
    _same(separate, lean[0])
    with pytest.raises(ValueError, match="out must have shape"):
        cnorm.layer_norm(x, K, w, b, out=np.empty(x.shape, np.float32))


@pytest.mark.parametrize("dtype", _two_byte_dtypes(), ids=lambda d: d.name)
@pytest.mark.parametrize("axis", [1, -1])
def test_two_byte_batch_norm_infer_lean_equals_general(rng, dtype, axis):
    x, _, w, b = _inputs(rng, np.float32, axis=axis)
    x = x.astype(dtype)
    C = x.shape[axis]
    rm, rv = np.linspace(-1, 1, C).astype(np.float32), np.linspace(0.5, 2, C).astype(np.float32)
    lean = cnorm.batch_norm_infer(x, rm, rv, w, b, eps=EPS, axis=axis)
    _same(lean, cnorm.batch_norm_infer(x, rm, rv, w, b, eps=GENERAL_EPS, axis=axis))
    _same(cnorm.batch_norm_infer(x, rm, rv, eps=EPS, axis=axis),
          cnorm.batch_norm_infer(x, rm, rv, eps=GENERAL_EPS, axis=axis))
    inplace = x.copy()
    assert cnorm.batch_norm_infer(inplace, rm, rv, w, b, eps=EPS, axis=axis,
                                  out=inplace) is inplace
    _same(inplace, lean)


@pytest.mark.parametrize("dtype", _two_byte_dtypes(), ids=lambda d: d.name)
@pytest.mark.parametrize("axis", [1, -1])
@pytest.mark.parametrize("shape", [(4, 6, 5, 3), (3, 4, 600)])   # chunks, planes
def test_two_byte_batch_norm_train_and_backward_lean_equal_general(rng, dtype, axis, shape):
    """float16/bfloat16 x (and dy) with float32 parameters and statistics
    take the lean paths of batch_norm_train and batch_norm_backward; float64
    eps, or statistics as a list, the general ones: the same bits, float32
    statistics and gradients, every out; the layer's step too."""
    x, dy, w, b = _inputs(rng, np.float32, shape, axis)
    x, dy = x.astype(dtype), dy.astype(dtype)
    assert _kernels.bn_train_fast(x, w, b, EPS, axis, None) is not None
    lean = cnorm.batch_norm_train(x, w, b, eps=EPS, axis=axis, activation="relu")
    for a, g in zip(lean, cnorm.batch_norm_train(x, w, b, eps=GENERAL_EPS, axis=axis,
                                                 activation="relu")):
        _same(a, g)
    y, mean, invstd = lean
    assert y.dtype == dtype and mean.dtype == invstd.dtype == np.float32
    inplace = x.copy()
    assert cnorm.batch_norm_train(inplace, w, b, eps=EPS, axis=axis, activation="relu",
                                  out=inplace)[0] is inplace
    _same(inplace, y)
    for weight in (w, None):
        assert _kernels.bn_backward_fast(dy, x, mean, invstd, weight, None, axis,
                                         None) is not None
        back = cnorm.batch_norm_backward(dy, x, mean, invstd, weight, axis=axis)
        for a, g in zip(back, cnorm.batch_norm_backward(dy, x, list(mean), invstd, weight,
                                                        axis=axis)):
            _same(a, g)
        assert back[0].dtype == dtype and back[2].dtype == np.float32
        into_dy = dy.copy()
        assert cnorm.batch_norm_backward(into_dy, x, mean, invstd, weight, axis=axis,
                                         out=into_dy)[0] is into_dy
        _same(into_dy, back[0])
    layer = cnorm.BatchNorm(shape[axis], axis=axis, dtype=dtype)
    layer.weight[:], layer.bias[:] = w, b
    y, mean, invstd = cnorm.batch_norm_train(x, w, b, eps=GENERAL_EPS, axis=axis)
    _same(layer(x), y)
    _same(layer.backward(dy),
          cnorm.batch_norm_backward(dy, x, list(mean), invstd, w, axis=axis)[0])


@pytest.mark.parametrize("dtype", _two_byte_dtypes(), ids=lambda d: d.name)
def test_two_byte_statistics_of_x_dtype_take_the_general_path(rng, dtype):
    """The lean row backwards are float32/float64 only: 2-byte x, dy and saved
    statistics in x's dtype (which the general path widens) give the result
    of float32 statistics of the same values."""
    x = rng.standard_normal((4, 64)).astype(dtype)
    dy = rng.standard_normal((4, 64)).astype(dtype)
    _, mean, rstd = cnorm.layer_norm(x, 64)
    m2, r2 = mean.astype(dtype), rstd.astype(dtype)
    for a, g in zip(cnorm.layer_norm_backward(dy, x, m2, r2, 64),
                    cnorm.layer_norm_backward(dy, x, m2.astype(np.float32),
                                              r2.astype(np.float32), 64)):
        _same(a, g)
    _same(cnorm.rms_norm_backward(dy, x, r2, 64)[0],
          cnorm.rms_norm_backward(dy, x, r2.astype(np.float32), 64)[0])

"""Argument errors: right exception type, argument named in the message, and
nothing written to out= or to running statistics when a call fails."""
import re

import numpy as np
import pytest

import cnorm

C = 3
SHAPE = (4, C, 5)
SENTINEL = -999.25


def names(msg, word):
    """msg mentions the identifier `word` (not merely as part of another word)."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", msg) is not None


def mentions_shape(msg, shape):
    return str(tuple(shape)) in msg or (len(shape) == 1 and names(msg, str(shape[0])))


@pytest.fixture
def arrays(rng):
    x = rng.standard_normal(SHAPE).astype(np.float32) + 1
    dy = rng.standard_normal(SHAPE).astype(np.float32)
    ones = np.ones(C, np.float32)
    return x, dy, ones


def sentinel_out(shape=SHAPE, dtype=np.float32):
    return np.full(shape, SENTINEL, dtype)


def all_sentinel(out):
    return bool(np.all(out == SENTINEL))


def call(fn, x, ones, dy, out, **kw):
    """Call one of the three functions with otherwise valid arguments."""
    if fn == "train":
        return cnorm.batch_norm_train(x, kw.pop("weight", ones), kw.pop("bias", ones), out=out,
                                      **kw)
    if fn == "infer":
        return cnorm.batch_norm_infer(x, kw.pop("running_mean", ones),
                                      kw.pop("running_var", ones), kw.pop("weight", ones),
                                      kw.pop("bias", ones), out=out, **kw)
    return cnorm.batch_norm_backward(dy, x, kw.pop("mean", ones), kw.pop("invstd", ones),
                                     kw.pop("weight", ones), out=out, **kw)


FNS = ["train", "infer", "backward"]
# float16 (and bfloat16) are supported: tests/test_low_precision.py.  uint16
# and int16 are 2-byte types that must not pass for them.
BAD_DTYPES = [np.int32, np.int64, np.uint8, np.uint16, np.int16, np.bool_, np.complex64,
              np.complex128, object]
BAD_DTYPE_IDS = [np.dtype(d).name for d in BAD_DTYPES]


def test_sanity_valid_calls(arrays):
    """The helper's valid calls succeed, so the failures below are due to one bad argument."""
    x, dy, ones = arrays
    for fn in FNS:
        out = sentinel_out()
        call(fn, x, ones, dy, out)
        assert not np.any(out == SENTINEL)


# ---- dtype -------------------------------------------------------------


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=BAD_DTYPE_IDS)
@pytest.mark.parametrize("fn", FNS)
def test_bad_x_dtype(arrays, fn, dtype):
    x, dy, ones = arrays
    xb = x.astype(dtype)
    out = sentinel_out()
    with pytest.raises(TypeError) as exc:
        call(fn, xb, ones, dy.astype(dtype) if fn == "backward" else dy, out)
    msg = str(exc.value)
    assert names(msg, "x") or names(msg, "dy"), msg
    assert "float32" in msg or "float64" in msg or "dtype" in msg, msg
    assert all_sentinel(out)


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=BAD_DTYPE_IDS)
def test_bad_dy_dtype(arrays, dtype):
    x, dy, ones = arrays
    out = sentinel_out()
    with pytest.raises(TypeError) as exc:
        cnorm.batch_norm_backward(dy.astype(dtype), x, ones, ones, ones, out=out)
    assert names(str(exc.value), "dy"), str(exc.value)
    assert all_sentinel(out)


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=BAD_DTYPE_IDS)
def test_layer_bad_dtype(rng, dtype):
    layer = cnorm.BatchNorm(C)
    snap = _snapshot(layer)
    x = (rng.standard_normal(SHAPE) * 3).astype(dtype)
    with pytest.raises(TypeError):
        layer(x)
    _assert_unchanged(layer, snap)


# ---- ndim / axis -------------------------------------------------------


@pytest.mark.parametrize("shape", [(5,), (), (1,)])
@pytest.mark.parametrize("fn", FNS)
def test_ndim_below_two(fn, shape):
    x = np.ones(shape, np.float32)
    ones = np.ones(1, np.float32)
    with pytest.raises(ValueError) as exc:
        call(fn, x, ones, x.copy(), None)
    assert names(str(exc.value), "x") or "dim" in str(exc.value), str(exc.value)


@pytest.mark.parametrize("axis", [3, 4, -4, 100])
@pytest.mark.parametrize("fn", FNS)
def test_axis_out_of_range(arrays, fn, axis):
    x, dy, ones = arrays
    out = sentinel_out()
    with pytest.raises(ValueError) as exc:
        call(fn, x, ones, dy, out, axis=axis)
    assert names(str(exc.value), "axis"), str(exc.value)
    assert all_sentinel(out)


def test_layer_axis_out_of_range(rng):
    layer = cnorm.BatchNorm(C, axis=5)
    snap = _snapshot(layer)
    with pytest.raises(ValueError):
        layer(rng.standard_normal(SHAPE).astype(np.float32))
    _assert_unchanged(layer, snap)


# ---- parameter shapes --------------------------------------------------

PARAMS = {
    "train": ["weight", "bias"],
    "infer": ["running_mean", "running_var", "weight", "bias"],
    "backward": ["mean", "invstd", "weight"],
}
PARAM_CASES = [(fn, p) for fn, ps in PARAMS.items() for p in ps]


@pytest.mark.parametrize("bad_shape", [(C + 2,), (C, 1), (1, C), (), (C - 1,)])
@pytest.mark.parametrize("fn,pname", PARAM_CASES)
def test_param_wrong_shape(arrays, fn, pname, bad_shape):
    x, dy, ones = arrays
    bad = np.ones(bad_shape, np.float32)
    out = sentinel_out()
    x0, dy0 = x.copy(), dy.copy()
    with pytest.raises(ValueError) as exc:
        call(fn, x, ones, dy, out, **{pname: bad})
    msg = str(exc.value)
    assert names(msg, pname), msg
    assert mentions_shape(msg, (C,)), msg
    assert all_sentinel(out)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)


@pytest.mark.parametrize("axis,c", [(-1, 5), (0, 4)])
def test_param_shape_follows_axis(rng, axis, c):
    """With axis=-1 the channel count is the last dim: (C,) from axis=1 is wrong."""
    x = rng.standard_normal(SHAPE).astype(np.float32)
    with pytest.raises(ValueError) as exc:
        cnorm.batch_norm_train(x, np.ones(C, np.float32), axis=axis)
    assert names(str(exc.value), "weight") and mentions_shape(str(exc.value), (c,))


# ---- eps / momentum ----------------------------------------------------


@pytest.mark.parametrize("eps", [np.nan, np.inf, -np.inf, -1e-5, -1.0])
@pytest.mark.parametrize("fn", ["train", "infer"])
def test_bad_eps(arrays, fn, eps):
    x, dy, ones = arrays
    out = sentinel_out()
    with pytest.raises(ValueError) as exc:
        call(fn, x, ones, dy, out, eps=eps)
    assert names(str(exc.value), "eps"), str(exc.value)
    assert all_sentinel(out)


@pytest.mark.parametrize("eps", [np.nan, np.inf, -1.0])
def test_layer_bad_eps(eps):
    with pytest.raises(ValueError) as exc:
        cnorm.BatchNorm(C, eps=eps)
    assert names(str(exc.value), "eps"), str(exc.value)


@pytest.mark.parametrize("momentum", [-0.1, 1.5, np.nan, np.inf, -np.inf])
def test_layer_bad_momentum(momentum):
    with pytest.raises(ValueError) as exc:
        cnorm.BatchNorm(C, momentum=momentum)
    assert names(str(exc.value), "momentum"), str(exc.value)


@pytest.mark.parametrize("momentum", [0.0, 1.0, None, 0.5])
def test_layer_momentum_bounds_are_valid(momentum):
    cnorm.BatchNorm(C, momentum=momentum)


# ---- one value per channel in training --------------------------------


@pytest.mark.parametrize("shape,axis", [((1, 3), 1), ((1, 3, 1, 1), 1), ((1, 3, 1), 1),
                                        ((1, 1, 3), -1), ((3, 1), 0)])
def test_train_one_value_per_channel(shape, axis):
    x = np.arange(3, dtype=np.float32).reshape(shape)
    out = np.full(shape, SENTINEL, np.float32)
    with pytest.raises(ValueError):
        cnorm.batch_norm_train(x, axis=axis, out=out)
    assert all_sentinel(out)
    # inference with the same input is fine
    y = cnorm.batch_norm_infer(x, np.zeros(3, np.float32), np.ones(3, np.float32), axis=axis)
    assert y.shape == shape


@pytest.mark.parametrize("shape", [(1, C), (1, C, 1, 1)])
def test_layer_train_one_value_per_channel(rng, shape):
    layer = cnorm.BatchNorm(C)
    layer(rng.standard_normal((4, C)).astype(np.float32))
    snap = _snapshot(layer)
    with pytest.raises(ValueError):
        layer(np.ones(shape, np.float32))
    _assert_unchanged(layer, snap)


# ---- dy / out ------------------------------------------------------------


@pytest.mark.parametrize("bad_shape", [(4, C, 6), (4, C), (C, 4, 5), (1, 4, C, 5)])
def test_dy_wrong_shape(arrays, bad_shape):
    x, dy, ones = arrays
    out = sentinel_out()
    with pytest.raises(ValueError) as exc:
        cnorm.batch_norm_backward(np.ones(bad_shape, np.float32), x, ones, ones, ones, out=out)
    assert names(str(exc.value), "dy"), str(exc.value)
    assert all_sentinel(out)


@pytest.mark.parametrize("kind", ["shape", "shape_transposed", "dtype", "readonly"])
@pytest.mark.parametrize("fn", FNS)
def test_bad_out(arrays, fn, kind):
    x, dy, ones = arrays
    if kind == "shape":
        out = sentinel_out((4, C, 6))
    elif kind == "shape_transposed":
        out = sentinel_out((5, C, 4))
    elif kind == "dtype":
        out = sentinel_out(SHAPE, np.float64)
    else:
        out = sentinel_out()
        out.setflags(write=False)
    x0, dy0 = x.copy(), dy.copy()
    with pytest.raises(ValueError) as exc:
        call(fn, x, ones, dy, out)
    assert names(str(exc.value), "out"), str(exc.value)
    assert all_sentinel(out)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)


def test_readonly_x_as_out(arrays):
    """out=x where x is read-only: refused, x unchanged."""
    x, dy, ones = arrays
    x.setflags(write=False)
    x0 = x.copy()
    with pytest.raises(ValueError) as exc:
        cnorm.batch_norm_train(x, out=x)
    assert names(str(exc.value), "out")
    np.testing.assert_array_equal(x, x0)


# ---- layers ---------------------------------------------------------------


def _snapshot(layer):
    return {k: (None if getattr(layer, k) is None else np.array(getattr(layer, k), copy=True))
            for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}


def _assert_unchanged(layer, snap):
    for k, v in snap.items():
        if v is None:
            assert getattr(layer, k) is None, k
        else:
            np.testing.assert_array_equal(getattr(layer, k), v, err_msg=k)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape,axis", [((4, C + 1, 5), 1), ((4, 5, C - 1), -1), ((6, 2), 1)])
def test_layer_wrong_channel_count(rng, shape, axis, training):
    layer = cnorm.BatchNorm(C, axis=axis)
    layer(rng.standard_normal((5, C) if axis == 1 else (5, 2, C)).astype(np.float32))
    if not training:
        layer.eval()
    snap = _snapshot(layer)
    with pytest.raises(ValueError):
        layer(rng.standard_normal(shape).astype(np.float32))
    _assert_unchanged(layer, snap)


def test_layer_backward_wrong_dy_shape(rng):
    layer = cnorm.BatchNorm(C)
    layer(rng.standard_normal(SHAPE).astype(np.float32))
    with pytest.raises(ValueError):
        layer.backward(np.ones((4, C, 6), np.float32))

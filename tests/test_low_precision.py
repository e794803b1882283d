"""float16 and bfloat16 inputs: every function and layer, outputs in x's
dtype within one ulp of the float64 reference computed from the same
low-precision inputs, statistics and parameter gradients in float32."""
import numpy as np
import pytest

import cnorm
import cnorm.reference as ref

try:
    import ml_dtypes
    LOW = [np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16)]
except ImportError:   # bfloat16 needs ml_dtypes; float16 is NumPy's
    LOW = [np.dtype(np.float16)]
IDS = [d.name for d in LOW]


def within_one_ulp(actual, expected, dtype, slack=0.0):
    """|actual - expected| <= one ulp of dtype at expected (plus slack, an
    absolute allowance for float32 cancellation in backward passes)."""
    assert actual.dtype == dtype, (actual.dtype, dtype)
    expected = np.asarray(expected, np.float64)
    ulp = np.spacing(np.abs(expected).astype(dtype)).astype(np.float64)
    err = np.abs(actual.astype(np.float64) - expected)
    bad = ~(err <= ulp + slack) & ~(np.isnan(expected) & np.isnan(actual.astype(np.float64)))
    assert not bad.any(), (f"{bad.sum()} of {bad.size} beyond one ulp; worst "
                           f"{(err / ulp)[bad].max():.2f} ulp")


def data(shape, dtype, mean=0.5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(mean, 1.0, shape).astype(dtype)


def f32_params(n, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.5, 2, n).astype(np.float32), rng.normal(size=n).astype(np.float32)


FORWARDS = {
    "batch_norm_train": (cnorm.batch_norm_train, ref.bn_train, 1),
    "batch_norm_train axis=-1": (lambda x, w, b: cnorm.batch_norm_train(x, w, b, axis=-1),
                                 lambda x, w, b: ref.bn_train(x, w, b, axis=-1), -1),
    "layer_norm": (lambda x, w, b: cnorm.layer_norm(x, x.shape[-1], w, b),
                   lambda x, w, b: ref.layer_norm(x, x.shape[-1:], w, b), -1),
    "group_norm": (lambda x, w, b: cnorm.group_norm(x, 2, w, b),
                   lambda x, w, b: ref.group_norm(x, 2, w, b), 1),
    "instance_norm": (cnorm.instance_norm, ref.instance_norm, 1),
    "rms_norm": (lambda x, w, b: cnorm.rms_norm(x, x.shape[-1], w),
                 lambda x, w, b: ref.rms_norm(x, x.shape[-1:], w,
                                              eps=float(np.finfo(np.float32).eps)), -1),
}


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("name", list(FORWARDS))
@pytest.mark.parametrize("mean", [0.5, 1e3])
def test_forward_within_one_ulp(dtype, name, mean):
    forward, reference, axis = FORWARDS[name]
    x = data((6, 8, 50), dtype, mean)
    w, b = f32_params(x.shape[axis])
    got = forward(x, w, b)
    want = reference(x, w, None if name == "rms_norm" else b)
    within_one_ulp(got[0], want[0], dtype)
    for stat in got[1:]:
        assert stat.dtype == np.float32
    np.testing.assert_allclose(got[-1], want[-1], rtol=1e-5)   # invstd / rstd


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
def test_backward_within_one_ulp(dtype):
    x, dy = data((6, 8, 50), dtype), data((6, 8, 50), dtype, 0.0, seed=3)
    w, b = f32_params(8)
    _, mean, invstd = cnorm.batch_norm_train(x, w, b)
    dx, dw, db = cnorm.batch_norm_backward(dy, x, mean, invstd, w)
    rdx, rdw, rdb = ref.bn_backward(dy, x, mean, invstd, w)
    within_one_ulp(dx, rdx, dtype, slack=1e-6 * np.abs(rdx).max())
    assert dw.dtype == db.dtype == np.float32
    np.testing.assert_allclose(dw, rdw, rtol=1e-4, atol=1e-4)
    _, m, r = cnorm.layer_norm(x, 50, w.repeat(50)[:50])
    dx, dw, db = cnorm.layer_norm_backward(dy, x, m, r, 50, w.repeat(50)[:50])
    rdx = ref.layer_norm_backward(dy, x, (50,), w.repeat(50)[:50])[0]
    within_one_ulp(dx, rdx, dtype, slack=1e-6 * np.abs(rdx).max())
    assert dw.dtype == np.float32


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
def test_infer_out_params_in_x_dtype_and_fusions(dtype):
    x = data((4, 3, 7, 7), dtype)
    rm, rv = np.zeros(3, dtype), np.full(3, 2.0, dtype)
    out = np.empty_like(x)
    y = cnorm.batch_norm_infer(x, rm, rv, out=out, activation="relu")
    assert y is out
    within_one_ulp(y, np.maximum(ref.bn_infer(x, rm, rv), 0), dtype)
    h, r = data((5, 32), dtype), data((5, 32), dtype, seed=2)
    y, s, mean, rstd = cnorm.add_layer_norm(h, r, 32, sum_out=r)
    assert s is r and s.dtype == dtype and mean.dtype == np.float32
    within_one_ulp(s, h.astype(np.float64) + data((5, 32), dtype, seed=2), dtype)
    within_one_ulp(y, ref.layer_norm(s, (32,))[0], dtype)


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
def test_nan_and_inf_stay_in_their_channel_and_row(dtype):
    x = data((4, 3, 10), dtype)
    x[1, 1, 3] = np.nan
    y = cnorm.batch_norm_train(x)[0].astype(np.float64)
    assert np.isnan(y[:, 1]).all() and np.isfinite(y[:, [0, 2]]).all()
    h = data((3, 16), dtype)
    h[1, 2] = np.inf
    z = cnorm.layer_norm(h, 16)[0].astype(np.float64)
    assert np.isfinite(z[[0, 2]]).all() and not np.isfinite(z[1]).all()


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("make", [
    lambda d: cnorm.BatchNorm(3, dtype=d), lambda d: cnorm.LayerNorm(10, dtype=d),
    lambda d: cnorm.GroupNorm(1, 3, dtype=d), lambda d: cnorm.RMSNorm(10, dtype=d),
    lambda d: cnorm.InstanceNorm(3, affine=True, track_running_stats=True, dtype=d)])
def test_layers_keep_float32_state(dtype, make):
    layer = make(dtype)
    for name in ("weight", "bias", "running_mean", "running_var"):
        value = getattr(layer, name, None)
        assert value is None or value.dtype == np.float32, name
    x = data((4, 3, 10), dtype)
    y = layer(x)
    assert y.dtype == dtype
    reference = make(np.float32)
    within_one_ulp(y, reference(x.astype(np.float32)), dtype, slack=1e-6)
    dx = layer.backward(np.ones_like(x))
    assert dx.dtype == dtype and layer.grad_weight.dtype == np.float32
    layer(x)
    with pytest.raises(TypeError, match="dy"):
        layer.backward(np.ones(x.shape, np.float32))
    assert layer.eval()(x).dtype == dtype


LAYERS_AND_CALLS = {   # layer, its training forward and backward in the functional API
    "BatchNorm": (lambda d: cnorm.BatchNorm(3, dtype=d),
                  lambda x, p: cnorm.batch_norm_train(x, p.weight, p.bias),
                  lambda dy, x, p, s: cnorm.batch_norm_backward(dy, x, *s[1:], p.weight)),
    "LayerNorm": (lambda d: cnorm.LayerNorm(48, dtype=d),
                  lambda x, p: cnorm.layer_norm(x, 48, p.weight, p.bias),
                  lambda dy, x, p, s: cnorm.layer_norm_backward(dy, x, *s[1:], 48, p.weight)),
    "GroupNorm": (lambda d: cnorm.GroupNorm(1, 3, dtype=d),
                  lambda x, p: cnorm.group_norm(x, 1, p.weight, p.bias),
                  lambda dy, x, p, s: cnorm.group_norm_backward(dy, x, *s[1:], 1, p.weight)),
    "RMSNorm": (lambda d: cnorm.RMSNorm(48, dtype=d),
                lambda x, p: cnorm.rms_norm(x, 48, p.weight),
                lambda dy, x, p, s: cnorm.rms_norm_backward(dy, x, s[-1], 48, p.weight)),
}


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("name", LAYERS_AND_CALLS)
def test_layers_run_the_two_byte_kernels(dtype, name):
    # A float16/bfloat16 layer is its functional call on the same 2-byte x
    # (bit for bit), keeps its own copy of x for backward, and takes x in
    # either byte order.
    make, forward, backward = LAYERS_AND_CALLS[name]
    layer = make(dtype)
    layer.weight[...] = np.linspace(0.5, 1.5, layer.weight.size).reshape(layer.weight.shape)
    x = data((5, 3, 48), dtype, mean=3.0, seed=11)
    dy = data(x.shape, dtype, seed=12)
    y_ref, *stats = forward(x, layer)
    dx_ref, *grads = backward(dy, x, layer, [None, *stats])
    kept = x.copy()
    y = layer(x)
    x[...] = 0   # the caller refills its buffer before backward
    dx = layer.backward(dy)
    np.testing.assert_array_equal(y.view(np.uint16), y_ref.view(np.uint16))
    np.testing.assert_array_equal(dx.view(np.uint16), dx_ref.view(np.uint16))
    np.testing.assert_array_equal(layer.grad_weight, grads[0])
    assert layer.grad_weight.dtype == np.float32
    swapped = kept.astype(kept.dtype.newbyteorder(">" if kept.dtype.byteorder != ">" else "<"))
    np.testing.assert_array_equal(layer(swapped).view(np.uint16), y_ref.view(np.uint16))


@pytest.mark.parametrize("bad", [np.int16, np.uint16])
def test_other_two_byte_dtypes_are_refused(bad):
    x = np.ones((4, 3, 5), bad)
    for call in (lambda: cnorm.batch_norm_train(x), lambda: cnorm.layer_norm(x, 5),
                 lambda: cnorm.BatchNorm(3)(x)):
        with pytest.raises(TypeError, match="x"):
            call()
    with pytest.raises(TypeError, match="dtype"):
        cnorm.BatchNorm(3, dtype=np.uint16)


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
def test_bad_low_precision_arguments(dtype):
    x = data((4, 3, 5), dtype)
    with pytest.raises(ValueError, match="out"):
        cnorm.batch_norm_train(x, out=np.empty(x.shape, np.float32))
    with pytest.raises(TypeError, match="dy"):
        cnorm.layer_norm_backward(x.astype(np.float32), x, np.zeros((4, 3), np.float32),
                                  np.ones((4, 3), np.float32), 5)
    m = cnorm.Moments.of(x)
    np.testing.assert_allclose(m.mean, x.astype(np.float64).reshape(-1, 5).mean(0), rtol=1e-6)


def _param_calls(x, p):
    """(parameter name, call with p as that parameter) for x of shape (4, 3, 5)."""
    f32 = np.ones(3, np.float32)
    _, mean, invstd = cnorm.batch_norm_train(x)
    _, lmean, lrstd = cnorm.layer_norm(x, 5)
    p5 = p[:1].repeat(5)
    return [
        ("weight", lambda: cnorm.batch_norm_train(x, p)),
        ("bias", lambda: cnorm.batch_norm_train(x, None, p)),
        ("running_mean", lambda: cnorm.batch_norm_infer(x, p, f32)),
        ("running_var", lambda: cnorm.batch_norm_infer(x, f32, p)),
        ("weight", lambda: cnorm.batch_norm_backward(x, x, mean, invstd, p)),
        ("weight", lambda: cnorm.layer_norm(x, 5, p5)),
        ("weight", lambda: cnorm.layer_norm_backward(x, x, lmean, lrstd, 5, p5)),
        ("weight", lambda: cnorm.rms_norm(x, 5, p5)),
        ("weight", lambda: cnorm.group_norm(x, 3, p)),
        ("bias", lambda: cnorm.instance_norm(x, None, p)),
        ("weight", lambda: cnorm.add_layer_norm(x, x, 5, p5)),
        ("weight", lambda: cnorm.add_rms_norm(x, x, 5, p5)),
    ]


@pytest.mark.skipif(len(LOW) < 2, reason="needs ml_dtypes for bfloat16")
@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("index", range(12))
def test_parameters_of_the_other_low_dtype_are_refused(dtype, index):
    """Parameters are float32, float64 or x's own dtype on every path, never
    the other 2-byte float (a float16 weight is not read as bfloat16)."""
    x = data((4, 3, 5), dtype)
    other = LOW[1] if dtype == LOW[0] else LOW[0]
    name, call = _param_calls(x, np.ones(3, other))[index]
    with pytest.raises(TypeError, match=name):
        call()
    _param_calls(x, np.ones(3, dtype))[index][1]()   # x's own dtype is accepted


def _all_bits():
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def _hard_floats():
    """Random float32 bit patterns, every value just around half the
    spacing of the 2-byte types (ties), and the special values."""
    rng = np.random.default_rng(9)
    bits = rng.integers(0, 1 << 32, 200_000, dtype=np.uint64).astype(np.uint32)
    ties = (rng.integers(0, 1 << 16, 50_000, dtype=np.uint32) << 16) | 0x8000
    ties_f16 = (rng.integers(0x33000000 >> 13, 0x47800000 >> 13, 50_000, dtype=np.uint32)
                << 13) | 0x1000
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, 65519.0, 65520.0,
                         2.0**-24, 2.0**-25, 3 * 2.0**-26, 1e-45, 3.4e38], np.float32)
    values = np.concatenate([bits, ties, ties_f16]).view(np.float32)
    return np.concatenate([values, specials, -specials])


def test_float16_conversions_equal_numpys():
    from cnorm.lowp import downcast, upcast

    h = _all_bits().view(np.float16)
    up = upcast(h)
    np.testing.assert_array_equal(up, h.astype(np.float32))   # NaNs compare equal here
    f = _hard_floats()
    with np.errstate(over="ignore", invalid="ignore"):
        expected = f.astype(np.float16)
    got = downcast(f, np.dtype(np.float16))
    same = (got.view(np.uint16) == expected.view(np.uint16)) | (np.isnan(got) & np.isnan(expected))
    assert same.all(), f[~same][:5]


def test_bfloat16_conversions_equal_ml_dtypes():
    ml = pytest.importorskip("ml_dtypes")
    from cnorm.lowp import downcast, upcast

    bf = np.dtype(ml.bfloat16)
    b = _all_bits().view(bf)
    np.testing.assert_array_equal(upcast(b).view(np.uint32),
                                  _all_bits().astype(np.uint32) << 16)
    f = _hard_floats()
    with np.errstate(over="ignore", invalid="ignore"):
        expected = f.astype(bf).astype(np.float32)
    got = downcast(f, bf).astype(np.float32)
    same = (got == expected) | (np.isnan(got) & np.isnan(expected))
    assert same.all(), f[~same][:5]
    assert (np.signbit(got) == np.signbit(expected))[~np.isnan(got)].all()


def test_bfloat16_store_of_subnormal_runs_equals_ml_dtypes():
    # Runs of float32 subnormals beside normal values, in and across the
    # 32-value vectors of the AVX512_BF16 store (which flushes subnormals,
    # so a vector holding one takes the portable rounding).
    ml = pytest.importorskip("ml_dtypes")
    from cnorm.lowp import downcast

    bf = np.dtype(ml.bfloat16)
    tiny = np.float32(2.0**-126) * np.linspace(-2, 2, 1001, dtype=np.float32)
    f = np.concatenate([tiny, np.repeat(tiny[::7], 3), np.ones(45, np.float32)])
    for start in (0, 5, 31):
        got = downcast(f[start:], bf).view(np.uint16)
        np.testing.assert_array_equal(got, f[start:].astype(bf).view(np.uint16))


ROW_FORWARDS = {
    "layer_norm": lambda x, w, b, **kw: cnorm.layer_norm(x, x.shape[-1], w, b, **kw),
    "rms_norm": lambda x, w, b, **kw: cnorm.rms_norm(x, x.shape[-1], w, **kw),
    "group_norm": lambda x, w, b, **kw: cnorm.group_norm(x, 2, w, b, **kw),
    "instance_norm": cnorm.instance_norm,
}


def _rounded_like(y32, dtype):
    """y32 rounded to dtype by NumPy / ml_dtypes (round to nearest even)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return y32.astype(dtype)


def _same_values(a, b):
    bits_equal = a.view(np.uint16) == b.view(np.uint16)
    return bits_equal | (np.isnan(a.astype(np.float32)) & np.isnan(b.astype(np.float32)))


# The row forwards read and write the 2-byte values in their own loops,
# converting blocks of 2048 in L1: rows shorter and longer than a block,
# runs of S values (group, instance norm), every activation, parameters
# that make outputs subnormal, non-finite values and in-place calls.
@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("name", list(ROW_FORWARDS))
@pytest.mark.parametrize("shape", [(3, 4, 5, 7), (2, 4, 37, 61), (5, 2, 3, 700)])
@pytest.mark.parametrize("activation", [None, "relu", "silu"])
def test_row_forwards_equal_float32_rounded_once(dtype, name, shape, activation):
    fn = ROW_FORWARDS[name]
    x = data(shape, dtype, mean=3.0, seed=11)
    x.reshape(-1)[[7, 300]] = [np.inf, np.nan]
    n = shape[-1] if name in ("layer_norm", "rms_norm") else shape[1]
    rng = np.random.default_rng(12)
    w = rng.uniform(0.5, 2, n).astype(np.float32)
    w[1] = 1e-39   # float32-subnormal outputs
    b = (rng.normal(size=n) * 1e-39).astype(np.float32)
    for params in ((None, None), (w, b)):
        got = fn(x, *params, activation=activation)
        want = fn(x.astype(np.float32), *params, activation=activation)
        got_y = got[0] if isinstance(got, tuple) else got
        want_y = want[0] if isinstance(want, tuple) else want
        assert _same_values(got_y, _rounded_like(want_y, dtype)).all()
        for g, e in zip(got[1:], want[1:]) if isinstance(got, tuple) else ():
            np.testing.assert_array_equal(g, e)
        inplace = x.copy()
        fn(inplace, *params, activation=activation, out=inplace)
        assert _same_values(inplace, got_y).all()


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
def test_chunked_kernels_equal_float32_rounded_once(dtype):
    # Many rows and chunks, both threads: the 2-byte kernels give the
    # float32 result rounded once.
    from cnorm.lowp import downcast

    x = data((300, 1000), dtype, seed=4)
    w, b = f32_params(1000)
    y, mean, rstd = cnorm.layer_norm(x, 1000, w, b, activation="silu")
    y32, mean32, rstd32 = cnorm.layer_norm(x.astype(np.float32), 1000, w, b, activation="silu")
    np.testing.assert_array_equal(y.view(np.uint16), downcast(y32, dtype).view(np.uint16))
    np.testing.assert_array_equal(mean, mean32)
    np.testing.assert_array_equal(rstd, rstd32)
    g = data((6, 12, 40, 40), dtype, seed=5)
    np.testing.assert_array_equal(
        cnorm.group_norm(g, 3)[0].view(np.uint16),
        downcast(cnorm.group_norm(g.astype(np.float32), 3)[0], dtype).view(np.uint16))
    rm, rv = np.zeros(12, np.float32), np.full(12, 2.0, np.float32)
    np.testing.assert_array_equal(
        cnorm.batch_norm_infer(g, rm, rv).view(np.uint16),
        downcast(cnorm.batch_norm_infer(g.astype(np.float32), rm, rv), dtype).view(np.uint16))


# Inference runs on the row family's 2-byte tiles, rows of planes or of
# samples: planes longer than a tile block, samples of one or several
# rows with a partial last row, long samples of small planes, a sample of
# over 2**20 values in planes of 32, channels-last rows (of over 2**20
# channels too); every activation, and in place.
@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("shape, axis", [((2, 3, 150, 150), 1), ((3, 5, 7000), 1),
                                         ((50, 7, 11), 1), ((40, 9, 9, 37), -1),
                                         ((3, 700, 20), 1), ((1, 2**15 + 3, 32), 1),
                                         ((7, 2, 30), 2), ((2, 2**20 + 5), 1)])
@pytest.mark.parametrize("activation", [None, "relu", "silu"])
@pytest.mark.parametrize("offset", ["near 0", "far", "one far channel"])
def test_batch_norm_infer_any_layout(dtype, shape, axis, activation, offset):
    # Data far from 0 (mean 1e3, std 1; in every channel or in one) takes
    # y = act((x - running_mean) * scale + bias), scale = weight /
    # sqrt(running_var + eps), within one ulp where x * scale + shift
    # cancels; data near 0 may take either form.
    from cnorm._kernels import channel_standardize
    from cnorm.activation import activation_code
    from cnorm.functional import channel_view
    from cnorm.lowp import downcast

    C = shape[axis]
    view = [1] * len(shape)
    view[axis] = C
    centre = np.zeros(C)
    if offset == "far":
        centre[:] = 1e3
    elif offset == "one far channel":
        centre[-1] = 1e3
    rng = np.random.default_rng(7)
    x = (rng.normal(0.0, 1.0, shape) + centre.reshape(view)).astype(dtype)
    rm = (centre + rng.normal(0.0, 0.3, C)).astype(np.float32)
    rv = rng.uniform(0.5, 3.0, C).astype(np.float32)
    w, b = f32_params(C)
    y = cnorm.batch_norm_infer(x, rm, rv, w, b, axis=axis, activation=activation)
    scale = (w / np.sqrt(rv.astype(np.float64) + 1e-5)).reshape(view)
    x64 = x.astype(np.float64)
    if activation is None:
        # plus float32's rounding of the terms, which cancel where y is near
        # 0 (rare: |y| far below |bias|): (x - running_mean) * scale and the
        # bias, or x * scale and bias - running_mean * scale
        if offset == "near 0":
            terms = np.abs(x64 * scale) + np.abs(b.reshape(view) - rm.reshape(view) * scale)
        else:
            terms = np.abs((x64 - rm.reshape(view)) * scale) + np.abs(b.reshape(view))
        within_one_ulp(y, ref.bn_infer(x, rm, rv, w, b, axis=axis), dtype, 4 * 2.0**-24 * terms)
    # the float32 centred pass, or (near 0) the float32 kernel, rounded once
    x32 = np.ascontiguousarray(x.astype(np.float32))
    centred32 = np.empty_like(x32)
    channel_standardize(x32, *channel_view(x32, axis), rm, scale.ravel().astype(np.float32), b,
                        centred32, activation_code(activation))
    passes = [centred32]
    if offset == "near 0":
        passes.append(cnorm.batch_norm_infer(x32, rm, rv, w, b, axis=axis,
                                             activation=activation))
    assert any(_same_values(y, _rounded_like(y32, dtype)).all() for y32 in passes)
    assert any(np.array_equal(y.view(np.uint16), downcast(y32, dtype).view(np.uint16))
               for y32 in passes)
    inplace = x.copy()
    cnorm.batch_norm_infer(inplace, rm, rv, w, b, axis=axis, activation=activation, out=inplace)
    np.testing.assert_array_equal(inplace.view(np.uint16), y.view(np.uint16))


# Batch-norm training runs in C: on planes of 512 values and more, each
# plane's moments on the row tiles, merged per channel in plane order, then
# the affine pass; otherwise on chunks, moments of converted chunks merged
# per channel in piece order, then the normalizing pass.  Planes larger
# than a chunk, chunk boundaries inside planes, whole samples per chunk,
# channels-last rows, a middle axis, more channels than a chunk.
def f32_slack(want, bias=None, axis=1):
    """Absolute allowance for float32 arithmetic before the final rounding:
    a few float32 ulps of the terms of y = (x - m) * scale + bias, and a
    float64 rounding of the merged mean, which only matter where y is near
    or exactly 0 (the float32 path shares them)."""
    terms = np.abs(np.asarray(want, np.float64))
    if bias is not None:
        shape = [1] * terms.ndim
        shape[axis] = -1
        terms = terms + np.abs(bias.astype(np.float64)).reshape(shape)
    return 2.0**-22 * terms + 2.0**-40 * terms.max(initial=1.0)


TRAIN_SHAPES = [((2, 3, 150, 150), 1), ((3, 5, 7000), 1), ((2, 2, 40000), 1),
                ((50, 7, 11), 1), ((40, 9, 9, 37), -1), ((5, 7, 3, 11), 2),
                ((6, 20000), 1), ((3, 4), 1), ((8, 20, 14, 14), 1), ((8, 23, 10, 10), 1)]


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("shape, axis", TRAIN_SHAPES)
@pytest.mark.parametrize("mean", [0.5, 1e3])
def test_batch_norm_train_chunks_any_layout(dtype, shape, axis, mean):
    x = data(shape, dtype, mean, seed=8)
    w, b = f32_params(shape[axis])
    y, m, invstd = cnorm.batch_norm_train(x, w, b, axis=axis)
    ry, rm, rinv = ref.bn_train(x, w, b, axis=axis)
    within_one_ulp(y, ry, dtype, f32_slack(ry, b, axis))
    assert m.dtype == invstd.dtype == np.float32
    np.testing.assert_allclose(m, rm, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(invstd, rinv, rtol=1e-5)
    # no weight or bias, and a fused activation: the same statistics
    for act in ("relu", "silu"):
        y, m2, inv2 = cnorm.batch_norm_train(x, axis=axis, activation=act)
        want = ref.activation(ref.bn_train(x, axis=axis)[0], act)
        within_one_ulp(y, want, dtype, f32_slack(want))
        np.testing.assert_array_equal(m2, m)
        np.testing.assert_array_equal(inv2, invstd)


THREAD_SHAPES = [((8, 16, 4096), 1), ((4, 3, 100000), 1), ((4096, 96), -1), ((3, 33000), 1),
                 ((32, 50, 8, 8), 1)]


def _on_thread_counts(call):
    """call()'s results with 1, 2 and 4 threads (the default restored)."""
    results = []
    try:
        for n in (1, 2, 4):
            cnorm.set_num_threads(n)
            results.append(call())
    finally:
        cnorm.set_num_threads(None)
    return results


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("shape, axis", THREAD_SHAPES)
def test_batch_norm_train_same_bits_for_1_2_4_threads(dtype, shape, axis):
    x = data(shape, dtype, 3.0, seed=9)
    w, b = f32_params(shape[axis])
    results = _on_thread_counts(
        lambda: cnorm.batch_norm_train(x, w, b, axis=axis, activation="silu"))
    for y, m, invstd in results[1:]:
        np.testing.assert_array_equal(y.view(np.uint16), results[0][0].view(np.uint16))
        np.testing.assert_array_equal(m, results[0][1])
        np.testing.assert_array_equal(invstd, results[0][2])
    want = ref.activation(ref.bn_train(x, w, b, axis=axis)[0], "silu")
    within_one_ulp(results[0][0], want, dtype, f32_slack(want, b, axis))


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("shape, axis", [((3, 4, 30000), 1), ((2000, 6), -1)])
def test_batch_norm_train_nan_inf_stay_in_their_channel(dtype, shape, axis):
    x = data(shape, dtype, seed=10)
    idx = [1] * len(shape)
    idx[axis] = 2
    x[tuple(idx)] = np.nan
    idx[axis] = 3
    x[tuple(idx)] = np.inf
    y, m, invstd = cnorm.batch_norm_train(x, axis=axis)
    y = np.moveaxis(y.astype(np.float64), axis, 0)
    assert np.isnan(y[2]).all() and np.isnan(m[2])
    assert not np.isfinite(y[3]).any() and not np.isfinite(m[3])
    assert np.isfinite(y[[0, 1]]).all() and np.isfinite(m[[0, 1]]).all()


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
def test_batch_norm_train_empty_and_degenerate_as_float32(dtype):
    with pytest.raises(ValueError, match="more than one value per channel"):
        cnorm.batch_norm_train(np.zeros((1, 3, 1), dtype))
    for shape in [(0, 3, 4), (5, 3, 0)]:   # empty: an empty y, mean 0 and var 0 (as float32)
        y, m, invstd = cnorm.batch_norm_train(np.zeros(shape, dtype))
        y32, m32, invstd32 = cnorm.batch_norm_train(np.zeros(shape, np.float32))
        assert y.shape == shape and y.dtype == dtype
        assert m.tobytes() == m32.tobytes() and invstd.tobytes() == invstd32.tobytes()
    y, m, invstd = cnorm.batch_norm_train(np.zeros((4, 0, 5), dtype))
    assert y.shape == (4, 0, 5) and y.dtype == dtype and m.shape == invstd.shape == (0,)
    const = np.full((4, 3, 5), 7.0, dtype)        # a constant channel gives exactly its bias
    w, b = f32_params(3)
    y = cnorm.batch_norm_train(const, w, b)[0]
    np.testing.assert_array_equal(y, np.broadcast_to(b.astype(dtype)[:, None], y.shape))


# Both sides of each bound of the planes: 512 values, and 64 in inputs of
# 2**21 values or more (each side checked to take the path it should: a
# constant channel, renorm, the saved statistics and the backward
# included).
PLANE_BOUNDS = [(3, 4, 512), (3, 4, 511), (129, 64, 256), (127, 64, 256), (2, 3, 64, 65)]


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("shape", PLANE_BOUNDS)
def test_batch_norm_train_at_the_bounds_of_planes(dtype, shape):
    C = shape[1]
    x = data(shape, dtype, 1e3, seed=13)
    x[:, 1] = 5.0                            # a constant channel gives exactly its bias
    w, b = f32_params(C)
    y, m, invstd = cnorm.batch_norm_train(x, w, b, activation="relu")
    ry, rm, rinv = ref.bn_train(x, w, b)
    want = ref.activation(ry, "relu")
    within_one_ulp(y, want, dtype, f32_slack(want, b))
    assert (y[:, 1] == b.astype(dtype)[1].clip(0)).all()
    np.testing.assert_allclose(m, rm, rtol=1e-7)
    np.testing.assert_allclose(invstd[invstd < 1e3], rinv[invstd < 1e3], rtol=1e-5)
    running_mean = np.linspace(999, 1001, C)
    running_var = np.linspace(0.5, 2, C)
    got = cnorm.functional.batch_renorm_statistics(x, w, b, 1e-5, 1, None, running_mean,
                                                   running_var, 2.0, 0.5)
    want = ref.renorm_forward(x, running_mean, running_var, w, b, rmax=2.0, dmax=0.5)
    within_one_ulp(got[0], want[0], dtype, f32_slack(want[0], b))
    np.testing.assert_allclose(got[3], want[3], rtol=1e-6)
    # the backward on the same side of the bounds; bfloat16 dy near 1e37 in
    # one channel overflows float32 sums, which are redone in double
    dy = data(shape, dtype, 0.0, seed=14)
    if dtype != np.float16:
        dy[:, 2] = (data(dy[:, 2].shape, np.float32, 10.0, seed=16) * 1e36).astype(dtype)
    x[:, 1] = data((shape[0],) + shape[2:], dtype, 1e3, seed=15)   # no constant channel
    _, m, invstd = cnorm.batch_norm_train(x)
    rdx, rdw, rdb = ref.bn_backward(dy, x, m, invstd, w)
    with np.errstate(over="ignore"):   # channel 2's float32 dweight, dbias
        dx, dw, db = cnorm.batch_norm_backward(dy, x, m, invstd, w)
    per_channel = tuple(i for i in range(x.ndim) if i != 1)
    within_one_ulp(dx, rdx, dtype, slack=1e-6 * np.abs(rdx).max(axis=per_channel, keepdims=True))
    finite = [c for c in range(C) if c != 2]   # float32 dweight, dbias: inf where they overflow
    np.testing.assert_allclose(db[finite], rdb[finite], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(dw[finite], rdw[finite], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
def test_batch_norm_train_out_non_contiguous_and_in_place(dtype):
    x = data((6, 5, 3000), dtype, seed=11)
    w, b = f32_params(5)
    want = ref.bn_train(x, w, b)[0]
    slack = f32_slack(want, b)
    base = np.full((6, 5, 6000), 9.0, dtype)
    out = base[:, :, ::2]
    y, _, _ = cnorm.batch_norm_train(x, w, b, out=out)
    assert y is out
    within_one_ulp(out, want, dtype, slack)
    assert (base[:, :, 1::2] == 9.0).all()
    xt = np.ascontiguousarray(x.transpose(0, 2, 1))   # channels-last, out= a transposed view
    out = np.empty_like(x).transpose(0, 2, 1)
    cnorm.batch_norm_train(xt, w, b, axis=-1, out=out)
    within_one_ulp(out, want.transpose(0, 2, 1), dtype, slack.transpose(0, 2, 1))
    x2 = x.copy()
    y, _, _ = cnorm.batch_norm_train(x2, w, b, out=x2)
    assert y is x2
    within_one_ulp(x2, want, dtype, slack)


# Batch-norm backward runs in C the same way (sums of dy and dy * x_hat per
# channel, then dx with the float32 kernel).
def _backward_case(shape, axis, dtype, mean=0.5, seed=12):
    x, dy = data(shape, dtype, mean, seed=seed), data(shape, dtype, 0.0, seed=seed + 1)
    w, b = f32_params(shape[axis])
    _, m, invstd = cnorm.batch_norm_train(x, w, b, axis=axis)
    return x, dy, m, invstd, w


def _check_backward(got, want, dtype, weight=True):
    dx, dw, db = got
    rdx, rdw, rdb = want
    within_one_ulp(dx, rdx, dtype, slack=1e-6 * np.abs(rdx).max(initial=0.0))
    assert db.dtype == np.float32
    np.testing.assert_allclose(db, rdb, rtol=1e-4, atol=1e-3)
    if weight:
        assert dw.dtype == np.float32
        np.testing.assert_allclose(dw, rdw, rtol=1e-4, atol=1e-3)
    else:
        assert dw is None


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("shape, axis", TRAIN_SHAPES)
@pytest.mark.parametrize("mean", [0.5, 1e3])
def test_batch_norm_backward_chunks_any_layout(dtype, shape, axis, mean):
    x, dy, m, invstd, w = _backward_case(shape, axis, dtype, mean)
    got = cnorm.batch_norm_backward(dy, x, m, invstd, w, axis=axis)
    _check_backward(got, ref.bn_backward(dy, x, m, invstd, w, axis=axis), dtype)
    got = cnorm.batch_norm_backward(dy, x, m, invstd, axis=axis)
    _check_backward(got, ref.bn_backward(dy, x, m, invstd, axis=axis), dtype, weight=False)


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("shape, axis", THREAD_SHAPES)
def test_batch_norm_backward_same_bits_for_1_2_4_threads(dtype, shape, axis):
    x, dy, m, invstd, w = _backward_case(shape, axis, dtype, 3.0, seed=13)
    results = _on_thread_counts(lambda: cnorm.batch_norm_backward(dy, x, m, invstd, w, axis=axis))
    for dx, dw, db in results[1:]:
        np.testing.assert_array_equal(dx.view(np.uint16), results[0][0].view(np.uint16))
        np.testing.assert_array_equal(dw, results[0][1])
        np.testing.assert_array_equal(db, results[0][2])
    _check_backward(results[0], ref.bn_backward(dy, x, m, invstd, w, axis=axis), dtype)


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("shape, axis", [((3, 4, 30000), 1), ((2000, 6), -1), ((4, 5, 300), 1)])
def test_batch_norm_backward_nan_stays_in_its_channel(dtype, shape, axis):
    x, dy, m, invstd, w = _backward_case(shape, axis, dtype)
    idx = [1] * len(shape)
    idx[axis] = 2
    dy[tuple(idx)] = np.nan
    dx, dw, db = cnorm.batch_norm_backward(dy, x, m, invstd, w, axis=axis)
    dx = np.moveaxis(dx.astype(np.float64), axis, 0)
    assert np.isnan(dx[2]).all() and np.isnan(dw[2]) and np.isnan(db[2])
    assert np.isfinite(dx[[0, 1, 3]]).all() and np.isfinite(dw[[0, 1, 3]]).all()


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
def test_batch_norm_backward_out_non_contiguous_and_into_dy(dtype):
    for shape in [(6, 5, 3000), (6, 5, 30)]:   # fused channels, chunks
        x, dy, m, invstd, w = _backward_case(shape, 1, dtype, seed=14)
        want = ref.bn_backward(dy, x, m, invstd, w)
        base = np.full(shape[:2] + (2 * shape[2],), 9.0, dtype)
        out = base[:, :, ::2]
        got = cnorm.batch_norm_backward(dy, x, m, invstd, w, out=out)
        assert got[0] is out
        _check_backward(got, want, dtype)
        assert (base[:, :, 1::2] == 9.0).all()
        dy2 = dy.copy()
        got = cnorm.batch_norm_backward(dy2, x, m, invstd, w, out=dy2)
        assert got[0] is dy2
        _check_backward(got, want, dtype)
    # statistics in x's dtype are accepted (widened), as before
    got = cnorm.batch_norm_backward(dy, x, m.astype(dtype), invstd.astype(dtype), w)
    _check_backward(got, ref.bn_backward(dy, x, m.astype(dtype), invstd.astype(dtype), w), dtype)


# ---- row-family backward in C: chunks of rows, gradients per piece -----------

ROW_BACKWARD_CASES = {   # name: (shape, the forward, the backward, the float64 reference)
    "layer_norm": (lambda x, w, b: cnorm.layer_norm(x, x.shape[-1], w, b),
                   lambda dy, x, s, w: cnorm.layer_norm_backward(dy, x, *s, x.shape[-1], w),
                   lambda dy, x, w: ref.layer_norm_backward(dy, x, x.shape[-1:], w)),
    "group_norm": (lambda x, w, b: cnorm.group_norm(x, 3, w, b),
                   lambda dy, x, s, w: cnorm.group_norm_backward(dy, x, *s, 3, w),
                   lambda dy, x, w: ref.group_norm_backward(dy, x, 3, w)),
    "instance_norm": (cnorm.instance_norm,
                      lambda dy, x, s, w: cnorm.instance_norm_backward(dy, x, *s, w),
                      ref.instance_norm_backward),
    "rms_norm": (lambda x, w, b: cnorm.rms_norm(x, x.shape[-1], w),
                 lambda dy, x, s, w: cnorm.rms_norm_backward(dy, x, s[-1], x.shape[-1], w),
                 lambda dy, x, w: ref.rms_norm_backward(dy, x, x.shape[-1:], w,   # float32's
                                                        eps=float(np.finfo(np.float32).eps))),
}
# many rows per chunk, rows across chunk boundaries, rows longer than a chunk
ROW_SHAPES = {"layer_norm": [(300, 96), (7, 5, 700), (3, 20000)],
              "rms_norm": [(300, 96), (7, 5, 700), (3, 20000)],
              "group_norm": [(40, 6, 33), (3, 6, 4000)],
              "instance_norm": [(40, 6, 33), (3, 6, 4000)]}


def _row_case(name, shape, dtype, mean=0.5, seed=21):
    x, dy = data(shape, dtype, mean, seed=seed), data(shape, dtype, 0.0, seed=seed + 1)
    n = shape[-1] if name in ("layer_norm", "rms_norm") else shape[1]
    w, b = f32_params(n)
    forward, backward, reference = ROW_BACKWARD_CASES[name]
    stats = forward(x, w, b)[1:]
    return x, dy, w, (lambda: backward(dy, x, stats, w)), reference


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("name, shape", [(n, s) for n, shapes in ROW_SHAPES.items()
                                         for s in shapes])
@pytest.mark.parametrize("mean", [0.5, 1e3])
def test_row_backward_in_two_byte_chunks(dtype, name, shape, mean):
    x, dy, w, call, reference = _row_case(name, shape, dtype, mean)
    got = call()
    want = reference(dy, x, w)
    within_one_ulp(got[0], want[0], dtype, slack=1e-6 * np.abs(want[0]).max())
    assert got[0].dtype == dtype and got[1].dtype == np.float32
    np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-3)
    if name != "rms_norm":
        np.testing.assert_allclose(got[2], want[2], rtol=1e-4, atol=1e-3)


# Rows of up to 2**14 values run on the row tiles, each row of dy and x
# converted once: dx is the float32 backward's, rounded once, and the
# parameter gradients its too (the same chunks of rows).  Longer rows go to
# lowp.c's chunks (test_row_backward_in_two_byte_chunks).
@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("name, shape", [("layer_norm", (40, 2**14)), ("layer_norm", (300, 96)),
                                         ("rms_norm", (5, 7, 768)), ("group_norm", (40, 6, 33)),
                                         ("instance_norm", (3, 6, 4000))])
def test_row_backward_equals_float32_rounded_once(dtype, name, shape):
    from cnorm.lowp import downcast

    x, dy = data(shape, dtype, 3.0, seed=24), data(shape, dtype, 0.0, seed=25)
    n = shape[-1] if name in ("layer_norm", "rms_norm") else shape[1]
    w, b = f32_params(n)
    forward, backward, _ = ROW_BACKWARD_CASES[name]
    stats = forward(x, w, b)[1:]
    got = backward(dy, x, stats, w)
    want = backward(dy.astype(np.float32), x.astype(np.float32), stats, w)
    np.testing.assert_array_equal(got[0].view(np.uint16), downcast(want[0], dtype).view(np.uint16))
    for g, f in zip(got[1:], want[1:]):
        np.testing.assert_array_equal(g, f)


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
@pytest.mark.parametrize("name", ROW_BACKWARD_CASES)
def test_row_backward_same_bits_for_1_2_4_threads(dtype, name):
    shape = (3000, 96) if name in ("layer_norm", "rms_norm") else (200, 6, 400)
    _, _, _, call, _ = _row_case(name, shape, dtype, 3.0, seed=23)
    results = _on_thread_counts(call)
    for other in results[1:]:
        np.testing.assert_array_equal(other[0].view(np.uint16), results[0][0].view(np.uint16))
        for a, b in zip(other[1:], results[0][1:]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
def test_row_backward_nan_stays_in_its_row_and_out_into_dy(dtype):
    x, dy, w, _, _ = _row_case("layer_norm", (50, 700), dtype)
    _, mean, rstd = cnorm.layer_norm(x, 700, w)
    want = cnorm.layer_norm_backward(dy, x, mean, rstd, 700, w)
    dy2 = dy.copy()
    got = cnorm.layer_norm_backward(dy2, x, mean, rstd, 700, w, out=dy2)
    assert got[0] is dy2
    np.testing.assert_array_equal(got[0].view(np.uint16), want[0].view(np.uint16))
    base = np.full((50, 1400), 9.0, dtype)
    got = cnorm.layer_norm_backward(dy, x, mean, rstd, 700, w, out=base[:, ::2])
    np.testing.assert_array_equal(got[0].view(np.uint16), want[0].view(np.uint16))
    assert (base[:, 1::2] == 9.0).all()
    dy[7, 3] = np.nan
    dx = cnorm.layer_norm_backward(dy, x, mean, rstd, 700, w)[0].astype(np.float64)
    assert np.isnan(dx[7]).all() and np.isfinite(np.delete(dx, 7, axis=0)).all()


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
def test_masked_batch_norm_layer_in_low_precision(dtype):
    # A mask sends the layer through float32 (its masked statistics have no
    # 2-byte kernel): the float32 layer's results rounded once.
    from cnorm.lowp import downcast

    x, dy = data((6, 3, 10), dtype, seed=31), data((6, 3, 10), dtype, seed=32)
    mask = np.random.default_rng(33).random((6, 1, 10)) < 0.7
    layer, layer32 = cnorm.BatchNorm(3, dtype=dtype), cnorm.BatchNorm(3)
    y, y32 = layer(x, mask=mask), layer32(x.astype(np.float32), mask=mask)
    np.testing.assert_array_equal(y.view(np.uint16), downcast(y32, dtype).view(np.uint16))
    dx, dx32 = layer.backward(dy), layer32.backward(dy.astype(np.float32))
    np.testing.assert_array_equal(dx.view(np.uint16), downcast(dx32, dtype).view(np.uint16))
    np.testing.assert_array_equal(layer.grad_weight, layer32.grad_weight)
    np.testing.assert_array_equal(layer.running_mean, layer32.running_mean)
    assert layer.eval()(x, mask=mask).dtype == dtype


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
def test_masked_batch_norm_within_one_ulp_at_mean_1e3(dtype):
    """The masked forward normalizes with its float64 mean, as the unmasked
    one: the saved float32 mean's rounding (up to 3e-5 at 1e3) stays out."""
    x = data((60, 8, 50), dtype, 1e3, seed=34)
    w, b = f32_params(8)
    mask = np.random.default_rng(35).random((60, 1, 50)) < 0.8
    y = cnorm.batch_norm_train(x, w, b, mask=mask)[0]
    xd = x.astype(np.float64)
    keep = np.broadcast_to(mask, x.shape)
    n = keep.sum((0, 2))
    mu = np.where(keep, xd, 0).sum((0, 2)) / n
    var = (np.where(keep, xd - mu[:, None], 0) ** 2).sum((0, 2)) / n
    xhat = (xd - mu[:, None]) / np.sqrt(var[:, None] + 1e-5)
    within_one_ulp(y, xhat * w[:, None] + b[:, None], dtype)
    within_one_ulp(cnorm.batch_norm_train(x, mask=mask)[0], xhat, dtype)


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
def test_layers_load_a_state_dict_of_their_own_dtype(dtype):
    for make in (lambda: cnorm.LayerNorm(8, dtype=dtype), lambda: cnorm.BatchNorm(8, dtype=dtype),
                 lambda: cnorm.RMSNorm(8, dtype=dtype)):
        src, dst = make(), make()
        src.weight[:] = np.linspace(0.5, 2, 8)
        state = {k: np.asarray(v).astype(dtype) if k != "num_batches_tracked" else v
                 for k, v in src.state_dict().items()}
        dst.load_state_dict(state)
        np.testing.assert_array_equal(dst.weight, src.weight.astype(dtype).astype(np.float32))
        assert dst.weight.dtype == np.float32


@pytest.mark.parametrize("dtype", LOW, ids=IDS)
def test_row_forwards_and_inference_same_bits_for_1_2_4_threads(dtype):
    # rows and planes go to threads whole: any split gives the same bits
    x = data((6, 8, 40, 40), dtype, 2.0, seed=13)
    w, b = f32_params(8)
    rm, rv = np.zeros(8, np.float32), np.full(8, 2.0, np.float32)
    calls = [lambda: cnorm.layer_norm(x, 40, *f32_params(40), activation="silu")[0],
             lambda: cnorm.group_norm(x, 4, w, b)[0],
             lambda: cnorm.batch_norm_infer(x, rm, rv, w, b, activation="relu"),
             lambda: cnorm.batch_norm_infer(x, np.zeros(40, np.float32), np.ones(40, np.float32),
                                            axis=-1)]
    for call in calls:
        results = _on_thread_counts(call)
        for y in results[1:]:
            np.testing.assert_array_equal(y.view(np.uint16), results[0].view(np.uint16))

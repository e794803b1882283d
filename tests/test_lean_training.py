"""The lean paths of training forwards, backwards and the running update give
the bits of the general paths.

A layer fed plain inputs (exact C-contiguous ndarrays of its dtype, its own
parameter and buffer arrays, float eps and momentum) takes the lean entry
points (_kernels.bn_train_fast, running_average, row_norm_fast,
row_backward_fast); the twin layer here is steered onto the general path by
values that are equal but not of the exact types the lean path takes:
eps and momentum as np.float64, running buffers as an ndarray subclass view.
"""
import numpy as np
import pytest

import cnorm
from cnorm import _kernels

from conftest import DTYPES


class Buffer(np.ndarray):
    """A view of a running buffer that the lean update declines (not an exact ndarray)."""


def _same(a, b, what=""):
    if a is None or b is None:
        assert a is None and b is None, what
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, what
    np.testing.assert_array_equal(a, b, err_msg=what)


def _general(layer):
    """Steer layer onto the general path without changing any value."""
    layer.eps = np.float64(layer.eps)
    if layer.momentum is not None:
        layer.momentum = np.float64(layer.momentum)
    if layer.track_running_stats:
        layer.running_mean = layer.running_mean.view(Buffer)
        layer.running_var = layer.running_var.view(Buffer)
    return layer


def _batches(rng, dtype, shape, steps=3):
    return [(rng.standard_normal(shape) * (i + 1) + i).astype(dtype) for i in range(steps)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape_axis", [((1, 8, 7, 7), 1), ((4, 5, 8), -1), ((6, 8), 1)],
                         ids=["nchw", "channels_last", "2d"])
@pytest.mark.parametrize("options", [
    {}, {"momentum": None}, {"affine": False}, {"unbiased_running_var": False},
    {"track_running_stats": False}, {"activation": "relu"}, {"activation": "silu"},
    {"dtype": np.float64}], ids=repr)
def test_batch_norm_layer_lean_equals_general(rng, dtype, shape_axis, options):
    shape, axis = shape_axis
    C = shape[axis]
    lean = cnorm.BatchNorm(C, axis=axis, **options)
    general = _general(cnorm.BatchNorm(C, axis=axis, **options))
    if lean.affine:
        lean.weight[...] = general.weight[...] = rng.uniform(0.5, 1.5, C)
        lean.bias[...] = general.bias[...] = rng.uniform(-1, 1, C)
    for x in _batches(rng, dtype, shape):
        if dtype == lean._param_dtype:   # the layer's own dtype: the lean forward applies
            assert _kernels.bn_train_fast(x, lean.weight, lean.bias, lean.eps, axis, None) \
                is not None
        _same(lean(x), general(x), "y")
        _same(lean.running_mean, general.running_mean, "running_mean")
        _same(lean.running_var, general.running_var, "running_var")
        assert lean.num_batches_tracked == general.num_batches_tracked
        dy = rng.standard_normal(shape).astype(dtype)
        _same(lean.backward(dy), general.backward(dy), "dx")
        _same(lean.grad_weight, general.grad_weight, "grad_weight")
        _same(lean.grad_bias, general.grad_bias, "grad_bias")


@pytest.mark.parametrize("running_dtype", DTYPES)
@pytest.mark.parametrize("f", [0.1, 1.0, 0.0, 1 / 3, 0.999])
@pytest.mark.parametrize("scale", [1.0, 49 / 48, 2.0])
def test_running_average_is_numpys_formula(rng, running_dtype, f, scale):
    """The C update of the running statistics: NumPy's float64 formula, bit for bit."""
    n = 257
    running_mean = (rng.standard_normal(n) * 1e3).astype(running_dtype)
    running_var = rng.uniform(1e-8, 1e4, n).astype(running_dtype)
    mean, var = rng.standard_normal(n) * 1e5, rng.uniform(0, 1e6, n)
    new_mean, new_var = _kernels.running_average(running_mean, running_var, mean, var, f, scale)
    _same(new_mean, (1.0 - f) * running_mean.astype(np.float64) + f * mean)
    _same(new_var, (1.0 - f) * running_var.astype(np.float64) + f * (var * scale))


def test_running_average_declines_what_it_does_not_take(rng):
    v32, v64 = np.ones(4, np.float32), np.zeros(4)
    assert _kernels.running_average(v32, v64, v64, v64, 0.1, 1.0) is not None
    for args in [(v32, v64, v64, v64, np.float32(0.1)),   # 1 - f would be float32
                 (v32.view(Buffer), v64, v64, v64, 0.1),
                 (v32, np.zeros(8)[::2], v64, v64, 0.1),
                 (v32, v64, v64.astype(np.float32), v64, 0.1),
                 (v32, v64, v64, np.zeros(5), 0.1),
                 (v32.astype(np.float16), v64, v64, v64, 0.1),
                 (v32, v64, list(v64), v64, 0.1)]:
        assert _kernels.running_average(*args, 1.0) is None


@pytest.mark.parametrize("buffers", ["float64_buffers", "strided", "float16"])
def test_batch_norm_reassigned_buffers_take_the_general_update(rng, buffers):
    """Running buffers the lean update declines are updated as before (NumPy)."""
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    lean, general = cnorm.BatchNorm(3), _general(cnorm.BatchNorm(3))
    if buffers == "float64_buffers":
        lean.running_mean = np.zeros(3)
    elif buffers == "strided":
        lean.running_mean = np.zeros(6, np.float32)[::2]
    else:
        lean.running_mean = np.zeros(3, np.float16)
    general.running_mean = lean.running_mean.copy().view(Buffer)
    for _ in range(2):
        _same(lean(x), general(x))
        _same(lean.running_mean, general.running_mean)
        _same(lean.running_var, general.running_var)


def test_batch_norm_layer_inputs_the_lean_path_declines(rng):
    """Non-contiguous, big-endian and other-dtype x: the checked path, the
    same results as a plain copy of the same values."""
    x = rng.standard_normal((4, 3, 6)).astype(np.float32)
    variants = [np.asfortranarray(x), x.astype(">f4"), np.repeat(x, 2, axis=2)[..., ::2]]
    reference = cnorm.BatchNorm(3)
    y_ref = reference(x)
    for variant in variants:
        layer = cnorm.BatchNorm(3)
        _same(layer(variant), y_ref)
        _same(layer.running_mean, reference.running_mean)
        _same(layer.running_var, reference.running_var)
    layer = cnorm.BatchNorm(3)   # float64 x into a float32 layer: the parameters in float64
    _same(layer(x.astype(np.float64)), cnorm.BatchNorm(3, dtype=np.float64)(x.astype(np.float64)))


def test_batch_norm_layer_errors_change_nothing(rng):
    """What the lean path declines still raises the checked path's errors,
    before any state moves."""
    layer = cnorm.BatchNorm(3)
    layer(rng.standard_normal((4, 3, 5)).astype(np.float32))
    before = {k: np.array(v, copy=True) for k, v in layer.state_dict().items()}
    with pytest.raises(ValueError, match="must have 3 channels on axis 1"):
        layer(np.ones((4, 2, 5), np.float32))
    with pytest.raises(ValueError, match="more than one value per channel"):
        layer(np.ones((1, 3), np.float32))
    layer.eps = 0.0
    with pytest.raises(ValueError, match="eps must be > 0"):
        layer(np.ones((4, 3, 5), np.float32))
    layer.eps = 1e-5
    weight, layer.weight = layer.weight, np.ones(4, np.float32)
    with pytest.raises(ValueError, match="weight must have shape"):
        layer(np.ones((4, 3, 5), np.float32))
    layer.weight = weight
    for key, value in before.items():
        _same(layer.state_dict()[key], value, key)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(8, 16), (2, 3, 16), (16,), (0, 16)], ids=str)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_layer_and_rms_norm_lean_equal_general(rng, dtype, shape, affine, activation):
    """row_norm_fast and row_backward_fast against the general path (steered
    there by a non-contiguous copy of x and dy, and by statistics as lists)."""
    K = shape[-1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    w = rng.uniform(0.5, 1.5, K).astype(dtype) if affine else None
    b = rng.uniform(-1, 1, K).astype(dtype) if affine else None

    def strided(a):
        return np.repeat(a, 2, axis=-1)[..., ::2]

    assert _kernels.row_norm_fast(x, K, w, b, 1e-5, None) is not None
    lean = cnorm.layer_norm(x, K, w, b, activation=activation)
    general = cnorm.layer_norm(strided(x), (K,), w, b, activation=activation)
    for a, g in zip(lean, general):
        _same(a, g)
    _, mean, rstd = lean
    backward = [cnorm.layer_norm_backward(dy, x, mean, rstd, K, w, bias=b),
                cnorm.layer_norm_backward(strided(dy), strided(x), mean.tolist(), rstd.tolist(),
                                          K, w, bias=b)]
    for a, g in zip(*backward):
        _same(a, g)

    assert _kernels.row_norm_fast(x, K, w, None, None, None, False) is not None
    lean = cnorm.rms_norm(x, K, w, activation=activation)
    general = cnorm.rms_norm(strided(x), (K,), w, activation=activation)
    for a, g in zip(lean, general):
        _same(a, g)
    rstd = lean[1]
    for a, g in zip(cnorm.rms_norm_backward(dy, x, rstd, K, w),
                    cnorm.rms_norm_backward(strided(dy), strided(x), rstd.tolist(), K, w)):
        _same(a, g)


@pytest.mark.parametrize("target", ["dy", "separate", "x", "overlapping"])
def test_row_backward_out(rng, target):
    """out= may be dy or a separate array (lean), or x or an array overlapping
    dy (declined: the general path), with the same dx."""
    x = rng.standard_normal((4, 8)).astype(np.float32)
    dy = rng.standard_normal((4, 8)).astype(np.float32)
    w = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    _, mean, rstd = cnorm.layer_norm(x, 8, w)
    ref = cnorm.layer_norm_backward(dy, x, mean, rstd, 8, w)
    x_in, dy_in = x.copy(), dy.copy()
    if target == "dy":
        out = dy_in
    elif target == "separate":
        out = np.full_like(x, np.nan)
    elif target == "x":
        out = x_in
    else:
        buf = np.zeros(2 * x.size, np.float32)
        buf[x.size:] = dy.ravel()
        dy_in = buf[x.size:].reshape(x.shape)
        out = buf[x.size // 2: x.size // 2 + x.size].reshape(x.shape)
    got = cnorm.layer_norm_backward(dy_in, x_in, mean, rstd, 8, w, out=out)
    assert got[0] is out
    for a, g in zip(got, ref):
        _same(np.array(a), g)


def test_row_lean_declines_mismatched_arguments(rng):
    """Statistics or parameters of another shape or dtype, or a bias given to
    rms_norm's entry point: declined (the general path converts or raises)."""
    x = rng.standard_normal((4, 8)).astype(np.float32)
    w = np.ones(8, np.float32)
    _, mean, rstd = cnorm.layer_norm(x, 8, w)
    assert _kernels.row_backward_fast(x, x, mean, rstd, 8, w, None, None) is not None
    for args in [(x, x, mean[:3], rstd), (x, x, mean, rstd.astype(np.float64)),
                 (x, x, mean.reshape(4, 1), rstd), (x.astype(np.float64), x, mean, rstd)]:
        assert _kernels.row_backward_fast(*args, 8, w, None, None) is None
    assert _kernels.row_backward_fast(x, x, mean, rstd, (2, 4), w, None, None) is None
    assert _kernels.row_norm_fast(x, 8, w, w, None, None, False) is None
    with pytest.raises(ValueError, match="rstd must have shape"):
        cnorm.layer_norm_backward(x, x, mean, rstd[:3], 8, w)
    with pytest.raises(TypeError, match="dy must have the dtype of x"):
        cnorm.rms_norm_backward(x.astype(np.float64), x, rstd, 8, w)


@pytest.mark.parametrize("make", [lambda: cnorm.LayerNorm(16), lambda: cnorm.RMSNorm(16),
                                  lambda: cnorm.LayerNorm(16, activation="silu")],
                         ids=["layer", "rms", "layer_silu"])
def test_row_layers_equal_their_general_functions(rng, make):
    """The layers' training forward and backward (lean for these inputs) give
    the functional general path's bits."""
    layer = make()
    x = rng.standard_normal((3, 16)).astype(np.float32)
    dy = rng.standard_normal((3, 16)).astype(np.float32)
    y, dx = layer(x), layer.backward(dy)
    xs = np.repeat(x, 2, axis=-1)[..., ::2]   # not contiguous: the general path
    if isinstance(layer, cnorm.RMSNorm):
        y_ref, rstd = cnorm.rms_norm(xs, 16, layer.weight)
        dx_ref, dw_ref = cnorm.rms_norm_backward(dy.copy(order="F"), xs, rstd, 16, layer.weight)
        db_ref = None
    else:
        y_ref, mean, rstd = cnorm.layer_norm(xs, 16, layer.weight, layer.bias,
                                             activation=layer.activation)
        dx_ref, dw_ref, db_ref = cnorm.layer_norm_backward(
            np.asfortranarray(dy), xs, mean, rstd, 16, layer.weight, bias=layer.bias,
            activation=layer.activation)
    _same(y, y_ref)
    _same(dx, dx_ref)
    _same(layer.grad_weight, dw_ref)
    _same(layer.grad_bias, db_ref)

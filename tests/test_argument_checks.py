"""Arguments of every kind reach a clear error naming them (the README's
errors table), never an OverflowError, ZeroDivisionError or NumPy's message:
huge ints, non-integral sizes, unsupported parameter dtypes, degenerate
inputs of the layers."""
import numpy as np
import pytest

import cnorm

HUGE = [2**31, 2**63, 2**70, 10**400]
RNG = np.random.default_rng(7)
X4 = RNG.standard_normal((3, 4, 5, 5)).astype(np.float32)
X2 = RNG.standard_normal((6, 16)).astype(np.float32)
C4 = np.ones(4, np.float32)


def _bn_saved():
    _, mean, invstd = cnorm.batch_norm_train(X4)
    return mean, invstd


def _gn_saved():
    _, mean, rstd = cnorm.group_norm(X4, 2)
    return mean, rstd


def _in_saved():
    _, mean, rstd = cnorm.instance_norm(X4)
    return mean, rstd


def _ln_saved(shape=16):
    _, mean, rstd = cnorm.layer_norm(X2, shape)
    return mean, rstd


# (label, call taking the hostile value, name the message must contain)
AXIS_CALLS = [
    ("batch_norm_train", lambda v: cnorm.batch_norm_train(X4, axis=v)),
    ("batch_norm_infer", lambda v: cnorm.batch_norm_infer(X4, C4 * 0, C4, axis=v)),
    ("batch_norm_backward", lambda v: cnorm.batch_norm_backward(X4, X4, *_bn_saved(), axis=v)),
]
SHAPE_CALLS = [
    ("layer_norm", lambda v: cnorm.layer_norm(X2, v)),
    ("rms_norm", lambda v: cnorm.rms_norm(X2, v)),
    ("layer_norm_backward", lambda v: cnorm.layer_norm_backward(X2, X2, *_ln_saved(), v)),
    ("rms_norm_backward",
     lambda v: cnorm.rms_norm_backward(X2, X2, cnorm.rms_norm(X2, 16)[1], v)),
]
EPS_CALLS = [
    ("batch_norm_train", lambda v: cnorm.batch_norm_train(X4, eps=v)),
    ("batch_norm_infer", lambda v: cnorm.batch_norm_infer(X4, C4 * 0, C4, eps=v)),
    ("layer_norm", lambda v: cnorm.layer_norm(X2, 16, eps=v)),
    ("rms_norm", lambda v: cnorm.rms_norm(X2, 16, eps=v)),
    ("group_norm", lambda v: cnorm.group_norm(X4, 2, eps=v)),
    ("instance_norm", lambda v: cnorm.instance_norm(X4, eps=v)),
    ("BatchNorm", lambda v: cnorm.BatchNorm(4, eps=v)),
    ("LayerNorm", lambda v: cnorm.LayerNorm(16, eps=v)),
    ("GroupNorm", lambda v: cnorm.GroupNorm(2, 4, eps=v)),
    ("InstanceNorm", lambda v: cnorm.InstanceNorm(4, eps=v)),
    ("RMSNorm", lambda v: cnorm.RMSNorm(16, eps=v)),
    ("BatchRenorm", lambda v: cnorm.BatchRenorm(4, eps=v)),
]
MOMENTUM_CALLS = [
    ("BatchNorm", lambda v: cnorm.BatchNorm(4, momentum=v)),
    ("BatchRenorm", lambda v: cnorm.BatchRenorm(4, momentum=v)),
    ("InstanceNorm", lambda v: cnorm.InstanceNorm(4, momentum=v, track_running_stats=True)),
]
SIZE_CALLS = [
    ("BatchNorm", "num_features", cnorm.BatchNorm),
    ("BatchRenorm", "num_features", cnorm.BatchRenorm),
    ("InstanceNorm", "num_features", cnorm.InstanceNorm),
    ("LayerNorm", "normalized_shape", cnorm.LayerNorm),
    ("RMSNorm", "normalized_shape", lambda v: cnorm.RMSNorm((4, v))),
    ("group_norm", "num_groups", lambda v: cnorm.group_norm(X4, v)),
    ("GroupNorm", "num_groups", lambda v: cnorm.GroupNorm(v, 4)),
    ("set_num_threads", "n", cnorm.set_num_threads),
]


def _expect_value_error(call, value, name):
    try:
        with pytest.raises(ValueError, match=name):
            call(value)
    finally:
        cnorm.set_num_threads(None)


@pytest.mark.parametrize("value", HUGE + [-(2**70)])
@pytest.mark.parametrize("label,call", AXIS_CALLS, ids=[c[0] for c in AXIS_CALLS])
def test_huge_axis_is_a_value_error_naming_axis(label, call, value):
    _expect_value_error(call, value, "axis")


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("label,call", SHAPE_CALLS, ids=[c[0] for c in SHAPE_CALLS])
def test_huge_normalized_shape_is_a_value_error(label, call, value):
    _expect_value_error(call, value, "normalized_shape")
    _expect_value_error(call, (value,), "normalized_shape")


@pytest.mark.parametrize("value", [10**400, -(10**400)])  # beyond float; 2**70 is a valid eps
@pytest.mark.parametrize("label,call", EPS_CALLS, ids=[c[0] for c in EPS_CALLS])
def test_huge_eps_is_a_value_error_naming_eps(label, call, value):
    _expect_value_error(call, value, "eps")


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("label,call", MOMENTUM_CALLS, ids=[c[0] for c in MOMENTUM_CALLS])
def test_huge_momentum_is_a_value_error_naming_momentum(label, call, value):
    _expect_value_error(call, value, "momentum")


@pytest.mark.parametrize("value", [2**63, 2**70, 10**400])  # no array of 2**31 is refused
@pytest.mark.parametrize("label,name,call", SIZE_CALLS, ids=[c[0] for c in SIZE_CALLS])
def test_huge_size_is_a_value_error_naming_it(label, name, call, value):
    _expect_value_error(call, value, name)


@pytest.mark.parametrize("value", [True, False, np.True_])   # PyTorch: "must be int, not bool"
@pytest.mark.parametrize("label,name,call", SIZE_CALLS, ids=[c[0] for c in SIZE_CALLS])
def test_bool_size_is_a_type_error_naming_it(label, name, call, value):
    try:
        with pytest.raises(TypeError, match=name):
            call(value)
    finally:
        cnorm.set_num_threads(None)


@pytest.mark.parametrize("value", [16.0, 16.7, "16", b"16", (16.0,), ("16",), None])
@pytest.mark.parametrize("label,call", SHAPE_CALLS + [
    ("LayerNorm", cnorm.LayerNorm),
    ("RMSNorm", cnorm.RMSNorm),
], ids=[c[0] for c in SHAPE_CALLS] + ["LayerNorm", "RMSNorm"])
def test_non_integral_normalized_shape_is_a_type_error(label, call, value):
    with pytest.raises(TypeError, match="normalized_shape"):
        call(value)


def test_thread_count_beyond_int_is_a_value_error():
    _expect_value_error(cnorm.set_num_threads, 2**31, "n")


def test_integer_like_normalized_shape_is_accepted():
    want = cnorm.layer_norm(X2, 16)[0]
    for shape in (np.int64(16), np.array(16), [16], (np.int32(16),), np.array([16])):
        np.testing.assert_array_equal(cnorm.layer_norm(X2, shape)[0], want)


BAD_PARAM_DTYPES = [np.float16, np.longdouble, np.int32, np.bool_, np.complex64]


def _param_calls(p4, p16):
    """(name of the parameter, call) for every parameter of every function,
    the parameter replaced by p4 (4 channels) or p16 (16 columns)."""
    mean, invstd = _bn_saved()
    lmean, lrstd = _ln_saved()
    return [
        ("weight", lambda: cnorm.batch_norm_train(X4, weight=p4)),
        ("bias", lambda: cnorm.batch_norm_train(X4, bias=p4)),
        ("running_mean", lambda: cnorm.batch_norm_infer(X4, p4, C4)),
        ("running_var", lambda: cnorm.batch_norm_infer(X4, C4 * 0, p4)),
        ("weight", lambda: cnorm.batch_norm_infer(X4, C4 * 0, C4, weight=p4)),
        ("mean", lambda: cnorm.batch_norm_backward(X4, X4, p4, invstd)),
        ("invstd", lambda: cnorm.batch_norm_backward(X4, X4, mean, p4)),
        ("weight", lambda: cnorm.batch_norm_backward(X4, X4, mean, invstd, p4)),
        ("bias", lambda: cnorm.batch_norm_backward(X4, X4, mean, invstd, bias=p4)),
        ("weight", lambda: cnorm.layer_norm(X2, 16, weight=p16)),
        ("bias", lambda: cnorm.layer_norm(X2, 16, bias=p16)),
        ("weight", lambda: cnorm.layer_norm_backward(X2, X2, lmean, lrstd, 16, p16)),
        ("bias", lambda: cnorm.layer_norm_backward(X2, X2, lmean, lrstd, 16, bias=p16)),
        ("weight", lambda: cnorm.rms_norm(X2, 16, weight=p16)),
        ("weight", lambda: cnorm.group_norm(X4, 2, weight=p4)),
        ("bias", lambda: cnorm.instance_norm(X4, bias=p4)),
        ("bias", lambda: cnorm.group_norm_backward(X4, X4, *_gn_saved(), 2, bias=p4)),
        ("bias", lambda: cnorm.instance_norm_backward(X4, X4, *_in_saved(), bias=p4)),
    ]


PARAM_CALLS = len(_param_calls(C4, C4))


@pytest.mark.parametrize("dtype", BAD_PARAM_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("index", range(PARAM_CALLS))
def test_unsupported_parameter_dtype_is_a_type_error_naming_it(dtype, index):
    name, call = _param_calls(np.ones(4, dtype), np.ones(16, dtype))[index]
    with pytest.raises(TypeError, match=name):
        call()


@pytest.mark.parametrize("index", range(PARAM_CALLS))
def test_float64_parameters_of_float32_data_are_accepted(index):
    _, call = _param_calls(np.ones(4, np.float64), np.ones(16, np.float64))[index]
    call()


@pytest.mark.parametrize("index", range(PARAM_CALLS))
def test_wrong_parameter_size_is_a_value_error_naming_it(index):
    """Every path checks every parameter it is given, also one that only an
    activation would use (bias of a backward): plain inputs take a lean path."""
    name, call = _param_calls(np.ones(3, np.float32), np.ones(15, np.float32))[index]
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.parametrize("shape", [(0, 4, 3, 3), (0, 4, 7)])
def test_instance_norm_layer_on_an_empty_batch_observes_nothing(shape):
    layer = cnorm.InstanceNorm(4, track_running_stats=True, momentum=None)
    layer(RNG.standard_normal((2, 4, 3, 3)).astype(np.float32))
    before = {k: np.array(v, copy=True) for k, v in layer.state_dict().items()}
    y = layer(np.zeros(shape, np.float32))
    assert y.shape == shape
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    layer.eval()
    assert layer(np.zeros(shape, np.float32)).shape == shape


@pytest.mark.parametrize("make", [cnorm.BatchNorm, cnorm.BatchRenorm])
@pytest.mark.parametrize("x", [np.float32(1.0), np.ones(4, np.float32)], ids=["0-d", "1-d"])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_layers_name_x_for_inputs_under_two_dims(make, x, training):
    layer = make(4)
    if not training:
        layer.eval()
    with pytest.raises(ValueError, match=r"^x must have at least 2 dimensions"):
        layer(x)


@pytest.mark.parametrize("shape", [True, (True,), (2, False)])
def test_a_bool_is_not_a_normalized_shape(shape):
    x = np.ones((3, 2, 1), np.float32)
    for call in (lambda: cnorm.layer_norm(x, shape), lambda: cnorm.rms_norm(x, shape),
                 lambda: cnorm.LayerNorm(shape)):
        with pytest.raises(TypeError, match="normalized_shape"):
            call()

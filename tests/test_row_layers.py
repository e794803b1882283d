"""State objects of the row family: LayerNorm, GroupNorm, InstanceNorm,
RMSNorm (protocol, gradients, running statistics, state_dict)."""
import numpy as np
import pytest

import cnorm

import reference as ref
from conftest import DTYPES, assert_close


def make_x(rng, shape, dtype, loc=0.5, scale=2.0):
    return (rng.standard_normal(shape) * scale + loc).astype(dtype)


def randomize(layer, rng):
    """Non-trivial affine parameters, set in place."""
    if getattr(layer, "weight", None) is not None:
        layer.weight[...] = rng.standard_normal(layer.weight.shape) * 0.5 + 1.0
    if getattr(layer, "bias", None) is not None:
        layer.bias[...] = rng.standard_normal(layer.bias.shape)


# ---------------------------------------------------------------- LayerNorm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,ns", [((4, 9), 9), ((2, 5, 33), (33,)), ((3, 4, 5, 6), (4, 5, 6))])
def test_layer_norm_layer(rng, shape, ns, dtype):
    layer = cnorm.LayerNorm(ns, eps=1e-5, dtype=dtype)
    nt = (ns,) if np.ndim(ns) == 0 else tuple(ns)
    assert layer.training
    assert layer.normalized_shape == nt
    assert layer.weight.shape == nt and layer.weight.dtype == dtype
    np.testing.assert_array_equal(layer.weight, 1)
    np.testing.assert_array_equal(layer.bias, 0)
    randomize(layer, rng)
    w, b = layer.weight.copy(), layer.bias.copy()
    x = make_x(rng, shape, dtype)
    y = layer(x)
    assert y.dtype == dtype
    assert_close(y, ref.layer_norm(x, ns, w, b)[0])
    dy = make_x(rng, shape, dtype, scale=1.0)
    dx = layer.backward(dy)
    edx, edw, edb = ref.layer_norm_backward(dy, x, ns, w)
    assert_close(dx, edx)
    assert_close(layer.grad_weight, edw)
    assert_close(layer.grad_bias, edb)
    # eval: same normalization (no running statistics)
    assert layer.eval() is layer and not layer.training
    assert_close(layer(x), ref.layer_norm(x, ns, w, b)[0])
    layer.train()
    assert layer.training


def test_layer_norm_layer_without_bias_or_affine(rng):
    x = make_x(rng, (3, 7), np.float64)
    dy = make_x(rng, (3, 7), np.float64)
    nob = cnorm.LayerNorm(7, bias=False, dtype=np.float64)
    assert nob.bias is None
    assert set(nob.state_dict()) == {"weight"}
    randomize(nob, rng)
    assert_close(nob(x), ref.layer_norm(x, 7, nob.weight)[0])
    nob.backward(dy)
    assert_close(nob.grad_weight, ref.layer_norm_backward(dy, x, 7, nob.weight)[1])
    assert nob.grad_bias is None
    plain = cnorm.LayerNorm(7, elementwise_affine=False, dtype=np.float64)
    assert plain.weight is None and plain.bias is None
    assert plain.state_dict() == {}
    assert_close(plain(x), ref.layer_norm(x, 7)[0])
    assert_close(plain.backward(dy), ref.layer_norm_backward(dy, x, 7)[0])
    assert plain.grad_weight is None and plain.grad_bias is None


def test_layer_norm_layer_eps_and_shape_check(rng):
    layer = cnorm.LayerNorm((3, 4), eps=0.1, dtype=np.float64)
    x = make_x(rng, (2, 3, 4), np.float64, scale=0.3)
    assert_close(layer(x), ref.layer_norm(x, (3, 4), eps=0.1)[0])
    with pytest.raises(ValueError, match="normalized_shape"):
        layer(np.ones((2, 4, 3)))
    with pytest.raises(ValueError, match="normalized_shape"):
        cnorm.LayerNorm(0)


def test_backward_before_forward_raises():
    for layer in (cnorm.LayerNorm(3), cnorm.GroupNorm(1, 3), cnorm.InstanceNorm(3),
                  cnorm.RMSNorm(3)):
        with pytest.raises(RuntimeError):
            layer.backward(np.ones((2, 3, 3), np.float32))


def test_backward_uses_latest_training_forward(rng):
    layer = cnorm.LayerNorm(5, dtype=np.float64)
    x1, x2 = make_x(rng, (2, 5), np.float64), make_x(rng, (4, 5), np.float64)
    dy = make_x(rng, (4, 5), np.float64)
    layer(x1)
    layer(x2)
    layer.eval()
    layer(x1)  # eval calls do not replace the saved training tensors
    assert_close(layer.backward(dy), ref.layer_norm_backward(dy, x2, 5)[0])


def test_layer_input_not_mutated_and_saved_copy(rng):
    layer = cnorm.GroupNorm(2, 4, dtype=np.float32)
    x = make_x(rng, (2, 4, 3), np.float32)
    x0 = x.copy()
    layer(x)
    np.testing.assert_array_equal(x, x0)
    dy = make_x(rng, (2, 4, 3), np.float32)
    dy0 = dy.copy()
    layer.backward(dy)
    np.testing.assert_array_equal(dy, dy0)


# ---------------------------------------------------------------- GroupNorm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,G", [((2, 6, 5), 3), ((3, 4, 5, 7), 1), ((2, 4, 3, 3), 4),
                                     ((2, 6, 2, 3, 2), 2)])
def test_group_norm_layer(rng, shape, G, dtype):
    C = shape[1]
    layer = cnorm.GroupNorm(G, C, dtype=dtype)
    assert layer.training and layer.num_groups == G and layer.num_channels == C
    assert set(layer.state_dict()) == {"weight", "bias"}
    randomize(layer, rng)
    w, b = layer.weight.copy(), layer.bias.copy()
    x = make_x(rng, shape, dtype)
    assert_close(layer(x), ref.group_norm(x, G, w, b)[0])
    dy = make_x(rng, shape, dtype, scale=1.0)
    edx, edw, edb = ref.group_norm_backward(dy, x, G, w)
    assert_close(layer.backward(dy), edx)
    assert_close(layer.grad_weight, edw)
    assert_close(layer.grad_bias, edb)
    layer.eval()
    assert_close(layer(x), ref.group_norm(x, G, w, b)[0])


def test_group_norm_layer_no_affine_and_errors(rng):
    layer = cnorm.GroupNorm(2, 4, affine=False, dtype=np.float64)
    assert layer.state_dict() == {}
    x = make_x(rng, (3, 4, 5), np.float64)
    dy = make_x(rng, (3, 4, 5), np.float64)
    assert_close(layer(x), ref.group_norm(x, 2)[0])
    assert_close(layer.backward(dy), ref.group_norm_backward(dy, x, 2)[0])
    assert layer.grad_weight is None and layer.grad_bias is None
    with pytest.raises(ValueError, match="num_groups"):
        cnorm.GroupNorm(3, 8)
    with pytest.raises(ValueError):
        layer(np.ones((3, 5, 5)))  # wrong channel count


# ---------------------------------------------------------------- InstanceNorm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 7), (3, 4, 5, 6), (2, 3, 2, 3, 4)])
def test_instance_norm_layer_default(rng, shape, dtype):
    layer = cnorm.InstanceNorm(shape[1], dtype=dtype)
    assert layer.training and layer.weight is None and layer.bias is None
    assert layer.running_mean is None and layer.running_var is None
    assert layer.state_dict() == {}
    x = make_x(rng, shape, dtype)
    assert_close(layer(x), ref.instance_norm(x)[0])
    dy = make_x(rng, shape, dtype, scale=1.0)
    assert_close(layer.backward(dy), ref.instance_norm_backward(dy, x)[0])
    assert layer.grad_weight is None and layer.grad_bias is None
    layer.eval()  # without running statistics eval uses the instance statistics
    assert_close(layer(x), ref.instance_norm(x)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_instance_norm_layer_running_stats(rng, dtype, momentum):
    C = 3
    layer = cnorm.InstanceNorm(C, momentum=momentum, affine=True, track_running_stats=True,
                               dtype=dtype)
    assert set(layer.state_dict()) == {"weight", "bias", "running_mean", "running_var",
                                       "num_batches_tracked"}
    np.testing.assert_array_equal(layer.running_mean, 0)
    np.testing.assert_array_equal(layer.running_var, 1)
    assert layer.num_batches_tracked == 0
    randomize(layer, rng)
    w, b = layer.weight.copy(), layer.bias.copy()
    rm, rv = np.zeros(C), np.ones(C)
    for step in range(1, 5):
        x = make_x(rng, (2 + step, C, 4, 5), dtype, loc=step)
        y = layer(x)
        assert_close(y, ref.instance_norm(x, w, b)[0])
        rm, rv = ref.instance_running_update(rm, rv, x, momentum, step)
        assert layer.num_batches_tracked == step
        assert layer.running_mean.dtype == dtype
        assert_close(layer.running_mean, rm)
        assert_close(layer.running_var, rv)
        dy = make_x(rng, x.shape, dtype, scale=1.0)
        edx, edw, edb = ref.instance_norm_backward(dy, x, w)
        assert_close(layer.backward(dy), edx)
        assert_close(layer.grad_weight, edw)
        assert_close(layer.grad_bias, edb)
    sd = layer.state_dict()
    assert int(sd["num_batches_tracked"]) == 4
    # eval uses the running statistics, not the instance statistics
    layer.eval()
    x = make_x(rng, (2, C, 3, 3), dtype)
    rm_before = layer.running_mean.copy()
    assert_close(layer(x), ref.bn_infer(x, layer.running_mean, layer.running_var, w, b))
    np.testing.assert_array_equal(layer.running_mean, rm_before)
    assert layer.num_batches_tracked == 4


def test_instance_norm_layer_track_without_affine(rng):
    layer = cnorm.InstanceNorm(2, track_running_stats=True, dtype=np.float64)
    assert set(layer.state_dict()) == {"running_mean", "running_var", "num_batches_tracked"}
    x = make_x(rng, (3, 2, 9), np.float64)
    layer(x)
    rm, rv = ref.instance_running_update(np.zeros(2), np.ones(2), x, 0.1)
    assert_close(layer.running_mean, rm)
    assert_close(layer.running_var, rv)
    layer.eval()
    assert_close(layer(x), ref.bn_infer(x, rm, rv))


@pytest.mark.parametrize("dtype", DTYPES)
def test_instance_norm_running_var_far_below_eps(rng, dtype):
    # var ~ 1e-12 with eps = 1e-5: recovering var from the rounded rstd as
    # 1 / rstd**2 - eps keeps none of its digits (nor its sign).
    layer = cnorm.InstanceNorm(2, track_running_stats=True, momentum=1.0, dtype=dtype)
    x = (1.0 + 1e-6 * rng.standard_normal((4, 2, 64))).astype(dtype)
    layer(x)
    rm, rv = ref.instance_running_update(np.zeros(2), np.ones(2), x, 1.0)
    np.testing.assert_allclose(layer.running_var, rv, rtol=1e-4)
    np.testing.assert_allclose(layer.running_mean, rm, rtol=1e-6)


def test_instance_norm_layer_errors(rng):
    layer = cnorm.InstanceNorm(3, track_running_stats=True)
    rm0 = layer.running_mean.copy()
    with pytest.raises(ValueError):
        layer(np.ones((2, 4, 5), np.float32))  # wrong channel count
    with pytest.raises(ValueError):
        layer(np.ones((2, 3, 1), np.float32))  # one value per instance
    np.testing.assert_array_equal(layer.running_mean, rm0)
    assert layer.num_batches_tracked == 0
    with pytest.raises(ValueError, match="momentum"):
        cnorm.InstanceNorm(3, momentum=1.5)


# ---------------------------------------------------------------- RMSNorm


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [None, 1e-6])
def test_rms_norm_layer(rng, dtype, eps):
    layer = cnorm.RMSNorm((4, 7), eps=eps, dtype=dtype)
    assert layer.training and layer.weight.shape == (4, 7)
    assert set(layer.state_dict()) == {"weight"}
    randomize(layer, rng)
    w = layer.weight.copy()
    x = make_x(rng, (3, 4, 7), dtype)
    assert_close(layer(x), ref.rms_norm(x, (4, 7), w, eps=eps)[0])
    dy = make_x(rng, x.shape, dtype, scale=1.0)
    edx, edw = ref.rms_norm_backward(dy, x, (4, 7), w, eps=eps)
    assert_close(layer.backward(dy), edx)
    assert_close(layer.grad_weight, edw)
    assert layer.grad_bias is None
    layer.eval()
    assert_close(layer(x), ref.rms_norm(x, (4, 7), w, eps=eps)[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_rms_norm_layer_default_eps_is_dtype_epsilon(dtype):
    layer = cnorm.RMSNorm(4, elementwise_affine=False, dtype=dtype)
    assert layer.weight is None and layer.state_dict() == {}
    x = np.full((2, 4), 1e-4, dtype)  # mean(x**2) = 1e-8, comparable to eps
    assert_close(layer(x), ref.rms_norm(x, 4, eps=float(np.finfo(dtype).eps))[0])
    layer.backward(np.ones((2, 4), dtype))
    assert layer.grad_weight is None and layer.grad_bias is None


# ---------------------------------------------------------------- state_dict


def _layers(dtype):
    return {
        "layer": (lambda: cnorm.LayerNorm(5, dtype=dtype), (3, 5)),
        "group": (lambda: cnorm.GroupNorm(2, 4, dtype=dtype), (2, 4, 3)),
        "instance": (lambda: cnorm.InstanceNorm(4, affine=True, track_running_stats=True,
                                                dtype=dtype), (2, 4, 3)),
        "rms": (lambda: cnorm.RMSNorm(5, dtype=dtype), (3, 5)),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["layer", "group", "instance", "rms"])
def test_state_dict_round_trip(rng, kind, dtype):
    make, shape = _layers(dtype)[kind]
    a = make()
    randomize(a, rng)
    a(make_x(rng, shape, dtype))  # moves running statistics where there are any
    sd = a.state_dict()
    for k, v in sd.items():
        assert isinstance(v, np.ndarray), k
    # state_dict returns copies
    for k, v in sd.items():
        if k != "num_batches_tracked":
            v[...] = 7
    assert not np.any(a.state_dict()["weight"] == 7)
    sd = a.state_dict()
    b = make()
    # lists / other dtypes are accepted (anything numpy.asarray takes)
    b.load_state_dict({k: np.asarray(v, np.float64).tolist() if k != "num_batches_tracked"
                       else v for k, v in sd.items()})
    for k, v in sd.items():
        assert_close(np.asarray(b.state_dict()[k], np.float64), np.asarray(v, np.float64))
    for name in ("weight", "bias", "running_mean", "running_var"):
        if getattr(b, name, None) is not None:
            assert getattr(b, name).dtype == dtype
    if kind == "instance":
        assert b.num_batches_tracked == 1
    x = make_x(rng, shape, dtype)
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a(x), b(x))


@pytest.mark.parametrize("kind", ["layer", "group", "instance", "rms"])
def test_load_state_dict_rejects_bad_entries_without_partial_update(rng, kind):
    make, _ = _layers(np.float32)[kind]
    a = make()
    randomize(a, rng)
    before = a.state_dict()
    bad = {k: np.asarray(v) for k, v in before.items()}
    bad["weight"] = np.ones(99, np.float32)
    if "bias" in bad:
        bad["bias"] = np.full(bad["bias"].shape, 5.0, np.float32)  # valid, must not load either
    with pytest.raises(ValueError, match="weight"):
        a.load_state_dict(bad)
    for k, v in before.items():
        np.testing.assert_array_equal(a.state_dict()[k], v)
    missing = {k: v for k, v in before.items() if k != "weight"}
    with pytest.raises((KeyError, ValueError)):
        a.load_state_dict(missing)
    for k, v in before.items():
        np.testing.assert_array_equal(a.state_dict()[k], v)


@pytest.mark.parametrize("cls,args", [(cnorm.LayerNorm, (4,)), (cnorm.GroupNorm, (2, 4)),
                                      (cnorm.InstanceNorm, (4,)), (cnorm.RMSNorm, (4,))])
def test_layers_reject_non_float_dtype(cls, args):
    with pytest.raises(TypeError):
        cls(*args, dtype=np.int32)


@pytest.mark.parametrize("kind", ["layer", "group", "instance", "rms"])
def test_backward_after_mutating_input(rng, kind):
    """As for BatchNorm: backward uses the forward's batch even if the caller
    reuses x's buffer afterwards."""
    make, shape = _layers(np.float64)[kind]
    layer = make()
    randomize(layer, rng)
    x = make_x(rng, shape, np.float64)
    dy = make_x(rng, shape, np.float64)
    expected_layer = make()
    expected_layer.load_state_dict(layer.state_dict())
    expected_layer(x.copy())
    expected = expected_layer.backward(dy)
    layer(x)
    x[...] = make_x(rng, shape, np.float64)
    assert_close(layer.backward(dy), expected)


# ---------------------------------------------------------------- constructor arguments


@pytest.mark.parametrize("value", [True, False, np.True_, 4.0, "4", None, (4,)], ids=repr)
def test_group_norm_num_channels_of_a_wrong_type_is_a_type_error(value):
    with pytest.raises(TypeError, match="^num_channels must be an integer"):
        cnorm.GroupNorm(2, value)
    with pytest.raises(TypeError, match="^num_channels must be an integer"):
        cnorm.GroupNorm(1, value, affine=False)


@pytest.mark.parametrize("value", [True, np.True_, 2.0, "2", None], ids=repr)
def test_group_norm_num_groups_of_a_wrong_type_is_a_type_error(value):
    with pytest.raises(TypeError, match="^num_groups must be an integer"):
        cnorm.GroupNorm(value, 4)


@pytest.mark.parametrize("num_groups,num_channels,name", [
    (2, 0, "num_channels"), (2, -4, "num_channels"), (0, 4, "num_groups"),
    (-2, 4, "num_groups"), (2, 5, "num_groups"), (3, 2, "num_groups"),
    (1, 2**61, "num_channels"), (2, 2**62, "num_channels"), (1, 2**70, "num_channels"),
    (2**70, 4, "num_groups"),
])
def test_group_norm_bad_sizes_are_value_errors_naming_them(num_groups, num_channels, name):
    for affine in (True, False):
        with pytest.raises(ValueError, match=f"^{name} must") as error:
            cnorm.GroupNorm(num_groups, num_channels, affine=affine)
        assert "array is too big" not in str(error.value)


def test_group_norm_size_messages():
    with pytest.raises(ValueError, match=r"^num_groups must divide num_channels 5, got 2$"):
        cnorm.GroupNorm(2, 5)
    with pytest.raises(ValueError, match=r"^num_channels must be <= 2305843009213693951 "):
        cnorm.GroupNorm(1, 2**61)


ROW_SHAPE_LAYERS = {"LayerNorm": cnorm.LayerNorm, "RMSNorm": cnorm.RMSNorm}


@pytest.mark.parametrize("make", ROW_SHAPE_LAYERS.values(), ids=ROW_SHAPE_LAYERS)
@pytest.mark.parametrize("shape", [(2**40, 2**40), (2**31, 2**31, 2**31), (2**61,),
                                   (2, 2**60), 2**61, (10**400, 1)], ids=repr)
@pytest.mark.parametrize("affine", [True, False])
def test_normalized_shape_beyond_any_array_is_a_value_error_naming_it(make, shape, affine):
    with pytest.raises(ValueError, match="^normalized_shape") as error:
        make(shape, elementwise_affine=affine)
    assert "array is too big" not in str(error.value)


def test_normalized_shape_limit_depends_on_the_parameter_dtype():
    big = (2**30, 2**30)     # 2**60 elements: a float32 array of it could exist, float64 not
    with pytest.raises(ValueError, match="^normalized_shape"):
        cnorm.LayerNorm(big, elementwise_affine=False, dtype=np.float64)
    assert cnorm.LayerNorm(big, elementwise_affine=False).normalized_shape == big
    with pytest.raises(MemoryError):   # a real allocation that fails, not a size check
        cnorm.LayerNorm(big)


@pytest.mark.parametrize("make", ROW_SHAPE_LAYERS.values(), ids=ROW_SHAPE_LAYERS)
@pytest.mark.parametrize("shape", [True, (True, 3), (3, np.True_), (2.0, 3), [3, "4"],
                                   np.array([2.0, 3.0]), np.array(3.0), [[2, 3]], object()],
                         ids=repr)
def test_normalized_shape_of_a_wrong_type_is_a_type_error(make, shape):
    with pytest.raises(TypeError, match="^normalized_shape must be an int or a sequence of ints"):
        make(shape)


@pytest.mark.parametrize("make", ROW_SHAPE_LAYERS.values(), ids=ROW_SHAPE_LAYERS)
@pytest.mark.parametrize("shape", [(), [], 0, (3, 0), (-1,), np.zeros(0, int)], ids=repr)
def test_empty_or_non_positive_normalized_shape_is_a_value_error(make, shape):
    with pytest.raises(ValueError, match="^normalized_shape must"):
        make(shape)


@pytest.mark.parametrize("make", ROW_SHAPE_LAYERS.values(), ids=ROW_SHAPE_LAYERS)
def test_integer_like_normalized_shapes_are_plain_int_tuples(make):
    for shape in (np.int64(4), np.array(4), [4], (np.int32(4),), np.array([4]), range(4, 5)):
        layer = make(shape)
        assert layer.normalized_shape == (4,)
        assert all(type(d) is int for d in layer.normalized_shape)


# ---------------------------------------------------------------- repr against torch

TORCH_REPR_CASES = [
    ("LayerNorm", (8,), {}),
    ("LayerNorm", (8,), {"elementwise_affine": False}),
    ("LayerNorm", (8,), {"bias": False}),
    ("LayerNorm", (8,), {"elementwise_affine": False, "bias": False}),
    ("LayerNorm", ((2, 3),), {"eps": 1e-3}),
    ("RMSNorm", (4,), {}),
    ("RMSNorm", ((4, 5),), {"eps": 1e-6, "elementwise_affine": False}),
]


@pytest.mark.parametrize("name,args,kwargs", TORCH_REPR_CASES, ids=repr)
def test_repr_is_torch_s(name, args, kwargs):
    torch = pytest.importorskip("torch")
    assert repr(getattr(cnorm, name)(*args, **kwargs)) == \
        repr(getattr(torch.nn, name)(*args, **kwargs))


@pytest.mark.parametrize("affine", [True, False])
def test_group_norm_repr_is_torch_s_but_for_bias(affine):
    """torch 2.13 adds bias= (an argument cnorm's GroupNorm does not take)."""
    torch = pytest.importorskip("torch")
    theirs = repr(torch.nn.GroupNorm(2, 4, eps=1e-3, affine=affine))
    assert repr(cnorm.GroupNorm(2, 4, eps=1e-3, affine=affine)) == \
        theirs.replace(f", bias={affine}", "")


def test_layer_norm_without_parameters_repr_rebuilds_it():
    for layer in (cnorm.LayerNorm(8, elementwise_affine=False), cnorm.LayerNorm(8, bias=False),
                  cnorm.LayerNorm(8, elementwise_affine=False, bias=False)):
        rebuilt = eval(repr(layer), {"cnorm": cnorm, **vars(cnorm)})
        assert repr(rebuilt) == repr(layer)
        assert rebuilt.state_dict().keys() == layer.state_dict().keys()

"""cnorm.BatchNorm: the state object with running statistics."""
import numpy as np
import pytest

import cnorm

import reference as ref
from conftest import DTYPES, assert_close

C = 4


def batches(rng, shape, dtype, k=5):
    # each batch has its own mean and scale, so the averages move
    out = []
    for _ in range(k):
        loc = rng.uniform(-3, 3)
        out.append((rng.standard_normal(shape) * rng.uniform(0.5, 2.0) + loc).astype(dtype))
    return out


def test_defaults():
    layer = cnorm.BatchNorm(C)
    assert layer.training is True
    for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0),
                        ("running_var", 1.0)):
        a = getattr(layer, name)
        assert isinstance(a, np.ndarray), name
        assert a.shape == (C,) and a.dtype == np.float32, name
        assert np.all(a == value), name
    assert layer.num_batches_tracked == 0
    assert isinstance(layer.num_batches_tracked, (int, np.integer))


def test_train_eval_return_self():
    layer = cnorm.BatchNorm(C)
    assert layer.eval() is layer
    assert layer.training is False
    assert layer.train() is layer
    assert layer.training is True


def test_float64_dtype():
    layer = cnorm.BatchNorm(C, dtype=np.float64)
    for name in ("weight", "bias", "running_mean", "running_var"):
        assert getattr(layer, name).dtype == np.float64


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.1, None, 0.5, 0.0, 1.0])
@pytest.mark.parametrize("shape,axis", [((8, C, 5, 6), 1), ((6, 7, C), -1), ((9, C), 1)])
def test_running_stats(rng, shape, axis, momentum, dtype):
    layer = cnorm.BatchNorm(C, momentum=momentum, axis=axis, dtype=dtype)
    w = rng.uniform(0.5, 1.5, C).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    layer.weight[...] = w
    layer.bias[...] = b
    rm, rv = np.zeros(C), np.ones(C)
    for step, x in enumerate(batches(rng, shape, dtype), start=1):
        x0 = x.copy()
        y = layer(x)
        rm, rv = ref.running_update(rm, rv, x, momentum, step, axis=axis)
        assert layer.num_batches_tracked == step
        assert_close(layer.running_mean, rm)
        assert_close(layer.running_var, rv)
        assert layer.running_mean.dtype == np.dtype(dtype)
        assert_close(y, ref.bn_train(x, w, b, eps=1e-5, axis=axis)[0])  # batch statistics
        np.testing.assert_array_equal(x, x0)

    # eval: running statistics, and no state changes
    layer.eval()
    x = batches(rng, shape, dtype, k=1)[0]
    y = layer(x)
    assert_close(y, ref.bn_infer(x, rm, rv, w, b, eps=1e-5, axis=axis))
    assert layer.num_batches_tracked == 5
    assert_close(layer.running_mean, rm)
    assert_close(layer.running_var, rv)


def test_eval_does_not_touch_state(rng):
    layer = cnorm.BatchNorm(C)
    layer(rng.standard_normal((6, C, 3)).astype(np.float32))
    layer.eval()
    state = {k: np.array(v, copy=True) for k, v in layer.state_dict().items()}
    for _ in range(3):
        layer(rng.standard_normal((6, C, 3)).astype(np.float32))
    for k, v in layer.state_dict().items():
        np.testing.assert_array_equal(v, state[k], err_msg=k)


def test_eval_single_sample_ok(rng):
    """One value per channel is an error in training but fine in eval."""
    layer = cnorm.BatchNorm(3).eval()
    x = rng.standard_normal((1, 3)).astype(np.float32)
    assert_close(layer(x), ref.bn_infer(x, np.zeros(3), np.ones(3), eps=1e-5))


@pytest.mark.parametrize("dtype", DTYPES)
def test_custom_eps(rng, dtype):
    layer = cnorm.BatchNorm(C, eps=0.3, dtype=dtype)
    x = rng.standard_normal((5, C, 2)).astype(dtype)
    assert_close(layer(x), ref.bn_train(x, eps=0.3)[0])
    layer.eval()
    assert_close(layer(x), ref.bn_infer(x, layer.running_mean, layer.running_var, eps=0.3))


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_running_stats(rng, dtype):
    layer = cnorm.BatchNorm(C, track_running_stats=False, dtype=dtype)
    assert layer.running_mean is None and layer.running_var is None
    x = rng.standard_normal((6, C, 3, 3)).astype(dtype) * 3 + 2
    y_train = layer(x)
    assert_close(y_train, ref.bn_train(x)[0])
    layer.eval()
    y_eval = layer(x)  # eval uses the batch's own statistics
    assert_close(y_eval, ref.bn_train(x)[0])
    assert layer.running_mean is None and layer.running_var is None
    sd = layer.state_dict()
    assert "running_mean" not in sd and "running_var" not in sd


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_false(rng, dtype):
    layer = cnorm.BatchNorm(C, affine=False, dtype=dtype)
    assert layer.weight is None and layer.bias is None
    x = rng.standard_normal((6, C, 4)).astype(dtype) + 1
    y = layer(x)
    ey, mean, invstd = ref.bn_train(x)
    assert_close(y, ey)
    dy = rng.standard_normal(x.shape).astype(dtype)
    dx = layer.backward(dy)
    assert_close(dx, ref.bn_backward(dy, x, mean, invstd, None)[0])
    assert layer.grad_weight is None and layer.grad_bias is None
    sd = layer.state_dict()
    assert "weight" not in sd and "bias" not in sd
    assert set(sd) == {"running_mean", "running_var", "num_batches_tracked"}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,axis", [((8, C, 5, 3), 1), ((5, 3, C), -1), ((7, C), 1)])
def test_backward(rng, shape, axis, dtype):
    layer = cnorm.BatchNorm(C, axis=axis, dtype=dtype)
    w = rng.uniform(0.5, 1.5, C).astype(dtype)
    layer.weight[...] = w
    layer.bias[...] = rng.standard_normal(C).astype(dtype)
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    layer(x)
    dy0 = dy.copy()
    dx = layer.backward(dy)
    _, mean, invstd = ref.bn_train(x, eps=1e-5, axis=axis)
    edx, edw, edb = ref.bn_backward(dy, x, mean, invstd, w, axis=axis)
    m = x.size // C
    assert_close(dx, edx)
    assert layer.grad_weight.shape == (C,) and layer.grad_bias.shape == (C,)
    assert_close(layer.grad_weight, edw, scale=np.sqrt(m))
    assert_close(layer.grad_bias, edb, scale=np.sqrt(m))
    np.testing.assert_array_equal(dy, dy0)


def test_backward_uses_last_training_batch(rng):
    layer = cnorm.BatchNorm(C, dtype=np.float64)
    x1 = rng.standard_normal((5, C, 3))
    x2 = rng.standard_normal((5, C, 3)) * 4 + 2
    layer(x1)
    layer(x2)
    dy = rng.standard_normal(x2.shape)
    _, mean, invstd = ref.bn_train(x2)
    assert_close(layer.backward(dy), ref.bn_backward(dy, x2, mean, invstd, layer.weight)[0])


def test_backward_after_mutating_input(rng):
    """backward is the gradient of the forward that ran, even if the caller
    reuses x's buffer afterwards (a NumPy training loop refilling its batch)."""
    layer = cnorm.BatchNorm(C, dtype=np.float64)
    x = rng.standard_normal((5, C, 3)) * 2 + 1
    x_saved = x.copy()
    layer(x)
    x[...] = rng.standard_normal(x.shape)
    dy = rng.standard_normal(x.shape)
    _, mean, invstd = ref.bn_train(x_saved)
    assert_close(layer.backward(dy), ref.bn_backward(dy, x_saved, mean, invstd, layer.weight)[0])


def test_backward_before_forward_raises():
    layer = cnorm.BatchNorm(C)
    with pytest.raises(RuntimeError):
        layer.backward(np.zeros((2, C), np.float32))


def test_gradient_finite_differences_layer(rng):
    """Layer backward == finite differences of the layer's training forward."""
    layer = cnorm.BatchNorm(3, dtype=np.float64, eps=1e-3)
    layer.weight[...] = rng.uniform(0.5, 1.5, 3)
    layer.bias[...] = rng.standard_normal(3)
    x = rng.standard_normal((4, 3, 2)) + 0.5
    g = rng.standard_normal(x.shape)

    def loss(xx):
        probe = cnorm.BatchNorm(3, dtype=np.float64, eps=1e-3)
        probe.weight[...] = layer.weight
        probe.bias[...] = layer.bias
        return float(np.sum(probe(xx) * g))

    layer(x)
    dx = layer.backward(g)
    np.testing.assert_allclose(dx, ref.numerical_grad(loss, x), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------- state_dict


def _trained(rng, dtype=np.float32, **kw):
    layer = cnorm.BatchNorm(C, dtype=dtype, **kw)
    if layer.weight is not None:
        layer.weight[...] = rng.uniform(0.5, 1.5, C)
        layer.bias[...] = rng.standard_normal(C)
    for x in batches(rng, (6, C, 3), dtype, k=3):
        layer(x)
    return layer


def test_state_dict_keys_and_types(rng):
    layer = _trained(rng)
    sd = layer.state_dict()
    assert set(sd) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    for k, v in sd.items():
        assert isinstance(v, np.ndarray), k
    assert int(sd["num_batches_tracked"]) == 3
    np.testing.assert_array_equal(sd["weight"], layer.weight)
    np.testing.assert_array_equal(sd["running_var"], layer.running_var)


@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_round_trip(rng, dtype):
    src = _trained(rng, dtype)
    dst = cnorm.BatchNorm(C, dtype=dtype)
    dst.load_state_dict(src.state_dict())
    for k in ("weight", "bias", "running_mean", "running_var"):
        np.testing.assert_array_equal(getattr(dst, k), getattr(src, k), err_msg=k)
        assert getattr(dst, k).dtype == np.dtype(dtype)
    assert dst.num_batches_tracked == src.num_batches_tracked == 3
    x = rng.standard_normal((3, C, 5)).astype(dtype)
    src.eval()
    dst.eval()
    np.testing.assert_array_equal(dst(x), src(x))


def test_load_state_dict_accepts_array_likes(rng):
    layer = cnorm.BatchNorm(3)
    d = {"weight": [1.0, 2.0, 3.0], "bias": (0.5, 0.5, 0.5), "running_mean": [0, 1, 2],
         "running_var": np.array([1.0, 4.0, 9.0]), "num_batches_tracked": 7}
    layer.load_state_dict(d)
    np.testing.assert_array_equal(layer.weight, [1, 2, 3])
    assert layer.weight.dtype == np.float32 and layer.running_var.dtype == np.float32
    np.testing.assert_array_equal(layer.running_var, [1, 4, 9])
    assert layer.num_batches_tracked == 7
    layer.eval()
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    assert_close(layer(x), ref.bn_infer(x, [0, 1, 2], [1, 4, 9], [1, 2, 3], [0.5] * 3))


def test_load_state_dict_copies(rng):
    """The layer does not keep a reference to the caller's arrays."""
    layer = cnorm.BatchNorm(C)
    d = {k: np.array(v, copy=True) for k, v in _trained(rng).state_dict().items()}
    layer.load_state_dict(d)
    before = layer.running_mean.copy()
    d["running_mean"][...] = 1e6
    np.testing.assert_array_equal(layer.running_mean, before)


def _snapshot(layer):
    return {k: (None if getattr(layer, k) is None else np.array(getattr(layer, k), copy=True))
            for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}


def _assert_unchanged(layer, snap):
    for k, v in snap.items():
        if v is None:
            assert getattr(layer, k) is None, k
        else:
            np.testing.assert_array_equal(getattr(layer, k), v, err_msg=k)


@pytest.mark.parametrize("bad", ["wrong_shape_last", "wrong_shape_first", "missing",
                                 "scalar", "2d"])
def test_load_state_dict_atomic_on_error(rng, bad):
    layer = _trained(rng)
    snap = _snapshot(layer)
    good = {k: np.asarray(v) + 1 for k, v in layer.state_dict().items()}
    d = dict(good)
    if bad == "wrong_shape_last":
        d["running_var"] = np.ones(C + 1)  # earlier keys valid: must not be applied
    elif bad == "wrong_shape_first":
        d["weight"] = np.ones(C - 1)
    elif bad == "missing":
        del d["running_var"]
    elif bad == "scalar":
        d["bias"] = 1.0
    elif bad == "2d":
        d["running_mean"] = np.ones((1, C))
    with pytest.raises(ValueError):
        layer.load_state_dict(d)
    _assert_unchanged(layer, snap)


@pytest.mark.parametrize("dtype", DTYPES)
def test_channels_last_layer_matches_nchw_layer(rng, dtype):
    """axis=-1 on NHWC data == axis=1 on the same data as NCHW."""
    a = cnorm.BatchNorm(C, axis=1, dtype=dtype)
    b = cnorm.BatchNorm(C, axis=-1, dtype=dtype)
    for x in batches(rng, (4, C, 3, 5), dtype, k=3):
        ya = a(x)
        yb = b(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
        assert_close(yb.transpose(0, 3, 1, 2), ya, scale=4)
    assert_close(b.running_mean, a.running_mean)
    assert_close(b.running_var, a.running_var)


# ---- constructor arguments ------------------------------------------------

BATCH_LAYERS = {
    "BatchNorm": cnorm.BatchNorm,
    "BatchNorm_no_state": lambda n, **k: cnorm.BatchNorm(n, affine=False,
                                                         track_running_stats=False, **k),
    "BatchRenorm": cnorm.BatchRenorm,
    "InstanceNorm": cnorm.InstanceNorm,
}


@pytest.mark.parametrize("make", BATCH_LAYERS.values(), ids=BATCH_LAYERS)
@pytest.mark.parametrize("value", [True, False, np.True_, 3.0, "3", None, [3]], ids=repr)
def test_num_features_of_a_wrong_type_is_a_type_error(make, value):
    with pytest.raises(TypeError, match="^num_features must be an integer"):
        make(value)


@pytest.mark.parametrize("make", BATCH_LAYERS.values(), ids=BATCH_LAYERS)
@pytest.mark.parametrize("value,dtype", [(0, np.float32), (-3, np.float32),
                                         (2**61, np.float32), (2**60, np.float64),
                                         (2**62, np.float16), (2**63, np.float32)])
def test_num_features_beyond_any_array_is_a_value_error_naming_it(make, value, dtype):
    """Not NumPy's 'array is too big' (nor nothing, for a layer without arrays)."""
    with pytest.raises(ValueError, match="^num_features must be"):
        make(value, dtype=dtype)


def test_largest_num_features_numpy_could_create_reaches_the_allocation():
    limit = np.iinfo(np.intp).max // 4
    with pytest.raises(MemoryError):
        cnorm.BatchNorm(limit)
    layer = cnorm.BatchNorm(limit, affine=False, track_running_stats=False)
    assert layer.num_features == limit


@pytest.mark.parametrize("make", [cnorm.BatchNorm, cnorm.BatchRenorm])
@pytest.mark.parametrize("axis", [1.5, 1.0, "1", None, True, np.True_], ids=repr)
def test_axis_of_a_wrong_type_is_a_type_error_at_construction(make, axis):
    with pytest.raises(TypeError, match="^axis must be an integer"):
        make(C, axis=axis)


def test_integer_like_axis_is_kept_as_an_int():
    layer = cnorm.BatchNorm(C, axis=np.int64(-1))
    assert type(layer.axis) is int and layer.axis == -1
    assert repr(layer).endswith("axis=-1)")


@pytest.mark.parametrize("dtype", ["no such dtype", "float17", object()], ids=repr)
def test_unknown_dtype_is_a_type_error_naming_dtype(dtype):
    with pytest.raises(TypeError, match="^dtype must be float32, float64, float16 or bfloat16"):
        cnorm.BatchNorm(C, dtype=dtype)


@pytest.mark.parametrize("make", [
    lambda **k: cnorm.BatchNorm(C, **k), lambda **k: cnorm.BatchRenorm(C, **k),
    lambda **k: cnorm.LayerNorm(C, **k), lambda **k: cnorm.GroupNorm(1, C, **k),
    lambda **k: cnorm.InstanceNorm(C, affine=True, **k), lambda **k: cnorm.RMSNorm(C, **k)])
def test_dtype_none_is_the_default_float32_as_in_pytorch(make):
    # np.dtype(None) is float64; torch's dtype=None is its default, float32
    assert make(dtype=None).weight.dtype == make().weight.dtype == np.float32


@pytest.mark.parametrize("name", ["rmax", "dmax"])
@pytest.mark.parametrize("value", ["3", None, True, np.True_, [2.0], 1 + 2j], ids=repr)
def test_renorm_limits_of_a_wrong_type_are_type_errors(name, value):
    with pytest.raises(TypeError, match=f"^{name} must be a real number"):
        cnorm.BatchRenorm(C, **{name: value})
    layer = cnorm.BatchRenorm(C)
    setattr(layer, name, value)                 # assigned later: refused at the forward
    with pytest.raises(TypeError, match=f"^{name} must be a real number"):
        layer(np.ones((4, C), np.float32))
    assert layer.num_batches_tracked == 0


@pytest.mark.parametrize("name,value", [("rmax", 0.5), ("rmax", float("inf")),
                                        ("rmax", float("nan")), ("dmax", -1.0),
                                        ("dmax", float("inf")), ("rmax", 10**400)])
def test_renorm_limits_out_of_range_are_value_errors_at_construction(name, value):
    with pytest.raises(ValueError, match=f"^{name} must be finite and >= "):
        cnorm.BatchRenorm(C, **{name: value})


def test_renorm_limits_are_kept_as_floats():
    layer = cnorm.BatchRenorm(C, rmax=2, dmax=np.float32(0.5))
    assert type(layer.rmax) is float and type(layer.dmax) is float
    assert repr(layer) == "BatchRenorm(4, eps=1e-05, momentum=0.1, rmax=2.0, dmax=0.5, " \
                          "affine=True, axis=1)"


def test_repr_matches_torch_but_for_bias_and_axis():
    """torch 2.13's reprs add bias= (an argument cnorm's batch norm does not
    take: affine gives both parameters); cnorm's add axis=."""
    torch = pytest.importorskip("torch")
    for kwargs in ({}, {"momentum": None, "affine": False, "track_running_stats": False},
                   {"eps": 1e-3, "momentum": 0.3}):
        theirs = repr(torch.nn.BatchNorm1d(16, **kwargs)).replace("BatchNorm1d", "BatchNorm")
        theirs = theirs.replace(", bias=True", "").replace(", bias=False", "")
        assert repr(cnorm.BatchNorm(16, **kwargs)) == theirs[:-1] + ", axis=1)"
        theirs = repr(torch.nn.InstanceNorm1d(16, **kwargs)).replace("InstanceNorm1d",
                                                                     "InstanceNorm")
        theirs = theirs.replace(", bias=True", "").replace(", bias=False", "")
        assert repr(cnorm.InstanceNorm(16, **kwargs)) == theirs

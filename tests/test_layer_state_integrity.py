"""A layer's running state is all-or-nothing: state files with impossible
batch counters are refused whole, and an interrupted training step leaves
running_mean, running_var and num_batches_tracked all old or all new."""
import numpy as np
import pytest

import cnorm

LAYERS = {
    "BatchNorm": lambda: cnorm.BatchNorm(3),
    "BatchNorm_cumulative": lambda: cnorm.BatchNorm(3, momentum=None),
    "BatchRenorm": lambda: cnorm.BatchRenorm(3),
    "InstanceNorm": lambda: cnorm.InstanceNorm(3, track_running_stats=True),
}
BAD_COUNTERS = [1e300, 2.0**63, float("inf"), float("nan"), -1, 2.5,
                np.uint64(2**64 - 1), np.int64(-5), np.float32(0.5)]


def batch():
    return np.random.default_rng(2).standard_normal((4, 3, 5), dtype=np.float32)


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS)
@pytest.mark.parametrize("counter", BAD_COUNTERS, ids=repr)
def test_impossible_counter_is_refused_and_nothing_loads(make, counter):
    layer = make()
    state = {k: np.array(v, copy=True) for k, v in layer.state_dict().items()}
    state["running_mean"] = state["running_mean"] + 1
    state["num_batches_tracked"] = counter
    with pytest.raises(ValueError, match="num_batches_tracked"):
        layer.load_state_dict(state)
    assert layer.num_batches_tracked == 0
    assert np.all(layer.running_mean == 0)


@pytest.mark.parametrize("counter", [0, 7, np.int64(2**63 - 1), 12.0, np.uint8(3)], ids=repr)
def test_valid_counter_loads_as_int(counter):
    layer = cnorm.BatchNorm(3)
    state = layer.state_dict()
    state["num_batches_tracked"] = counter
    layer.load_state_dict(state)
    assert layer.num_batches_tracked == int(counter)
    assert type(layer.num_batches_tracked) is int


class InterruptingArray(np.ndarray):
    """A running buffer whose float64 view raises, as a Ctrl-C would, in the
    middle of the update (after the counter would have moved)."""

    def astype(self, *args, **kwargs):
        raise KeyboardInterrupt


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS)
@pytest.mark.parametrize("buffer", ["running_mean", "running_var"])
def test_interrupted_step_changes_nothing(make, buffer):
    layer = make()
    layer(batch())
    before = {k: np.array(v, copy=True) for k, v in layer.state_dict().items()}
    setattr(layer, buffer, getattr(layer, buffer).view(InterruptingArray))
    with pytest.raises(KeyboardInterrupt):
        layer(batch() * 3 + 1)
    after = layer.state_dict()
    for key, value in before.items():
        np.testing.assert_array_equal(np.asarray(after[key]), value, err_msg=key)


def _read_only(a):
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


BAD_BUFFERS = {   # the error names the buffer
    "longer": (lambda a: np.zeros(5, a.dtype), ValueError),
    "broadcastable": (lambda a: np.ones(1, a.dtype), ValueError),
    "2-d": (lambda a: a.reshape(1, 3), ValueError),
    "int": (lambda a: a.astype(np.int64), TypeError),
    "list": (lambda a: a.tolist(), TypeError),
    "read-only": (_read_only, ValueError),
}


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS)
@pytest.mark.parametrize("buffer", ["running_mean", "running_var"])
@pytest.mark.parametrize("bad", BAD_BUFFERS, ids=list(BAD_BUFFERS))
def test_reassigned_buffer_that_cannot_take_the_update_changes_nothing(make, buffer, bad):
    # A wrong-shaped running_var used to fail between the two stores, after
    # running_mean had moved; now the step is refused before either.
    layer = make()
    layer(batch())
    other = "running_var" if buffer == "running_mean" else "running_mean"
    before_other = np.array(getattr(layer, other), copy=True)
    change, error = BAD_BUFFERS[bad]
    setattr(layer, buffer, change(getattr(layer, buffer)))
    with pytest.raises(error, match=f"^{buffer}"):
        layer(batch())
    assert np.array_equal(getattr(layer, other), before_other)
    assert layer.num_batches_tracked == 1


def _torch_pairs():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    return [(cnorm.BatchNorm(3), nn.BatchNorm1d(3)), (cnorm.LayerNorm(3), nn.LayerNorm(3)),
            (cnorm.GroupNorm(1, 3), nn.GroupNorm(1, 3)), (cnorm.RMSNorm(3), nn.RMSNorm(3)),
            (cnorm.InstanceNorm(3, affine=True, track_running_stats=True),
             nn.InstanceNorm1d(3, affine=True, track_running_stats=True))]


@pytest.mark.parametrize("index", range(5))
def test_load_state_dict_non_strict_reports_keys_as_torch(index):
    ours, theirs = _torch_pairs()[index]
    state = {k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()}
    first = next(iter(state))
    state[first] = state[first] + 1.5
    if len(state) > 1:
        del state[list(state)[-1]]
    state["extra"] = np.zeros(1)
    torch = pytest.importorskip("torch")
    expected = theirs.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()},
                                      strict=False)
    got = ours.load_state_dict(state, strict=False)
    assert got.missing_keys == list(expected.missing_keys)
    assert got.unexpected_keys == list(expected.unexpected_keys)
    np.testing.assert_array_equal(getattr(ours, first), state[first].astype(np.float32))
    with pytest.raises(ValueError, match="keys do not match"):   # strict: nothing loads
        type(ours).load_state_dict(ours, {**state, first: state[first] + 1})
    np.testing.assert_array_equal(getattr(ours, first), state[first].astype(np.float32))


def test_state_dict_without_the_counter_keeps_it_as_torch():
    layer = cnorm.BatchNorm(3)
    layer(batch())
    state = layer.state_dict()
    del state["num_batches_tracked"]
    state["running_mean"] = np.full(3, 4.0)
    assert layer.load_state_dict(state) == ([], [])
    assert layer.num_batches_tracked == 1 and np.all(layer.running_mean == 4)


def test_non_strict_load_still_refuses_a_wrong_shape_and_loads_nothing():
    layer = cnorm.BatchNorm(3)
    with pytest.raises(ValueError, match="shape"):
        layer.load_state_dict({"weight": np.full(3, 2.0), "bias": np.ones(4)}, strict=False)
    assert np.all(layer.weight == 1) and np.all(layer.bias == 0)


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS)
@pytest.mark.parametrize("momentum,error", [(float("nan"), ValueError), (5.0, ValueError),
                                            ("a", TypeError), (True, TypeError)])
def test_reassigned_momentum_is_checked_before_the_step(make, momentum, error):
    layer = make()
    layer(batch())
    before = np.array(layer.running_mean, copy=True)
    layer.momentum = momentum
    with pytest.raises(error, match="momentum"):
        layer(batch())
    assert np.array_equal(layer.running_mean, before) and layer.num_batches_tracked == 1


@pytest.mark.parametrize("make", LAYERS.values(), ids=LAYERS)
@pytest.mark.parametrize("state", [None, [1, 2], "weight"])
def test_load_state_dict_of_a_non_mapping_is_a_type_error(make, state):
    with pytest.raises(TypeError, match="^state_dict must be a mapping"):
        make().load_state_dict(state)

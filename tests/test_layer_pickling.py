"""Layers survive pickle and copy.deepcopy with their state, and repr shows
the constructor call that rebuilds their configuration."""
import copy
import pickle

import numpy as np
import pytest

import cnorm

LAYERS = [
    (lambda: cnorm.BatchNorm(3, momentum=0.2), (4, 3, 5)),
    (lambda: cnorm.BatchNorm(3, axis=-1, dtype=np.float64), (4, 5, 3)),
    (lambda: cnorm.BatchRenorm(3, rmax=2.0, dmax=1.0), (4, 3, 5)),
    (lambda: cnorm.LayerNorm((5,), eps=1e-3), (4, 3, 5)),
    (lambda: cnorm.GroupNorm(1, 3), (4, 3, 5)),
    (lambda: cnorm.InstanceNorm(3, track_running_stats=True), (4, 3, 5)),
    (lambda: cnorm.RMSNorm(5, elementwise_affine=False), (4, 3, 5)),
]


def _trained(make, shape):
    layer = make()
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, shape).astype(layer.dtype)
    layer(x)
    layer.backward(np.ones_like(x))
    return layer, x


def _assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        np.testing.assert_array_equal(sa[k], sb[k])
        assert sa[k].dtype == sb[k].dtype


@pytest.mark.parametrize("make,shape", LAYERS)
@pytest.mark.parametrize("clone", [lambda o: pickle.loads(pickle.dumps(o)), copy.deepcopy])
def test_round_trip_keeps_state_and_works(make, shape, clone):
    layer, x = _trained(make, shape)
    twin = clone(layer)
    _assert_same_state(layer, twin)
    assert twin.training == layer.training
    # Same next step on both, and the copy's buffers are its own.
    y1, y2 = layer(x), twin(x)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(layer.backward(x), twin.backward(x))
    if twin.weight is not None:
        twin.weight[...] = 7
        assert not np.any(layer.weight == 7)


@pytest.mark.parametrize("make,shape", LAYERS)
def test_repr_rebuilds_configuration(make, shape):
    layer = make()
    rebuilt = eval(repr(layer), {"cnorm": cnorm, **vars(cnorm)})
    assert type(rebuilt) is type(layer)
    assert repr(rebuilt) == repr(layer)
    _assert_same_state(layer, rebuilt)


def _forward_in_worker(layer, x):
    return layer(x), layer.state_dict()


def test_layer_goes_to_a_spawn_started_worker():
    import multiprocessing

    layer, x = _trained(LAYERS[0][0], LAYERS[0][1])
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        y, state = pool.apply(_forward_in_worker, (layer, x))
    y_here = layer(x)
    np.testing.assert_array_equal(y, y_here)
    np.testing.assert_array_equal(state["running_mean"], layer.running_mean)

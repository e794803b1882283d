"""out= (and sum_out=) that alias an input or a parameter, wholly or in
part, give exactly the result of a call into a fresh array: every function,
both dtypes."""
import numpy as np
import pytest

import cnorm

X_SHAPE = (4, 6, 10)


def _inputs(dtype):
    rng = np.random.default_rng(0)
    return {"x": rng.normal(1.0, 2.0, X_SHAPE).astype(dtype),
            "dy": rng.normal(size=X_SHAPE).astype(dtype)}


def _saved(fn_name, x, w, b):
    if fn_name.startswith("batch_norm"):
        return cnorm.batch_norm_train(x, w, b)[1:]
    if fn_name.startswith("layer_norm"):
        return cnorm.layer_norm(x, 10, w, b)[1:]
    if fn_name.startswith("group_norm"):
        return cnorm.group_norm(x, 2, w, b)[1:]
    if fn_name.startswith("instance_norm"):
        return cnorm.instance_norm(x, w, b)[1:]
    return cnorm.rms_norm(x, 10, w)[1:]


# name -> (call(arrays, out), parameter size); arrays holds x, dy, w, b, saved
CALLS = {
    "batch_norm_train": (lambda a, out: cnorm.batch_norm_train(a["x"], a["w"], a["b"], out=out),
                         6),
    "batch_norm_infer": (lambda a, out: cnorm.batch_norm_infer(a["x"], a["b"], a["w"], a["w"],
                                                               a["b"], out=out), 6),
    "batch_norm_backward": (lambda a, out: cnorm.batch_norm_backward(a["dy"], a["x"], *a["saved"],
                                                                     a["w"], out=out), 6),
    "layer_norm": (lambda a, out: cnorm.layer_norm(a["x"], 10, a["w"], a["b"], out=out), 10),
    "layer_norm_backward": (lambda a, out: cnorm.layer_norm_backward(
        a["dy"], a["x"], *a["saved"], 10, a["w"], out=out), 10),
    "group_norm": (lambda a, out: cnorm.group_norm(a["x"], 2, a["w"], a["b"], out=out), 6),
    "group_norm_backward": (lambda a, out: cnorm.group_norm_backward(
        a["dy"], a["x"], *a["saved"], 2, a["w"], out=out), 6),
    "instance_norm": (lambda a, out: cnorm.instance_norm(a["x"], a["w"], a["b"], out=out), 6),
    "instance_norm_backward": (lambda a, out: cnorm.instance_norm_backward(
        a["dy"], a["x"], *a["saved"], a["w"], out=out), 6),
    "rms_norm": (lambda a, out: cnorm.rms_norm(a["x"], 10, a["w"], out=out), 10),
    "rms_norm_backward": (lambda a, out: cnorm.rms_norm_backward(
        a["dy"], a["x"], *a["saved"], 10, a["w"], out=out), 10),
    "add_layer_norm": (lambda a, out: cnorm.add_layer_norm(a["x"], a["dy"], 10, a["w"], a["b"],
                                                           out=out), 10),
}


def _arrays(name, dtype):
    a = _inputs(dtype)
    n = CALLS[name][1]
    rng = np.random.default_rng(1)
    a["w"] = rng.uniform(0.5, 2, n).astype(dtype)
    a["b"] = rng.normal(size=n).astype(dtype)
    a["saved"] = _saved(name, a["x"], a["w"], a["b"])
    return a


def _copy(a):
    return {k: (tuple(np.array(v) for v in val) if isinstance(val, tuple) else np.array(val))
            for k, val in a.items()}


# Where out lives: the whole of an input, or a view of a buffer that also
# holds an input shifted by some elements (partial overlap, either side).
TARGETS = ["x", "dy", "x shifted +7", "x shifted -7", "dy shifted +3"]


def _aliased(a, target):
    name, _, shift = target.partition(" shifted ")
    if not shift:
        return a, a[name]
    k = int(shift)
    size = np.prod(X_SHAPE)
    buffer = np.zeros(size + abs(k), a[name].dtype)
    # the input at offset max(0, -k), out at offset max(0, k)
    src = buffer[max(0, -k):max(0, -k) + size].reshape(X_SHAPE)
    src[...] = a[name]
    a = dict(a, **{name: src})
    return a, buffer[max(0, k):max(0, k) + size].reshape(X_SHAPE)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", list(CALLS))
def test_aliased_out_equals_fresh_out(name, target, dtype):
    call = CALLS[name][0]
    a = _arrays(name, dtype)
    if "dy" in target and "backward" not in name and name != "add_layer_norm":
        pytest.skip("dy is not an input of a forward")
    expected = call(_copy(a), None)
    aliased, out = _aliased(_copy(a), target)
    got = call(aliased, out)
    first = got[0] if isinstance(got, tuple) else got
    assert first is out
    want = expected[0] if isinstance(expected, tuple) else expected
    np.testing.assert_array_equal(first, want)
    if isinstance(got, tuple):
        for g, e in zip(got[1:], expected[1:]):
            if g is not None:
                np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("name", ["batch_norm_train", "layer_norm", "group_norm", "rms_norm"])
def test_out_overlapping_a_parameter(name):
    call, n = CALLS[name]
    a = _arrays(name, np.float64)
    expected = call(_copy(a), None)
    buffer = np.zeros(np.prod(X_SHAPE) + n)
    aliased = _copy(a)
    aliased["w"] = buffer[:n]
    aliased["w"][...] = a["w"]
    out = buffer[3:3 + np.prod(X_SHAPE)].reshape(X_SHAPE)   # overlaps w's tail
    got = call(aliased, out)
    np.testing.assert_array_equal(got[0] if isinstance(got, tuple) else got,
                                  expected[0] if isinstance(expected, tuple) else expected)

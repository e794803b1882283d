"""The benchmark's NumPy contender computes what it claims to.

It is a separate implementation in x's dtype (see cnorm.bench.engine._numpy),
so it is checked here against the float64 reference on small shapes of every
benchmarked op, in float64 where the two should agree to rounding."""
import dataclasses

import numpy as np
import pytest

import cnorm.reference as ref
from cnorm.bench import engine

SMALL_SHAPES = {4: (3, 8, 5, 6), 2: (40, 8), 3: (4, 6, 24)}


def small(case):
    shape = SMALL_SHAPES[len(case.shape)]
    if case.axis == -1:
        shape = (3, 5, 6, 8)
    return dataclasses.replace(case, shape=shape, groups=min(case.groups, 4), big=False)


CASES = {small(c).name: small(c) for c in engine.default_cases()}


def expected(case, d):
    x, w, b, eps = d.x, d.weight, d.bias, engine.EPS
    shape = x.shape[-case.norm_dims:]
    if case.op == "moments":
        count, mean, m2 = ref.moments(x, -1)
        return np.stack([mean, m2 / count])
    if case.op == "batch_norm_infer":
        return ref.bn_infer(x, d.running_mean, d.running_var, w, b, eps, case.axis)
    if case.op == "batch_norm_train":
        return ref.bn_train(x, w, b, eps, case.axis)[0]
    if case.op == "batch_norm_backward":
        _, mean, invstd = ref.bn_train(x, w, b, eps, case.axis)
        return ref.bn_backward(d.dy, x, mean, invstd, w, case.axis)[0]
    forwards = {
        "layer_norm": lambda: ref.layer_norm(x, shape, w, b, eps),
        "group_norm": lambda: ref.group_norm(x, case.groups, w, b, eps),
        "instance_norm": lambda: ref.instance_norm(x, w, b, eps),
        "rms_norm": lambda: ref.rms_norm(x, shape, w, eps),
    }
    backwards = {
        "layer_norm": lambda: ref.layer_norm_backward(d.dy, x, shape, w, eps),
        "group_norm": lambda: ref.group_norm_backward(d.dy, x, case.groups, w, eps),
        "instance_norm": lambda: ref.instance_norm_backward(d.dy, x, w, eps),
        "rms_norm": lambda: ref.rms_norm_backward(d.dy, x, shape, w, eps),
    }
    return (backwards if case.backward else forwards)[case.family]()[0]


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_numpy_contender_matches_reference(case):
    d = engine.make_data(case, dtype=np.float64, seed=3)
    result = engine.build_contender("numpy", case, d, threads=1)()
    got = result[0] if case.backward else result
    if case.op == "moments":
        np.testing.assert_allclose(np.stack(got), expected(case, d), rtol=1e-12)
        return
    np.testing.assert_allclose(np.reshape(got, case.shape), expected(case, d),
                               rtol=1e-9, atol=1e-9)

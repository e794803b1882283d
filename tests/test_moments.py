"""cnorm.Moments against float64 NumPy formulas (math.fsum-exact where it
matters): per-feature statistics on any axis and layout, masks, sample
weights, the Chan merge and the plain-array round trip."""
import math
import pickle

import numpy as np
import pytest

import cnorm
from cnorm import Moments


def _reference(x, axis, weights=None):
    """(count, mean, m2) per feature from float64 two-pass formulas; weights
    (x's shape) default to 1."""
    def per_feature(a):
        a = np.moveaxis(np.asarray(a, np.float64), axis, -1)
        return a.reshape(-1, a.shape[-1])
    x2 = per_feature(x)
    w = np.ones_like(x2) if weights is None else per_feature(weights)
    count = w.sum(0)
    total = np.array([math.fsum(c) for c in (w * x2).T])
    mean = np.where(count > 0, total / np.where(count > 0, count, 1), 0)
    return count, mean, (w * (x2 - mean) ** 2).sum(0)


def _check(m, count, mean, m2, rtol):
    np.testing.assert_allclose(m.count, count, rtol=1e-14)
    scale = max(1.0, float(np.max(np.abs(mean), initial=0)))
    np.testing.assert_allclose(m.mean, mean, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(m.m2, m2, rtol=rtol * 10, atol=rtol)


SHAPES_AXES = [((1000, 7), -1), ((1000, 7), 0), ((6, 5, 40), 1), ((3, 4, 5, 6), 2),
               ((2, 3, 4), -1), ((257,), 0)]


@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_moments_equal_reference(shape, axis, dtype, rtol):
    rng = np.random.default_rng(0)
    x = rng.normal(30.0, 4.0, shape).astype(dtype)
    m = Moments.of(x, axis=axis)
    assert m.count.dtype == m.mean.dtype == m.m2.dtype == np.float64
    _check(m, *_reference(x, axis), rtol)
    count, _, m2 = _reference(x, axis)
    np.testing.assert_allclose(m.var(), m2 / count, rtol=rtol * 10)
    n = x.size // shape[axis]
    if n > 1:
        np.testing.assert_allclose(m.std(ddof=1), np.sqrt(_reference(x, axis)[2] / (n - 1)),
                                   rtol=rtol * 10)


@pytest.mark.parametrize("layout", ["F", "strided", "big-endian", "int", "float16", "bool"])
def test_other_layouts_and_dtypes(layout):
    rng = np.random.default_rng(1)
    base = rng.normal(2.0, 1.0, (300, 6))
    x = {"F": np.asfortranarray(base), "strided": base[::2, ::-1],
         "big-endian": base.astype(">f8"), "int": (base * 100).astype(np.int64),
         "float16": base.astype(np.float16), "bool": base > 2}[layout]
    m = Moments.of(x, axis=1)
    _check(m, *_reference(x, 1), 1e-6 if layout == "float16" else 1e-12)


def test_large_mean_small_spread_keeps_precision():
    # mean / std = 1e11: naive sum-of-squares variance would lose every digit.
    x = 1e8 + np.random.default_rng(2).normal(0, 1e-3, (5000, 3))
    m = Moments.of(x)
    count, mean, m2 = _reference(x, 1)
    np.testing.assert_allclose(m.mean, mean, rtol=1e-15)
    np.testing.assert_allclose(m.m2, m2, rtol=1e-6)


def test_mask_and_weights_equal_reference():
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 2.0, (200, 4, 3))
    mask = rng.random((200, 4, 1)) > 0.4
    sw = rng.random(200) * 3
    weights = sw[:, None, None] * mask
    m = Moments.of(x, axis=1, sample_weight=sw, mask=mask)
    _check(m, *_reference(x, 1, np.broadcast_to(weights, x.shape)), 1e-12)
    mm = Moments.of(x, axis=1, mask=mask)
    _check(mm, *_reference(x, 1, np.broadcast_to(mask, x.shape).astype(float)), 1e-12)


def test_masked_out_nan_is_ignored_and_included_nan_propagates():
    x = np.array([[1.0, np.nan], [3.0, 2.0], [np.nan, 4.0]])
    m = Moments.of(x, mask=~np.isnan(x))
    np.testing.assert_array_equal(m.count, [2, 2])
    np.testing.assert_allclose(m.mean, [2, 3])
    np.testing.assert_allclose(m.m2, [2, 2])
    assert np.isnan(Moments.of(x).mean).all()


def test_integer_weights_equal_repetition():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 3))
    reps = rng.integers(0, 4, 50)
    a = Moments.of(x, sample_weight=reps)
    b = Moments.of(np.repeat(x, reps, axis=0))
    np.testing.assert_allclose(a.count, b.count)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12)
    np.testing.assert_allclose(a.m2, b.m2, rtol=1e-10)


@pytest.mark.parametrize("cuts", [[0, 1000], [0, 0, 400, 1000, 1000], [0, 1, 2, 999, 1000]])
def test_merge_of_parts_equals_whole(cuts):
    x = np.random.default_rng(5).normal(-7.0, 3.0, (1000, 5))
    parts = [Moments.of(x[a:b]) for a, b in zip(cuts, cuts[1:])]
    merged = parts[0]
    for p in parts[1:]:
        merged = merged + p
    _check(merged, *_reference(x, 1), 1e-12)
    assert merged.merge(Moments.empty(5)).mean.tolist() == merged.mean.tolist()
    assert Moments.empty(5).merge(merged).m2.tolist() == merged.m2.tolist()


def test_empty():
    m = Moments.of(np.empty((0, 3)))
    np.testing.assert_array_equal(m.count, 0)
    np.testing.assert_array_equal(m.mean, 0)
    assert np.isnan(m.var()).all()
    e = Moments.empty(2) + Moments.empty(2)
    np.testing.assert_array_equal(e.count, 0)
    np.testing.assert_array_equal(e.m2, 0)


def test_round_trips():
    m = Moments.of(np.random.default_rng(6).normal(size=(20, 3)))
    for twin in (Moments.from_array(m.to_array()), pickle.loads(pickle.dumps(m))):
        for name in ("count", "mean", "m2"):
            np.testing.assert_array_equal(getattr(twin, name), getattr(m, name))
    assert m.to_array().shape == (3, 3)


def test_threads_do_not_change_bits():
    x = np.random.default_rng(7).normal(size=(4096, 33)).astype(np.float32)
    before = cnorm.get_num_threads()
    try:
        cnorm.set_num_threads(1)
        a = Moments.of(x)
        cnorm.set_num_threads(2)
        b = Moments.of(x)
    finally:
        cnorm.set_num_threads(before)
    assert a.mean.tobytes() == b.mean.tobytes() and a.m2.tobytes() == b.m2.tobytes()


@pytest.mark.parametrize("kwargs,error,match", [
    ({"sample_weight": np.ones(3)}, ValueError, "sample_weight"),
    ({"sample_weight": -np.ones(10)}, ValueError, "sample_weight"),
    ({"sample_weight": np.full(10, np.nan)}, ValueError, "sample_weight"),
    ({"sample_weight": np.ones((10, 1))}, ValueError, "sample_weight"),
    ({"mask": np.ones((10, 4), int)}, ValueError, "mask"),
    ({"mask": np.ones((3, 4), bool)}, ValueError, "mask"),
    ({"axis": 2}, ValueError, "axis"),
    ({"axis": 1.5}, TypeError, "axis"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        Moments.of(np.ones((10, 4)), **kwargs)


def test_bad_data_and_merge():
    with pytest.raises(TypeError, match="x"):
        Moments.of(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="x"):
        Moments.of(np.ones(3, complex))
    with pytest.raises(ValueError, match="x"):
        Moments.of(np.float64(1.0))
    with pytest.raises(ValueError, match="sample_weight"):
        Moments.of(np.ones((10, 4)), axis=0, sample_weight=np.ones(10))
    with pytest.raises(ValueError, match="features"):
        Moments.empty(2).merge(Moments.empty(3))
    with pytest.raises(TypeError):
        Moments.empty(2).merge(np.zeros(2))
    with pytest.raises(ValueError, match="count"):
        Moments([-1.0], [0.0], [0.0])
    with pytest.raises(ValueError, match="shape"):
        Moments.from_array(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="m2"):
        Moments.from_array(np.array([[2.0], [0.0], [-1.0]]))
    assert np.isnan(Moments([2.0], [np.nan], [np.nan]).var()).all()


def test_sum_of_parts_is_their_merge():
    x = np.random.default_rng(3).standard_normal((30, 4))
    parts = [Moments.of(x[i:i + 7]) for i in range(0, 30, 7)]
    total = sum(parts)
    whole = Moments.of(x)
    np.testing.assert_array_equal(total.count, whole.count)
    np.testing.assert_allclose(total.m2, whole.m2, rtol=1e-13)
    assert sum(parts[:1]) is not parts[0]
    with pytest.raises(TypeError):
        1 + parts[0]


def _low_dtypes():
    dtypes = [np.dtype(np.float16)]
    try:
        import ml_dtypes
    except ImportError:
        return dtypes
    return dtypes + [np.dtype(ml_dtypes.bfloat16)]


@pytest.mark.parametrize("dtype", _low_dtypes(), ids=str)
def test_low_precision_data_and_weights(dtype):
    # float16 and bfloat16 data are computed in float32, exactly as its float32 copy.
    x = np.random.default_rng(8).normal(3.0, 2.0, (300, 5)).astype(dtype)
    x32 = x.astype(np.float32)
    assert Moments.of(x).to_array().tobytes() == Moments.of(x32).to_array().tobytes()
    mask = np.random.default_rng(9).random(x.shape) > 0.3
    assert (Moments.of(x, mask=mask).to_array().tobytes()
            == Moments.of(x32, mask=mask).to_array().tobytes())
    # weights of a 2-byte float are read as their values, as float32 weights
    w = np.arange(300) % 4
    np.testing.assert_array_equal(Moments.of(x, sample_weight=w.astype(dtype)).to_array(),
                                  Moments.of(x, sample_weight=w.astype(np.float32)).to_array())
    # a scalar is refused as a float32 scalar is
    with pytest.raises(ValueError, match="at least 1 dimension"):
        Moments.of(np.ones((), dtype))


def _mask_cases():
    """(x dtype, mask dtype) pairs."""
    cases = []
    for dtype in [np.dtype(np.float64), np.dtype(np.float32), *_low_dtypes()]:
        for mask_dtype in [np.dtype(np.int64), np.dtype(np.float32), np.dtype(np.uint8),
                           *_low_dtypes()]:
            cases.append(pytest.param(dtype, mask_dtype, id=f"{dtype}-mask-{mask_dtype}"))
    return cases


@pytest.mark.parametrize("dtype, mask_dtype", _mask_cases())
def test_mask_of_another_dtype_is_refused_as_batch_norm_refuses_it(dtype, mask_dtype):
    # One error for a mask that is not bool: Moments.of raises what the
    # functional batch norm (and so the layers) raise, naming mask and its dtype.
    x = np.ones((4, 3, 5), dtype)
    mask = np.ones((4, 1, 5), mask_dtype)
    stats = np.zeros(3, np.float32), np.ones(3, np.float32)
    calls = [lambda: Moments.of(x, axis=1, mask=mask),
             lambda: cnorm.batch_norm_train(x, mask=mask),
             lambda: cnorm.batch_norm_backward(x, x, *stats, mask=mask)]
    errors = []
    for call in calls:
        with pytest.raises((TypeError, ValueError), match="mask") as info:
            call()
        errors.append((type(info.value), str(info.value)))
    assert errors[0][1].endswith(f"got {mask_dtype}")
    assert errors[1:] == errors[:1] * 2


def test_weighted_constant_features_have_no_variance():
    """A corrected second pass: the weighted mean of a constant feature is
    the constant, so its m2 is 0 (scikit-learn's scale_ of 1), whatever the
    weights."""
    rng = np.random.default_rng(11)
    for _ in range(300):
        n = int(rng.integers(1, 6))
        x = np.full((n, 3), rng.standard_normal() * 10.0 ** int(rng.integers(-5, 9)))
        m = cnorm.Moments.of(x, axis=-1, sample_weight=rng.random(n))
        np.testing.assert_array_equal(m.m2, 0.0)
        np.testing.assert_array_equal(m.mean, x[0])
    scaler = cnorm.StandardScaler().fit(np.full((3, 1), 1e8), sample_weight=[0.2, 0.1, 0.05])
    np.testing.assert_array_equal(scaler.scale_, [1.0])
